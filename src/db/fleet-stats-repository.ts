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

/**
 * Credits across the fleet: what users hold to spend, and what jobs not ended yet hold reserved. Read
 * over users and unfinished jobs only, so a scrape costs the same however long the ledger grows.
 */
export async function creditTotals(db: Kysely<Database>): Promise<{ balance: number; reserved: number }> {
  const { rows } = await sql<{ balance: string; reserved: string }>`
    select
      (select coalesce(sum(credits), 0) from users) as balance,
      (select coalesce(-sum(l.amount), 0) from jobs j
         join credit_ledger l on l.job_id = j.id and l.kind = 'reserve'
         where j.status = any(${sql.val([...UNFINISHED_STATUSES])})
           and not exists (
             select 1 from credit_ledger c
             where c.job_id = l.job_id and c.run = l.run and c.kind in ('settle', 'refund'))) as reserved
  `.execute(db);
  return { balance: Number(rows[0]?.balance ?? 0), reserved: Number(rows[0]?.reserved ?? 0) };
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
