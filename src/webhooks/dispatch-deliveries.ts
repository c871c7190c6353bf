import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { markDispatched, undispatchedDeliveries } from '../db/webhook-repository.js';
import { inLinkedTrace } from '../observability/spans.js';
import {
  deliveryWorkflowId,
  type DeliverWebhookWorkflow,
  type WebhookRetryPolicy,
} from '../workflows/definitions.js';

/** What starting delivery workflows takes: the API and the activities each bring their own client. */
export interface DeliveryDispatch {
  db: Kysely<Database>;
  temporal: Client;
  /** The main task queue: delivery workflows and their activities run there. */
  taskQueue: string;
  retry: WebhookRetryPolicy;
}

/**
 * Starts the workflow of one run of a delivery and notes it. The workflow id is the run's, so a second
 * start (a retried activity, two dispatchers at once) is refused by Temporal and nothing is sent twice.
 * With tracing on, the run is a trace of its own, linked to the change of the job that dispatched it.
 */
export async function startDeliveryRun(dispatch: DeliveryDispatch, id: string, run: number): Promise<void> {
  try {
    const attributes = { 'kiln.webhook.delivery_id': id, 'kiln.webhook.run': run };
    await inLinkedTrace('webhook.dispatch', attributes, () =>
      dispatch.temporal.workflow.start<DeliverWebhookWorkflow>('deliverWebhook', {
        taskQueue: dispatch.taskQueue,
        workflowId: deliveryWorkflowId(id, run),
        args: [{ deliveryId: id, run, retry: dispatch.retry }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      }),
    );
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
  }
  await markDispatched(dispatch.db, id, run);
}

/**
 * Starts every delivery of the job that has no workflow yet, in event order. Called after each change
 * of a job with a webhook; whatever a crash left undispatched goes with the job's next change, and the
 * job always has a last one (its terminal status).
 */
export async function dispatchWebhookDeliveries(dispatch: DeliveryDispatch, jobId: string): Promise<void> {
  for (const { id, run } of await undispatchedDeliveries(dispatch.db, jobId)) {
    await startDeliveryRun(dispatch, id, run);
  }
}
