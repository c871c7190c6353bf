import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { JobStatus } from '../jobs/job.js';
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
 * the ledger says was reserved. A settle spends it all, or `settleAt` of it (the price of the fallback
 * that served a job whose reservation covered a dearer one) and gives back the rest. A job reserved
 * nothing (created before credits existed) closes nothing; a second close of the same run is refused by
 * the unique index.
 */
export function closeReservationParts(
  jobId: string,
  status: keyof typeof CLOSE_KIND,
  settleAt?: number,
): RawBuilder<unknown>[] {
  const kind = CLOSE_KIND[status];
  const amount =
    kind === 'refund' ? sql`-amount` : settleAt === undefined ? sql`0` : sql`greatest(-amount - ${settleAt}, 0)`;
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

/** Credits held by reservations of a user's jobs that have not ended yet. */
export async function reservedCredits(db: Db, userId: string): Promise<number> {
  const { reserved } = await db
    .selectFrom('credit_ledger as r')
    .select(sql<string>`coalesce(-sum(r.amount), 0)`.as('reserved'))
    .where('r.user_id', '=', userId)
    .where('r.kind', '=', 'reserve')
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('credit_ledger as c')
            .select('c.id')
            .whereRef('c.job_id', '=', 'r.job_id')
            .whereRef('c.run', '=', 'r.run')
            .where('c.kind', 'in', ['settle', 'refund']),
        ),
      ),
    )
    .executeTakeFirstOrThrow();
  return Number(reserved);
}
