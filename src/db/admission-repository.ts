import { sql, type Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import { UNFINISHED_STATUSES } from '../jobs/job.js';
import { planNamed } from '../jobs/plans.js';
import type { Database } from './schema.js';

export interface Admission {
  /** Whether the asking job holds one of its user's running slots. */
  admitted: boolean;
  /** Workflows of the jobs this call admitted that wait for it (they asked already): the ones to wake. */
  toWake: string[];
}

/**
 * Gives a user's free running slots to their oldest waiting jobs, then tells whether `jobId` holds one.
 * The SQL function (migration 0015) locks the user's row while it counts and admits, so concurrent
 * admissions of one user run one at a time and the plan's `maxRunning` is never exceeded.
 */
export async function admitWaitingJobs(
  db: Kysely<Database>,
  jobId: string,
  plans: Config['plans'],
): Promise<Admission> {
  const maxRunning = Object.fromEntries(
    Object.entries(plans.byName).map(([name, plan]) => [name, plan.maxRunning]),
  );
  const { rows } = await sql<{ admitted: boolean; to_wake: string[] }>`
    select admitted, to_wake from admit_waiting_jobs(
      ${jobId}, ${JSON.stringify(maxRunning)}::jsonb, ${planNamed(plans, plans.defaultPlan).maxRunning}::integer,
      ${sql.val([...UNFINISHED_STATUSES])}::text[]
    )`.execute(db);
  const [admission] = rows;
  if (!admission) throw new Error(`admission of job ${jobId} returned nothing`);
  return { admitted: admission.admitted, toWake: admission.to_wake };
}
