import type { Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import { findCircuits, findLimitUsage, type CircuitState } from '../db/provider-state-repository.js';
import type { Database } from '../db/schema.js';
import { JOB_KINDS } from '../jobs/job.js';
import { dispatchesPerSecond, limitKeysToPoll, limitOf } from '../capacity/provider-limits.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';

/** One limit key of a provider: its configured rate and concurrency against what is in use now. */
export interface LimitState {
  key: string;
  rpm: number;
  dispatchesPerSecond: number;
  slots: { inUse: number; capacity: number };
  pausedUntil: string | null;
}

/** A provider as an operator sees it: its fleet-wide breaker, and each of its limit keys. */
export interface ProviderState {
  provider: string;
  breaker: {
    state: CircuitState['state'];
    consecutiveFailures: number;
    openUntil: string | null;
    probeStartedAt: string | null;
  };
  limits: LimitState[];
}

const CLOSED: CircuitState = {
  state: 'closed',
  consecutiveFailures: 0,
  openUntil: null,
  probeStartedAt: null,
};
const iso = (date: Date | null) => date?.toISOString() ?? null;

/** Every provider this API can submit to, with its breaker and the rate and slots it is using. */
export async function providerStates(
  db: Kysely<Database>,
  providers: ProviderRegistry,
  limits: Config['providerLimits'],
): Promise<ProviderState[]> {
  const [circuits, usage] = await Promise.all([findCircuits(db), findLimitUsage(db)]);
  const names = [...new Set(JOB_KINDS.flatMap((kind) => providers.names(kind)))].sort();
  return names.map((provider) => {
    const circuit = circuits.get(provider) ?? CLOSED;
    const keys = limitKeysToPoll(limits, [provider]);
    return {
      provider,
      breaker: { ...circuit, openUntil: iso(circuit.openUntil), probeStartedAt: iso(circuit.probeStartedAt) },
      limits: keys.map((key) => {
        const limit = limitOf(limits, key);
        const used = usage.get(key);
        return {
          key,
          rpm: limit.rpm,
          dispatchesPerSecond: dispatchesPerSecond(limit),
          slots: { inUse: used?.slotsInUse ?? 0, capacity: limit.concurrency },
          pausedUntil: iso(used?.pausedUntil ?? null),
        };
      }),
    };
  });
}
