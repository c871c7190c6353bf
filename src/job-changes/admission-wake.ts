import { WorkflowNotFoundError } from '@temporalio/client';
import { admitWaitingJobs } from '../db/admission-repository.js';
import { admittedSignal } from '../workflows/definitions.js';
import type { JobChangeContext } from './job-change-context.js';

async function wake({ temporal, logger }: JobChangeContext, workflowIds: string[]): Promise<void> {
  await Promise.all(
    workflowIds.map((workflowId) =>
      temporal.workflow
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
 * Run when a job arrives, and after the write that ends a job, to pass its slot on.
 */
export async function admitAndWake(context: JobChangeContext, jobId: string): Promise<boolean> {
  const { admitted, toWake } = await admitWaitingJobs(context.db, jobId, context.plans);
  await wake(context, toWake);
  return admitted;
}
