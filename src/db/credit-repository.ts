import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { JobStatus, type JobCredits } from '../jobs/job.js';
import type { Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A submission's cost is more than the user's balance; nothing was reserved. */
export class InsufficientCreditsError extends Error {
  override readonly name = 'InsufficientCreditsError';

  constructor(
    readonly cost: number,
    readonly balance: number,
  ) {
    super(`the job costs ${cost} credits; the balance is ${balance}`);
  }
}

/** How a terminal job closes its reservation: success spends it, every other end gives it back. */
const CLOSE_KIND = {
  [JobStatus.succeeded]: 'settle',
  [JobStatus.failed]: 'refund',
  [JobStatus.canceled]: 'refund',
  [JobStatus.expired]: 'refund',
} as const satisfies Partial<Record<JobStatus, 'settle' | 'refund'>>;

/** Whether entering `status` closes a job's reservation. */
export function closesReservation(status: JobStatus): status is keyof typeof CLOSE_KIND {
  return status in CLOSE_KIND;
}

async function addToBalance(trx: Transaction<Database>, userId: string, amount: number): Promise<number> {
  const { credits } = await trx
    .updateTable('users')
    .set({ credits: sql<number>`credits + ${amount}` })
    .where('id', '=', userId)
    .returning('credits')
    .executeTakeFirstOrThrow();
  return credits;
}

/** Adds `amount` credits to a user within `trx`; returns the new balance. */
export async function grantCreditsIn(
  trx: Transaction<Database>,
  userId: string,
  amount: number,
): Promise<number> {
  await trx.insertInto('credit_ledger').values({ user_id: userId, kind: 'grant', amount }).execute();
  return addToBalance(trx, userId, amount);
}

/** Adds `amount` credits to a user; returns the new balance. */
export async function grantCredits(db: Kysely<Database>, userId: string, amount: number): Promise<number> {
  return db.transaction().execute((trx) => grantCreditsIn(trx, userId, amount));
}

/**
 * The conditional UPDATE is what keeps concurrent reservations from overdrawing: each waits for the row
 * lock and re-checks the balance it finds.
 */
async function takeFromBalance(trx: Transaction<Database>, userId: string, cost: number): Promise<void> {
  const taken = await trx
    .updateTable('users')
    .set({ credits: sql<number>`credits - ${cost}` })
    .where('id', '=', userId)
    .where('credits', '>=', cost)
    .returning('credits')
    .executeTakeFirst();
  if (taken) return;
  const { credits } = await trx
    .selectFrom('users')
    .select('credits')
    .where('id', '=', userId)
    .executeTakeFirstOrThrow();
  throw new InsufficientCreditsError(cost, credits);
}

/**
 * Reserves a failed job's cost again for an operator's retry, inside the transaction that re-queues it:
 * the amount its last run reserved (the price the user was quoted), as the job's next run. A job that
 * reserved nothing reserves nothing. Throws InsufficientCreditsError, which rolls the re-queue back too.
 */
export async function reserveCreditsAgain(trx: Transaction<Database>, jobId: string): Promise<void> {
  const last = await trx
    .selectFrom('credit_ledger')
    .select(['user_id', 'amount', 'run'])
    .where('job_id', '=', jobId)
    .where('kind', '=', 'reserve')
    .orderBy('run', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!last) return;
  const cost = -last.amount;
  await trx
    .insertInto('credit_ledger')
    .values({ user_id: last.user_id, job_id: jobId, kind: 'reserve', amount: last.amount, run: last.run + 1 })
    .execute();
  await takeFromBalance(trx, last.user_id, cost);
}

/**
 * Settles or refunds a job's reservation (its latest run's), as parts of the statement that records the
 * job's terminal status (run only if its `updated` part wrote the row). A refund gives back exactly what
 * the ledger says was reserved. A settle spends it all, or `settleAt` of it and gives back the rest:
 * the price of the fallback that served a job whose reservation covered a dearer one, or of the tokens
 * a text job used. A job that ends without a result settles at `settleAt` too when given one (the text
 * its call streamed, which the provider bills), else is refunded. Never more than was reserved. A job
 * that reserved nothing (created before credits existed) closes nothing; a second close of the same
 * run is refused by the unique index.
 */
export function closeReservationParts(
  jobId: string,
  status: keyof typeof CLOSE_KIND,
  settleAt?: number,
): RawBuilder<unknown>[] {
  const kind = settleAt !== undefined && settleAt > 0 ? 'settle' : CLOSE_KIND[status];
  const amount =
    kind === 'refund'
      ? sql`-amount`
      : settleAt === undefined
        ? sql`0`
        : sql`greatest(-amount - ${settleAt}, 0)`;
  return [
    sql`closed as (
      insert into credit_ledger (user_id, job_id, kind, amount, run)
      select user_id, job_id, ${kind}, ${amount}, run from credit_ledger
      where job_id = ${jobId} and kind = 'reserve' and exists (select 1 from updated)
      order by run desc limit 1
      on conflict do nothing
      returning user_id, amount)`,
    sql`given_back as (
      update users set credits = users.credits + closed.amount
      from closed where users.id = closed.user_id and closed.amount <> 0)`,
  ];
}

/**
 * A user's credits over their jobs: held by reservations of jobs that have not ended yet, charged for
 * jobs that ended, and given back of what those reserved.
 */
export async function creditTotals(
  db: Db,
  userId: string,
): Promise<{ reserved: number; settled: number; refunded: number }> {
  const { rows } = await sql<{ reserved: string; settled: string; refunded: string }>`
    select
      coalesce(sum(-r.amount) filter (where c.id is null), 0) as reserved,
      coalesce(sum(-r.amount - c.amount), 0) as settled,
      coalesce(sum(c.amount), 0) as refunded
    from credit_ledger r
    left join credit_ledger c
      on c.job_id = r.job_id and c.run = r.run and c.kind in ('settle', 'refund')
    where r.user_id = ${userId} and r.kind = 'reserve'`.execute(db);
  const [totals] = rows;
  return {
    reserved: Number(totals?.reserved ?? 0),
    settled: Number(totals?.settled ?? 0),
    refunded: Number(totals?.refunded ?? 0),
  };
}

/**
 * Each job's credits as its latest run's ledger entries say (see JobCredits); a job that reserved
 * nothing is left out. One statement for a whole page of jobs.
 */
export async function creditsOfJobs(db: Db, jobIds: readonly string[]): Promise<Map<string, JobCredits>> {
  if (jobIds.length === 0) return new Map();
  const { rows } = await sql<{ job_id: string; reserved: number; returned: number | null }>`
    select distinct on (r.job_id) r.job_id, -r.amount as reserved, c.amount as returned
    from credit_ledger r
    left join credit_ledger c
      on c.job_id = r.job_id and c.run = r.run and c.kind in ('settle', 'refund')
    where r.kind = 'reserve' and r.job_id = any(${sql.val([...jobIds])}::text[])
    order by r.job_id, r.run desc`.execute(db);
  return new Map(
    rows.map(({ job_id, reserved, returned }) => [
      job_id,
      {
        reserved,
        settled: returned === null ? null : reserved - returned,
        refunded: returned,
      },
    ]),
  );
}
