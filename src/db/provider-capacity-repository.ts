import { sql, type Kysely } from 'kysely';
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
 * How late, as a share of the interval, a call may take its turn and keep the key's schedule (GCRA's
 * delay-variation tolerance). A waiter asks again a few ms after its turn has come; were each call's
 * lateness to push the schedule back, the rate would lose it like a fixed headroom (measured without
 * it: 255–259 ms between calls for a 250 ms interval). Calls thus start at least ¾ of an interval
 * apart and one interval apart on average; a provider bucket of two or more absorbs the jitter.
 */
const LATENESS_KEPT = 0.25;

function secondsFromNow(ms: number) {
  return sql<Date>`now() + make_interval(secs => ${ms / 1000})`;
}

/**
 * Takes one of the `capacity` call slots of `limitKey` for `jobId`, unless the provider is paused, all
 * slots are held, or the key's next turn (its pacing) has not come; then says how long to wait. One
 * statement: the SQL function (migration 0014) holds the key's advisory lock for one round trip.
 */
export async function takeProviderSlot(db: Kysely<Database>, ask: SlotAsk): Promise<SlotVerdict> {
  const { rows } = await sql<{ retry_in_ms: number | null }>`
    select take_provider_slot(
      ${ask.limitKey}, ${ask.jobId}, ${ask.capacity}::integer,
      ${ask.intervalMs}::float8, ${ask.intervalMs * LATENESS_KEPT}::float8,
      ${ask.leaseMs}::float8, ${SLOT_RECHECK_MS}::float8
    ) as retry_in_ms`.execute(db);
  const retryInMs = rows[0]?.retry_in_ms ?? null;
  return retryInMs === null ? { taken: true } : { taken: false, retryInMs: Number(retryInMs) };
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

/** Whether every call of `limitKey` is held back now, after a 429 or an emptied quota. */
export async function isProviderPaused(db: Kysely<Database>, limitKey: string): Promise<boolean> {
  const paused = await db
    .selectFrom('provider_pauses')
    .select('limit_key')
    .where('limit_key', '=', limitKey)
    .where('paused_until', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return paused !== undefined;
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
