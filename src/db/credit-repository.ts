import { sql, type Kysely, type Transaction } from 'kysely';
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
 * Takes a job's cost from its user's balance, inside the transaction that inserts the job. The
 * conditional UPDATE is what keeps concurrent submissions from overdrawing: each waits for the row lock
 * and re-checks the balance it finds. Throws InsufficientCreditsError, which rolls the job back too.
 */
export async function reserveCredits(
  trx: Transaction<Database>,
  userId: string,
  jobId: string,
  cost: number,
): Promise<void> {
  const entry = await trx
    .insertInto('credit_ledger')
    .values({ user_id: userId, job_id: jobId, kind: 'reserve', amount: -cost })
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!entry) return;
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
 * Settles or refunds a job's reservation, inside the transaction that records the job's terminal status.
 * A refund gives back exactly what the ledger says was reserved. A job reserved nothing (created before
 * credits existed) closes nothing; a second close of the same job is refused by the unique index.
 */
export async function closeReservation(
  trx: Transaction<Database>,
  jobId: string,
  status: keyof typeof CLOSE_KIND,
): Promise<void> {
  const kind = CLOSE_KIND[status];
  const entry = await trx
    .insertInto('credit_ledger')
    .columns(['user_id', 'job_id', 'kind', 'amount'])
    .expression((eb) =>
      eb
        .selectFrom('credit_ledger')
        .select([
          'user_id',
          'job_id',
          eb.val(kind).as('kind'),
          (kind === 'refund' ? sql<number>`-amount` : sql<number>`0`).as('amount'),
        ])
        .where('job_id', '=', jobId)
        .where('kind', '=', 'reserve'),
    )
    .onConflict((oc) => oc.doNothing())
    .returning(['user_id', 'amount'])
    .executeTakeFirst();
  if (entry && entry.amount !== 0) await addToBalance(trx, entry.user_id, entry.amount);
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
            .where('c.kind', 'in', ['settle', 'refund']),
        ),
      ),
    )
    .executeTakeFirstOrThrow();
  return Number(reserved);
}
