import { sql, type Kysely } from 'kysely';
import type { JobStatus } from '../jobs/job.js';
import type { Database, JobRow } from './schema.js';

/** An unfinished job and how long it has gone without a change (status or progress). */
export interface StuckJobRow {
  row: JobRow;
  idleSeconds: number;
}

/**
 * Jobs in one of `statuses` whose row has not changed for `idleSeconds`, longest idle first. A running
 * job's progress counts as a change, so a slow call that still reports progress is not listed.
 */
export async function listStuckJobs(
  db: Kysely<Database>,
  options: { statuses: readonly JobStatus[]; idleSeconds: number; limit: number },
): Promise<StuckJobRow[]> {
  const rows = await db
    .selectFrom('jobs')
    .selectAll()
    .select(sql<number>`extract(epoch from (now() - updated_at))`.as('idle_seconds'))
    .where('status', 'in', options.statuses)
    .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${options.idleSeconds})`)
    .orderBy('updated_at')
    .orderBy('id')
    .limit(options.limit)
    .execute();
  return rows.map(({ idle_seconds, ...row }) => ({ row, idleSeconds: Math.floor(Number(idle_seconds)) }));
}
