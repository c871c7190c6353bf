import type { Kysely } from 'kysely';
import type { CircuitPolicy, Config } from '../config/index.js';
import {
  circuitOpenForMs,
  recordCallFailed,
  recordCallSucceeded,
  requestCallPermit,
  type CallPermit,
} from '../db/circuit-repository.js';
import { isProviderPaused, pauseProvider } from '../db/provider-capacity-repository.js';
import type { Database } from '../db/schema.js';
import { FailureCode, WaitReason } from '../jobs/job.js';
import type { Logger } from '../logger.js';
import { circuitOpenings } from '../observability/metrics.js';
import type { ProviderError } from '../providers/provider-error.js';
import { nextRequestInMs, type ProviderQuota } from '../providers/rate-limit-headers.js';
import { limitKeyFor, limitOf } from './provider-limits.js';
import { acquireProviderSlot, type HeldSlot } from './provider-slot.js';

/** Failures that say the provider itself is unwell, as opposed to this one request being bad. */
const BREAKER_FAILURES: ReadonlySet<string> = new Set([FailureCode.providerUnavailable, FailureCode.timeout]);

/** How long a 429 without a Retry-After holds the provider back for everyone. */
const DEFAULT_RATE_LIMIT_PAUSE_MS = 1000;

/** The breaker let the call through; none is asked for when resuming a task the provider accepted. */
type GrantedPermit = Extract<CallPermit, { granted: true }>;

/** What a call that finds no slot free waits for. */
export type SlotWaitReason = typeof WaitReason.rateLimited | typeof WaitReason.providerSlot;

export interface CapacityDependencies {
  db: Kysely<Database>;
  logger: Logger;
  /** How every provider's shared circuit breaker behaves. */
  circuit: CircuitPolicy;
  /** Fleet-wide rate and calls in flight per provider (or model). */
  providerLimits: Config['providerLimits'];
}

/**
 * What the fleet shares for one provider and model, as one call sees it: the call slots and their pacing
 * (its limit key's), pauses after a 429 or a used-up quota, and the provider's circuit breaker. Every
 * verdict lives in Postgres, so every worker abides by it.
 */
export function providerCapacity(deps: CapacityDependencies, provider: string, model: string) {
  const { db, logger, circuit, providerLimits } = deps;
  const limitKey = limitKeyFor(providerLimits, provider, model);

  /** One 429 (or an emptied quota) holds back every job of this limit key, not just the one that met it. */
  async function pause(ms: number, why: string): Promise<void> {
    await pauseProvider(db, limitKey, ms);
    logger.warn({ limitKey, pauseMs: ms }, `provider paused: ${why}`);
  }

  /**
   * A call without a slot waits out a pause after a 429, or else for a slot or its turn. Only told to
   * watchers: a failed read says the latter rather than fail the call.
   */
  async function slotWaitReason(): Promise<SlotWaitReason> {
    const paused = await isProviderPaused(db, limitKey).catch(() => false);
    return paused ? WaitReason.rateLimited : WaitReason.providerSlot;
  }

  return {
    limitKey,

    /**
     * A call slot at its turn, waited for in place while short; else how long the workflow should sleep.
     * `onWait` hears once that the call waits, and what for; `giveUp`, asked after each wait, ends the
     * wait in place early.
     */
    acquireSlot(
      jobId: string,
      heartbeat: () => void,
      onWait: (reason: SlotWaitReason, retryInMs: number) => Promise<void>,
      giveUp?: () => Promise<boolean>,
    ): Promise<HeldSlot | { retryInMs: number }> {
      const limit = limitOf(providerLimits, limitKey);
      const told = async (retryInMs: number) => onWait(await slotWaitReason(), retryInMs);
      return acquireProviderSlot({ db, limitKey, jobId, limit, heartbeat, onWait: told, giveUp, logger });
    },

    /** Whether the breaker lets a new call through now, and whether it is the probe. */
    permit(): Promise<CallPermit> {
      return requestCallPermit(db, provider, circuit);
    },

    /** How long the breaker stays open from now, while it cools down; undefined when it is not. */
    circuitOpenForMs(): Promise<number | undefined> {
      return circuitOpenForMs(db, provider);
    },

    /** After an answer: closes a circuit that was not healthy, and pauses when the quota is used up. */
    async answered(permit: GrantedPermit | undefined, quota: ProviderQuota | undefined): Promise<void> {
      // A healthy circuit has nothing to reset: no write on the common path.
      if (!permit?.healthy) await recordCallSucceeded(db, provider);
      const waitMs = quota ? nextRequestInMs(quota) : 0;
      if (waitMs > 0) await pause(waitMs, 'request quota used up');
    },

    /** After a provider's failure: a 429 pauses everyone; the provider being unwell counts to the breaker. */
    async failed(error: ProviderError): Promise<void> {
      if (error.code === FailureCode.rateLimited) {
        await pause(error.retryAfterMs ?? DEFAULT_RATE_LIMIT_PAUSE_MS, 'rate limited');
      }
      if (BREAKER_FAILURES.has(error.code) && (await recordCallFailed(db, provider, circuit)) === 'opened') {
        circuitOpenings.inc({ provider });
        logger.warn({ provider, cooldownMs: circuit.cooldownMs }, 'circuit opened');
      }
    },
  };
}

export type ProviderCapacity = ReturnType<typeof providerCapacity>;
