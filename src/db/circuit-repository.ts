import { sql, type Kysely } from 'kysely';
import type { CircuitPolicy } from '../config/index.js';
import type { Database } from './schema.js';

/** Whether a call may go to the provider now, and if not, when to ask again. */
export type CallPermit =
  /** `healthy`: closed with no failures counted, so a success has nothing to reset. */
  { granted: true; probe: boolean; healthy: boolean } | { granted: false; retryInMs: number };

/** While a probe is out, waiting jobs look again this often (capped by the cool-down). */
const HALF_OPEN_RECHECK_MS = 2000;

async function takeProbe(db: Kysely<Database>, provider: string, policy: CircuitPolicy): Promise<boolean> {
  const taken = await db
    .updateTable('provider_circuits')
    .set({ state: 'half_open', probe_started_at: sql`now()` })
    .where('provider', '=', provider)
    .where((eb) =>
      eb.or([
        eb.and([eb('state', '=', 'open'), eb('open_until', '<=', sql<Date>`now()`)]),
        eb.and([
          eb('state', '=', 'half_open'),
          eb(
            'probe_started_at',
            '<',
            sql<Date>`now() - make_interval(secs => ${policy.probeTimeoutMs / 1000})`,
          ),
        ]),
      ]),
    )
    .returning('provider')
    .executeTakeFirst();
  return taken !== undefined;
}

/**
 * Asks the provider's breaker for a call. Closed: go. Open: wait out the cool-down. After it, exactly
 * one caller takes the probe (an atomic UPDATE) while the others keep waiting for its verdict.
 */
export async function requestCallPermit(
  db: Kysely<Database>,
  provider: string,
  policy: CircuitPolicy,
): Promise<CallPermit> {
  const circuit = await db
    .selectFrom('provider_circuits')
    .select([
      'state',
      'consecutive_failures',
      sql<number>`extract(epoch from (open_until - now())) * 1000`.as('open_for_ms'),
    ])
    .where('provider', '=', provider)
    .executeTakeFirst();
  if (!circuit) return { granted: true, probe: false, healthy: true };
  if (circuit.state === 'closed') {
    return { granted: true, probe: false, healthy: circuit.consecutive_failures === 0 };
  }
  if (await takeProbe(db, provider, policy)) return { granted: true, probe: true, healthy: false };
  const openForMs = Math.ceil(Number(circuit.open_for_ms ?? 0));
  const retryInMs =
    circuit.state === 'open' && openForMs > 0 ? openForMs : Math.min(HALF_OPEN_RECHECK_MS, policy.cooldownMs);
  return { granted: false, retryInMs: Math.max(100, retryInMs) };
}

/**
 * How long the provider's circuit stays open from now, while it cools down; undefined when it is not
 * (closed, past its cool-down with a probe to take, or awaiting a probe's verdict). A read only: no
 * probe is taken.
 */
export async function circuitOpenForMs(db: Kysely<Database>, provider: string): Promise<number | undefined> {
  const circuit = await db
    .selectFrom('provider_circuits')
    .select(sql<number>`extract(epoch from (open_until - now())) * 1000`.as('open_for_ms'))
    .where('provider', '=', provider)
    .where('state', '=', 'open')
    .where('open_until', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return circuit ? Math.ceil(Number(circuit.open_for_ms)) : undefined;
}

/** A call went through: the circuit closes and its failure count resets. */
export async function recordCallSucceeded(db: Kysely<Database>, provider: string): Promise<void> {
  await db
    .updateTable('provider_circuits')
    .set({ state: 'closed', consecutive_failures: 0, open_until: null, probe_started_at: null })
    .where('provider', '=', provider)
    .where((eb) => eb.or([eb('state', '!=', 'closed'), eb('consecutive_failures', '>', 0)]))
    .execute();
}

/** A call failed in a way that says the provider is unwell; enough of them in a row open the circuit. */
export async function recordCallFailed(
  db: Kysely<Database>,
  provider: string,
  policy: CircuitPolicy,
): Promise<'opened' | 'unchanged'> {
  return db.transaction().execute(async (trx) => {
    await trx
      .insertInto('provider_circuits')
      .values({ provider })
      .onConflict((oc) => oc.column('provider').doNothing())
      .execute();
    const circuit = await trx
      .selectFrom('provider_circuits')
      .select(['state', 'consecutive_failures'])
      .where('provider', '=', provider)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const failures = circuit.consecutive_failures + 1;
    // A failed probe re-opens at once; a closed circuit opens at the threshold; an open one stays as it is.
    const opens =
      circuit.state === 'half_open' || (circuit.state === 'closed' && failures >= policy.failureThreshold);
    const reopen = {
      state: 'open' as const,
      open_until: sql<Date>`now() + make_interval(secs => ${policy.cooldownMs / 1000})`,
      probe_started_at: null,
    };
    await trx
      .updateTable('provider_circuits')
      .set({ consecutive_failures: failures, ...(opens ? reopen : {}) })
      .where('provider', '=', provider)
      .execute();
    return opens ? 'opened' : 'unchanged';
  });
}
