import { sql, type Kysely } from 'kysely';
import type { RetentionPolicy } from '../config/index.js';
import { JobStatus } from '../jobs/job.js';
import type { Database } from './schema.js';

export interface PurgeCandidate {
  id: string;
  storageKey: string | null;
}

/** The oldest finished jobs past their retention period that still hold a result or details. */
export async function findPurgeCandidates(
  db: Kysely<Database>,
  policy: RetentionPolicy,
  limit: number,
): Promise<PurgeCandidate[]> {
  const olderThan = (days: number) => sql<Date>`now() - make_interval(days => ${days})`;
  const rows = await db
    .selectFrom('jobs')
    .select(['id', 'storage_key'])
    .where('purged_at', 'is', null)
    .where((eb) =>
      eb.or([
        eb.and([
          eb('status', '=', JobStatus.succeeded),
          eb('completed_at', '<', olderThan(policy.succeededDays)),
        ]),
        eb.and([
          eb('status', 'in', [JobStatus.failed, JobStatus.canceled, JobStatus.expired]),
          eb('completed_at', '<', olderThan(policy.unsuccessfulDays)),
        ]),
      ]),
    )
    .orderBy('completed_at')
    .limit(limit)
    .execute();
  return rows.map((row) => ({ id: row.id, storageKey: row.storage_key }));
}

/**
 * Turns rows into tombstones: the key and the hashes stay, the way to the result does not. The events,
 * streamed text and webhook deliveries go too (they hold the same details); a subscriber then sees the tombstone alone.
 * So does a result-cache entry the job produced: nothing is left to serve, and the entry would keep
 * the request's fingerprint for good.
 */
export async function markPurged(db: Kysely<Database>, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('jobs')
      .set({ purged_at: sql<Date>`now()`, storage_key: null, failure_message: null, provider_task_id: null })
      .where('id', 'in', ids)
      .execute();
    await trx.deleteFrom('job_events').where('job_id', 'in', ids).execute();
    await trx.deleteFrom('webhook_deliveries').where('job_id', 'in', ids).execute();
    await trx.deleteFrom('job_text_streams').where('job_id', 'in', ids).execute();
    await trx.deleteFrom('job_text_pieces').where('job_id', 'in', ids).execute();
    await trx.deleteFrom('generation_results').where('job_id', 'in', ids).execute();
  });
}
