import { WorkflowNotFoundError } from '@temporalio/client';
import { followersOf } from '../db/result-cache-repository.js';
import { sourceEndedSignal } from '../workflows/definitions.js';
import type { JobChangeContext } from './job-change-context.js';

/**
 * Wakes the jobs that joined `jobId`'s call (the result cache), now that it ended: each takes its
 * result, or, if it ended without one, calls the provider itself or joins whichever identical job does.
 */
export async function wakeCacheFollowers({ db, temporal, logger }: JobChangeContext, jobId: string) {
  const workflowIds = await followersOf(db, jobId);
  await Promise.all(
    workflowIds.map((workflowId) =>
      temporal.workflow
        .getHandle(workflowId)
        .signal(sourceEndedSignal)
        .catch((error: unknown) => {
          if (error instanceof WorkflowNotFoundError) return;
          // A lost wake-up costs a delay, not the job: a job that joined another looks again on a timer.
          logger.warn({ wokenWorkflowId: workflowId, err: error }, 'result cache wake-up failed');
        }),
    ),
  );
}
