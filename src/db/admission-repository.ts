import { sql, type Kysely } from 'kysely';
import type { Plan } from '../config.js';
import { JobStatus, UNFINISHED_STATUSES } from '../jobs/job.js';
import type { Database } from './schema.js';

export interface Admission {
  /** Whether the asking job holds one of its user's running slots. */
  admitted: boolean;
  /** Workflows of the jobs this call admitted, other than the asking one: the ones to wake. */
  toWake: string[];
}

/**
 * Gives a user's free running slots to their oldest waiting jobs, then tells whether `jobId` holds one.
 * The user row is locked for the transaction, so concurrent admissions of one user run one at a time
 * and the plan's `maxRunning` is never exceeded.
 */
export async function admitWaitingJobs(
  db: Kysely<Database>,
  jobId: string,
  planOf: (name: string) => Plan,
): Promise<Admission> {
  return db.transaction().execute(async (trx) => {
    const user = await trx
      .selectFrom('users')
      .select(['id', 'plan'])
      .where('id', '=', (eb) => eb.selectFrom('jobs').select('user_id').where('id', '=', jobId))
      // Not FOR UPDATE: that would also block the foreign-key checks of concurrent submissions.
      .forNoKeyUpdate()
      .executeTakeFirstOrThrow();
    const { held } = await trx
      .selectFrom('jobs')
      .select((eb) => eb.fn.countAll<string>().as('held'))
      .where('user_id', '=', user.id)
      .where('status', 'in', UNFINISHED_STATUSES)
      .where('admitted_at', 'is not', null)
      .executeTakeFirstOrThrow();
    const free = planOf(user.plan).maxRunning - Number(held);
    const admitted =
      free <= 0
        ? []
        : await trx
            .updateTable('jobs')
            .set({ admitted_at: sql`now()` })
            .where('id', 'in', (eb) =>
              eb
                .selectFrom('jobs')
                .select('id')
                .where('user_id', '=', user.id)
                .where('status', '=', JobStatus.queued)
                .where('admitted_at', 'is', null)
                .orderBy('created_at')
                .orderBy('id')
                .limit(free)
                // A job locked now is ending (canceled, expired) and holds its row before the user's:
                // waiting for it here would deadlock with its credit refund.
                .forUpdate()
                .skipLocked(),
            )
            .returning(['id', 'workflow_id'])
            .execute();
    const self = await trx
      .selectFrom('jobs')
      .select('admitted_at')
      .where('id', '=', jobId)
      .executeTakeFirst();
    return {
      admitted: self !== undefined && self.admitted_at !== null,
      toWake: admitted.filter((job) => job.id !== jobId).map((job) => job.workflow_id),
    };
  });
}
