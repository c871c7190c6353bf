import { ActivityFailure, continueAsNew, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { WebhookDeliveryActivities } from '../activities/index.js';
import type { AttemptWebhookOutcome } from '../activities/webhook-delivery.js';
import type {
  DeliverWebhookInput,
  DeliverWebhookWorkflow,
  DeliveryRunOutcome,
  WebhookRetryPolicy,
} from './definitions.js';

function deliveryActivities({ attemptTimeoutSeconds }: WebhookRetryPolicy) {
  return proxyActivities<WebhookDeliveryActivities>({
    // The attempt itself, plus as long again waiting for the job's earlier deliveries to go first.
    startToCloseTimeout: `${2 * attemptTimeoutSeconds + 15}s`,
    // Temporal retries only what is not the receiver's answer (a lost worker, Postgres away); the
    // receiver's failures come back as outcomes, and the loop below owns their backoff and window.
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5 },
  });
}

// Recording that a run gave up must not be lost: retried until Postgres is back.
const bookkeeping = proxyActivities<WebhookDeliveryActivities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});

/** Exponential backoff with equal jitter, so that deliveries failing together do not retry together. */
function backoffMs(attempt: number, { initialBackoffMs, maxBackoffMs }: WebhookRetryPolicy): number {
  const ceiling = Math.min(maxBackoffMs, initialBackoffMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

async function attemptOnce(
  activities: ReturnType<typeof deliveryActivities>,
  input: DeliverWebhookInput,
): Promise<AttemptWebhookOutcome> {
  try {
    return await activities.attemptWebhookDelivery({ deliveryId: input.deliveryId, run: input.run });
  } catch (error) {
    // Our side failed (not the receiver): as good as a failed attempt, retried within the window.
    if (!(error instanceof ActivityFailure)) throw error;
    return {
      kind: 'failed',
      error: `attempt failed: ${error.cause?.message ?? error.message}`,
      permanent: false,
    };
  }
}

/*
 * Auto-upgrade under Worker Versioning (the workers' default): a delivery may retry for as long as its
 * window (a day, by default), and pinned it would hold every version up that long. A run moves to the
 * current build at its next task, so a change to its commands goes behind `patched()`.
 */

/**
 * One run of one webhook delivery: attempts with backoff until the receiver answers 2xx, or until the
 * retry window has passed (the last attempt lands at its end), then the delivery is `failed`. Started by
 * whatever changed the job, never awaited by the job.
 */
export async function deliverWebhook(input: DeliverWebhookInput): Promise<DeliveryRunOutcome> {
  const { deliveryId, run, retry } = input;
  const activities = deliveryActivities(retry);
  const giveUpAtMs = input.carried?.giveUpAtMs ?? Date.now() + retry.retryWindowSeconds * 1000;
  let attempts = input.carried?.attempts ?? 0;
  for (;;) {
    attempts += 1;
    const outcome = await attemptOnce(activities, input);
    if (outcome.kind === 'delivered') return 'succeeded';
    if (outcome.kind === 'settled') return 'settled';
    if (outcome.permanent || Date.now() >= giveUpAtMs) {
      await bookkeeping.markWebhookDeliveryFailed({ deliveryId, run, reason: outcome.error });
      return 'failed';
    }
    await sleep(Math.max(1, Math.min(backoffMs(attempts, retry), giveUpAtMs - Date.now())));
    // A short backoff cap over a long window makes a long history: carry on in a fresh one.
    if (workflowInfo().continueAsNewSuggested) {
      await continueAsNew<DeliverWebhookWorkflow>({ ...input, carried: { giveUpAtMs, attempts } });
    }
  }
}
