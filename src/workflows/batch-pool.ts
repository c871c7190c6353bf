import { condition, continueAsNew, proxyActivities, setHandler, startChild } from '@temporalio/workflow';
import type { ProviderBatchActivities } from '../activities/index.js';
import { batchLineJoinedSignal, type BatchPoolInput, type ProviderBatchInput } from './definitions.js';

/* Forming a batch is one transaction on the pooled lines: quick, and retried until Postgres is back. */
const pool = proxyActivities<ProviderBatchActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

/** A pool with no line this long ends; the next line's join starts it again. */
const IDLE_MS = 10 * 60_000;
/** Batches one run forms before it continues as new, which keeps its history short. */
const BATCHES_PER_RUN = 100;
/** Joins that make the pool look before its window ends: a full batch need not wait for it. */
const JOINS_PER_LOOK = 100;

export function providerBatchWorkflowId(batchId: string): string {
  return `provider-batch-${batchId}`;
}

/**
 * The batch tier's pool for one provider and model: forms a batch of the pooled lines once its first
 * line has waited the window or a batch is full, and starts a workflow for each batch, which lives on
 * its own (it may take a day). The pooled lines are in the job table, not here: a join it missed is
 * found at its next look, and a job whose pool ended joins again and starts another. Auto-upgraded under
 * Worker Versioning (the workers' default), as the batches it starts are: a change to either's commands
 * goes behind `patched()`.
 */
export async function poolProviderBatches(input: BatchPoolInput): Promise<void> {
  const { provider, model } = input;
  let joined = 0;
  setHandler(batchLineJoinedSignal, () => {
    joined += 1;
  });
  for (let formed = 0; formed < BATCHES_PER_RUN;) {
    const seen = joined;
    const next = await pool.formProviderBatch({ provider, model });
    if (next.kind === 'formed') {
      const batch: ProviderBatchInput = { batchId: next.batchId, provider, pollSeconds: next.pollSeconds };
      await startChild('runProviderBatch', {
        workflowId: providerBatchWorkflowId(next.batchId),
        args: [batch],
        parentClosePolicy: 'ABANDON',
      });
      formed += 1;
    } else if (next.kind === 'empty') {
      if (!(await condition(() => joined !== seen, IDLE_MS))) return;
    } else {
      await condition(() => joined - seen >= JOINS_PER_LOOK, next.ms);
    }
  }
  await continueAsNew<typeof poolProviderBatches>(input);
}
