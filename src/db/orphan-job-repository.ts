import { sql, type Kysely } from 'kysely';
import { JobStatus } from '../jobs/job.js';
import type { Database, JobRow } from './schema.js';

/**
 * Queued jobs older than `graceSeconds` whose workflow has never asked for admission, oldest first:
 * the rows that may have no workflow behind them.
 */
export async function findUnseenQueuedJobs(
  db: Kysely<Database>,
  graceSeconds: number,
  limit: number,
): Promise<JobRow[]> {
  return db
    .selectFrom('jobs')
    .selectAll()
    .where('status', '=', JobStatus.queued)
    .where('workflow_seen_at', 'is', null)
    .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${graceSeconds})`)
    .orderBy('created_at')
    .limit(limit)
    .execute();
}

/** Records that the job's workflow is running, so that the sweep stops looking at it. */
export async function markWorkflowSeen(db: Kysely<Database>, id: string): Promise<void> {
  await db
    .updateTable('jobs')
    .set({ workflow_seen_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('workflow_seen_at', 'is', null)
    .execute();
}
