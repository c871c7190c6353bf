import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { admitWaitingJobs } from '../db/admission-repository.js';
import { admittedSignal } from '../workflows/definitions.js';
import type { ActivityDependencies } from './dependencies.js';

async function wake({ logger }: ActivityDependencies, workflowIds: string[]): Promise<void> {
  const { client } = Context.current();
  await Promise.all(
    workflowIds.map((workflowId) =>
      client.workflow
        .getHandle(workflowId)
        .signal(admittedSignal)
        .catch((error: unknown) => {
          // Not started yet (its row is written first): it finds its slot when it asks at start.
          if (error instanceof WorkflowNotFoundError) return;
          // A lost wake-up costs a delay, not the job: waiting workflows re-check on a timer.
          // Named apart from `workflowId`, which in an activity's lines is the job the activity runs for.
          logger.warn({ wokenWorkflowId: workflowId, err: error }, 'admission signal failed');
        }),
    ),
  );
}

/**
 * Per-user running slots: a plan's `maxRunning` jobs go on, the rest wait in submission order. Hands the
 * user's free slots to their oldest waiting jobs and wakes those; says whether `jobId` holds a slot.
 * Called when a job arrives, and by the write that ends a job, to pass its slot on.
 */
export async function admitAndWake(deps: ActivityDependencies, jobId: string): Promise<boolean> {
  const { admitted, toWake } = await admitWaitingJobs(deps.db, jobId, deps.plans);
  await wake(deps, toWake);
  return admitted;
}

export function createAdmissionActivities(deps: ActivityDependencies) {
  return {
    /** Whether the arriving job `jobId` holds one of its user's running slots, admitting it if one is free. */
    async admitWaitingJobs(jobId: string): Promise<boolean> {
      return admitAndWake(deps, jobId);
    },
  };
}
