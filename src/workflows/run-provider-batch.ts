import { ActivityFailure, continueAsNew, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { ProviderBatchActivities } from '../activities/index.js';
import type { ProviderBatchInput } from './definitions.js';

/*
 * Sending uploads one file of at most BATCH_MAX_JOBS lines and creates the batch: minutes at most.
 * Retried for about half an hour; past that the batch is abandoned and its jobs move on as their
 * `onBatchMiss` says, rather than wait on a provider that will not take it.
 */
const sending = proxyActivities<ProviderBatchActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5m', maximumAttempts: 12 },
});

/*
 * Once sent, the provider runs (and bills) the batch whatever happens here: it is followed until it
 * ends, retrying for as long as that takes, since only its end tells each job how its line ended.
 */
const following = proxyActivities<ProviderBatchActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5m' },
});

/** Sends the batch; false when it ended unsent (nothing in it, refused, or abandoned). */
async function send(input: ProviderBatchInput): Promise<boolean> {
  const { batchId, provider } = input;
  try {
    return (await sending.submitProviderBatch({ batchId, provider })) === 'submitted';
  } catch (error) {
    if (!(error instanceof ActivityFailure)) throw error;
    const message = `the batch could not be sent: ${error.cause?.message ?? error.message}`;
    await following.abandonProviderBatch({ batchId, message, sent: false });
    return false;
  }
}

/** Polls the sent batch until the provider ends it, then settles each line for its job. */
async function follow(input: ProviderBatchInput): Promise<void> {
  const { batchId, provider, pollSeconds } = input;
  while (!(await following.pollProviderBatch({ batchId, provider }))) {
    if (workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof runProviderBatch>({ ...input, sent: true });
    }
    await sleep(pollSeconds * 1000);
  }
  await following.settleProviderBatch({ batchId, provider });
}

/**
 * One provider batch, from its file to each line's outcome: sent, polled until the provider ends it,
 * then settled for its jobs. Continues as new while it polls, for a batch may take a day. Following
 * is retried for as long as it fails retryably; a refusal (the key revoked, the batch or its files
 * unreadable) fails its jobs rather than leave them waiting on a batch no one follows.
 */
export async function runProviderBatch(input: ProviderBatchInput): Promise<void> {
  const { batchId } = input;
  if (!input.sent && !(await send(input))) return;
  try {
    await follow(input);
  } catch (error) {
    if (!(error instanceof ActivityFailure)) throw error;
    const message = `the batch could not be followed: ${error.cause?.message ?? error.message}`;
    await following.abandonProviderBatch({ batchId, message, sent: true });
  }
}
