import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** A slot for the call, or how long to wait before asking again. */
export type SlotVerdict = { taken: true } | { taken: false; retryInMs: number };

/** While every slot is taken, a waiting call looks again this often. */
const SLOT_RECHECK_MS = 250;

function secondsFromNow(ms: number) {
  return sql<Date>`now() + make_interval(secs => ${ms / 1000})`;
}

/**
 * Takes one of the `capacity` call slots of `limitKey` for `jobId`, unless the provider is paused or all
 * slots are held. The advisory lock serialises takers of one key across every worker, so the count
 * and the insert cannot interleave. A job asking again renews its own slot.
 */
export async function takeProviderSlot(
  db: Kysely<Database>,
  limitKey: string,
  jobId: string,
  capacity: number,
  leaseMs: number,
): Promise<SlotVerdict> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${`provider_slots:${limitKey}`}))`.execute(trx);
    const pause = await trx
      .selectFrom('provider_pauses')
      .select(sql<number>`extract(epoch from (paused_until - now())) * 1000`.as('left_ms'))
      .where('limit_key', '=', limitKey)
      .where('paused_until', '>', sql<Date>`now()`)
      .executeTakeFirst();
    if (pause) return { taken: false, retryInMs: Math.max(1, Math.ceil(Number(pause.left_ms))) };
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
    if (Number(held) >= capacity) return { taken: false, retryInMs: SLOT_RECHECK_MS };
    await trx
      .insertInto('provider_slots')
      .values({ job_id: jobId, limit_key: limitKey, expires_at: secondsFromNow(leaseMs) })
      .onConflict((oc) =>
        oc.column('job_id').doUpdateSet({ limit_key: limitKey, expires_at: secondsFromNow(leaseMs) }),
      )
      .execute();
    return { taken: true };
  });
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
