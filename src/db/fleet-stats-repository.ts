import { sql, type Kysely } from 'kysely';
import { JobStatus, UNFINISHED_STATUSES } from '../jobs/job.js';
import type { Database } from './schema.js';

/** Unfinished jobs across the fleet, by status; every unfinished status is present. */
export async function countUnfinishedJobsByStatus(db: Kysely<Database>): Promise<Map<JobStatus, number>> {
  const rows = await db
    .selectFrom('jobs')
    .select(['status', (eb) => eb.fn.countAll<string>().as('count')])
    .where('status', 'in', UNFINISHED_STATUSES)
    .groupBy('status')
    .execute();
  return new Map(
    UNFINISHED_STATUSES.map((status) => [
      status,
      Number(rows.find((row) => row.status === status)?.count ?? 0),
    ]),
  );
}

/** Each provider's shared breaker as the `provider_circuits` table holds it. */
export async function listCircuitStates(
  db: Kysely<Database>,
): Promise<{ provider: string; state: 'closed' | 'open' | 'half_open' }[]> {
  return db.selectFrom('provider_circuits').select(['provider', 'state']).orderBy('provider').execute();
}

/** Jobs that ended succeeded or failed within the last `windowSeconds`, and how many of them failed. */
export async function countFinishedJobs(
  db: Kysely<Database>,
  windowSeconds: number,
): Promise<{ finished: number; failed: number }> {
  const row = await db
    .selectFrom('jobs')
    .select([
      (eb) => eb.fn.countAll<string>().as('finished'),
      sql<string>`count(*) filter (where status = ${JobStatus.failed})`.as('failed'),
    ])
    .where('status', 'in', [JobStatus.succeeded, JobStatus.failed])
    .where('completed_at', '>', sql<Date>`now() - make_interval(secs => ${windowSeconds})`)
    .executeTakeFirstOrThrow();
  return { finished: Number(row.finished), failed: Number(row.failed) };
}
