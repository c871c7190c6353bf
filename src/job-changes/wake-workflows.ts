import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { SignalDefinition } from '@temporalio/common';
import type { Logger } from '../logger.js';

/**
 * Signals each workflow that what it waits on changed. A lost wake-up costs a delay, not the job: every
 * workflow woken this way also looks again on a timer. One not started yet (its row is written first)
 * finds the change when it first looks.
 */
export async function wakeWorkflows(
  { temporal, logger }: { temporal: Client; logger: Logger },
  workflowIds: readonly string[],
  signal: SignalDefinition,
): Promise<void> {
  await Promise.all(
    workflowIds.map((workflowId) =>
      temporal.workflow
        .getHandle(workflowId)
        .signal(signal)
        .catch((error: unknown) => {
          if (error instanceof WorkflowNotFoundError) return;
          // Named apart from `workflowId`, which in an activity's lines is the job the activity runs for.
          logger.warn(
            { wokenWorkflowId: workflowId, signal: signal.name, err: error },
            'wake-up signal failed',
          );
        }),
    ),
  );
}
