import type { Kysely } from 'kysely';
import type { Database, JobRow } from '../db/schema.js';
import { findUser } from '../db/user-repository.js';
import { JobStatus, ServiceTier, WaitReason, type Job, type QueueEstimate } from '../jobs/job.js';
import { planNamed } from '../jobs/plans.js';
import { withCredits } from './job-credits.js';
import { liveJob, type LiveJobDependencies } from './job-waiting.js';
import { estimateQueue, type EstimateConfig } from './queue-estimate.js';

export interface ReadJobDependencies extends LiveJobDependencies {
  db: Kysely<Database>;
  config: EstimateConfig;
}

/** Where a job that waits in a queue (Kiln's, or the provider's own) stands now; none for any other. */
async function queueOf(deps: ReadJobDependencies, row: JobRow): Promise<QueueEstimate | undefined> {
  const inQueue =
    (row.status === JobStatus.queued && row.tier === ServiceTier.standard) ||
    row.waiting?.reason === WaitReason.providerQueue;
  if (!inQueue) return undefined;
  const user = await findUser(deps.db, row.user_id);
  const plan = planNamed(deps.config.plans, user?.plan ?? deps.config.plans.defaultPlan);
  return estimateQueue(deps.db, deps.config, row, plan);
}

/**
 * The job as its GET shows it: why it waits, asked of its workflow (see liveJob); where it stands in
 * its queue, counted now; and its credits from the ledger.
 */
export async function readJob(deps: ReadJobDependencies, row: JobRow): Promise<Job> {
  const [live, queue] = await Promise.all([liveJob(deps, row), queueOf(deps, row)]);
  const [job] = await withCredits(deps.db, [queue ? { ...live, queue } : live]);
  return job ?? live;
}
