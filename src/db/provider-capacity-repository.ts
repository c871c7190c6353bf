import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';

/** A slot for the call, or how long to wait before asking again. */
export type SlotVerdict = { taken: true } | { taken: false; retryInMs: number };

/** What a caller asks `takeProviderSlot` for: a call of `limitKey` on behalf of `jobId`. */
export interface SlotAsk {
  limitKey: string;
  jobId: string;
  /** Calls of the key in flight at once, fleet-wide. */
  capacity: number;
  /** Least time between the starts of two calls of the key, fleet-wide: 60 000 / rpm. */
  intervalMs: number;
  /** A slot not renewed within this is free again. */
  leaseMs: number;
}

/** While every slot is taken, a waiting call looks again this often. */
const SLOT_RECHECK_MS = 250;

/**
 * The pacing's clock: when its own statement started, after the advisory lock was granted. `now()` is
 * when the transaction began, before the wait for the lock, so two takes could be closer than their
 * `now()`s say.
 */
const pacingNow = sql<Date>`statement_timestamp()`;

function secondsFromNow(ms: number) {
  return sql<Date>`now() + make_interval(secs => ${ms / 1000})`;
}

/**
 * Takes one of the `capacity` call slots of `limitKey` for `jobId`, unless the provider is paused, all
 * slots are held, or the key's next turn (its pacing) has not come. The advisory lock serialises takers
 * of one key across every worker, so the checks and the writes cannot interleave. A job asking again
 * renews its own slot.
 */
export async function takeProviderSlot(db: Kysely<Database>, ask: SlotAsk): Promise<SlotVerdict> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${`provider_slots:${ask.limitKey}`}))`.execute(trx);
    const pausedForMs = await pauseLeftMs(trx, ask.limitKey);
    if (pausedForMs > 0) return { taken: false, retryInMs: pausedForMs };
    if ((await slotsHeldByOthers(trx, ask)) >= ask.capacity) {
      return { taken: false, retryInMs: SLOT_RECHECK_MS };
    }
    // Paced last, so that only a call that really starts moves the key's next call time on.
    const paced = await advancePacing(trx, ask.limitKey, ask.intervalMs);
    if (!paced.taken) return paced;
    await trx
      .insertInto('provider_slots')
      .values({ job_id: ask.jobId, limit_key: ask.limitKey, expires_at: secondsFromNow(ask.leaseMs) })
      .onConflict((oc) =>
        oc.column('job_id').doUpdateSet({ limit_key: ask.limitKey, expires_at: secondsFromNow(ask.leaseMs) }),
      )
      .execute();
    return { taken: true };
  });
}

/** How long the provider is still paused for, in whole ms; 0 when it is not. */
async function pauseLeftMs(trx: Transaction<Database>, limitKey: string): Promise<number> {
  const pause = await trx
    .selectFrom('provider_pauses')
    .select(sql<number>`extract(epoch from (paused_until - now())) * 1000`.as('left_ms'))
    .where('limit_key', '=', limitKey)
    .where('paused_until', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return pause ? Math.max(1, Math.ceil(Number(pause.left_ms))) : 0;
}

/** Live slots of the key held for other jobs; lapsed leases (dead workers') are deleted first. */
async function slotsHeldByOthers(trx: Transaction<Database>, { limitKey, jobId }: SlotAsk): Promise<number> {
  await trx
    .deleteFrom('provider_slots')
    .where('limit_key', '=', limitKey)
    .where('expires_at', '<=', sql<Date>`now()`)
    .execute();
  const { held } = await trx
    .selectFrom('provider_slots')
    .select((eb) => eb.fn.countAll<string>().as('held'))
    .where('limit_key', '=', limitKey)
    .where('job_id', '!=', jobId)
    .executeTakeFirstOrThrow();
  return Number(held);
}

/**
 * How late, as a share of the interval, a call may take its turn and keep the key's schedule (GCRA's
 * delay-variation tolerance). A waiter asks again a few ms after its turn has come; were each call's
 * lateness to push the schedule back, the rate would lose it like a fixed headroom (measured without
 * it: 255–259 ms between calls for a 250 ms interval).
 */
const LATENESS_KEPT = 0.25;

/**
 * GCRA, one timestamp per key: a call may start once the key's `next_call_at` has come, and sets it one
 * interval after the later of its old value and this call's start less `LATENESS_KEPT`. Calls thus
 * start at least ¾ of an interval apart and one interval apart on average, and a provider bucket of two
 * or more absorbs the jitter between here and the provider. Before the turn, the exact wait for it.
 */
async function advancePacing(
  trx: Transaction<Database>,
  limitKey: string,
  intervalMs: number,
): Promise<SlotVerdict> {
  const interval = sql`make_interval(secs => ${intervalMs / 1000})`;
  const lateness = sql`make_interval(secs => ${(intervalMs * LATENESS_KEPT) / 1000})`;
  const advanced = await trx
    .insertInto('provider_pacing')
    .values({ limit_key: limitKey, next_call_at: sql<Date>`${pacingNow} + ${interval}` })
    .onConflict((oc) =>
      oc
        .column('limit_key')
        .doUpdateSet({
          next_call_at: sql<Date>`greatest(provider_pacing.next_call_at, ${pacingNow} - ${lateness}) + ${interval}`,
        })
        .where(sql<boolean>`provider_pacing.next_call_at <= ${pacingNow}`),
    )
    .returning('limit_key')
    .executeTakeFirst();
  if (advanced) return { taken: true };
  const { wait_ms } = await trx
    .selectFrom('provider_pacing')
    .select(sql<number>`extract(epoch from (next_call_at - ${pacingNow})) * 1000`.as('wait_ms'))
    .where('limit_key', '=', limitKey)
    .executeTakeFirstOrThrow();
  return { taken: false, retryInMs: Math.max(1, Math.ceil(Number(wait_ms))) };
}

/** Keeps a slot of a call still in flight from lapsing. */
export async function renewProviderSlot(db: Kysely<Database>, jobId: string, leaseMs: number): Promise<void> {
  await db
    .updateTable('provider_slots')
    .set({ expires_at: secondsFromNow(leaseMs) })
    .where('job_id', '=', jobId)
    .execute();
}

export async function releaseProviderSlot(db: Kysely<Database>, jobId: string): Promise<void> {
  await db.deleteFrom('provider_slots').where('job_id', '=', jobId).execute();
}

/** Holds every call of `limitKey` back for `ms`; a later end already set is kept. */
export async function pauseProvider(db: Kysely<Database>, limitKey: string, ms: number): Promise<void> {
  await db
    .insertInto('provider_pauses')
    .values({ limit_key: limitKey, paused_until: secondsFromNow(ms) })
    .onConflict((oc) =>
      oc.column('limit_key').doUpdateSet({
        paused_until: sql<Date>`greatest(provider_pauses.paused_until, excluded.paused_until)`,
      }),
    )
    .execute();
}
