import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { admitWaitingJobs } from '../db/admission-repository.js';
import { admittedSignal } from '../workflows/definitions.js';
import type { ActivityDependencies } from './dependencies.js';

/** Per-user running slots: a plan's `maxRunning` jobs go on, the rest wait in submission order. */
export function createAdmissionActivities({ db, logger, plans }: ActivityDependencies) {
  async function wake(workflowIds: string[]): Promise<void> {
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

  return {
    /**
     * Hands the user's free slots to their oldest waiting jobs and wakes those; says whether `jobId` holds
     * a slot. Called when a job arrives and again once it has ended, to pass its slot on.
     */
    async admitWaitingJobs(jobId: string): Promise<boolean> {
      const { admitted, toWake } = await admitWaitingJobs(db, jobId, plans);
      await wake(toWake);
      return admitted;
    },
  };
}
