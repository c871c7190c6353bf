import { CancellationScope, condition, isCancellation, setHandler } from '@temporalio/workflow';
import type { BatchMemberState } from '../db/batch-repository.js';
import type { BatchMemberOutcome } from '../db/schema.js';
import {
  BATCH_COMPLETION_WINDOW_SECONDS,
  BatchMiss,
  DEFAULT_MAX_TOKENS,
  FailureCode,
  JobStatus,
  WaitReason,
  type JobEnding,
  type JobFailureCode,
} from '../jobs/job.js';
import { creditsForUsage } from '../jobs/token-pricing.js';
import { batchJobs, jobTable, results } from './activity-stubs.js';
import { batchChangedSignal, type BatchTierInput, type GenerationInput } from './definitions.js';
import { JobFailure, type CallLimits } from './provider-calls.js';

/** A wake-up lost to a crash costs at most this long: a batch job looks at its line again. */
const RECHECK_MS = 60_000;

type Limits = Pick<CallLimits, 'deadlines' | 'waits'>;

/** Why the batch tier cannot serve the job in time, if it cannot: read before its line is pooled. */
function tooSoon(batch: BatchTierInput, { deadlines }: Limits): string | undefined {
  const sentBy = Date.now() + batch.windowSeconds * 1000;
  if (deadlines.startBy() < sentBy) return 'its start deadline is nearer than a batch is sent';
  const finishBy = deadlines.finishBy();
  if (finishBy !== undefined && finishBy < sentBy + BATCH_COMPLETION_WINDOW_SECONDS * 1000) {
    return 'its finish deadline is nearer than a batch may take';
  }
  return undefined;
}

/**
 * The batch tier could not serve the job: it moves to the standard tier (undefined: the caller calls
 * the provider), or fails as its request chose, with `code` when its line failed of its own.
 */
async function missed(
  jobId: string,
  batch: BatchTierInput,
  why: string,
  code: JobFailureCode = FailureCode.deadlineExceeded,
): Promise<undefined> {
  if (batch.onMiss === BatchMiss.fail) throw new JobFailure(code, `the batch tier missed: ${why}`);
  await batchJobs.leaveBatchTier(jobId);
  return undefined;
}

/** Counts the job's batch wake-ups; `since(seen)` tells whether one came after `seen`. */
function batchWakeUps() {
  let count = 0;
  setHandler(batchChangedSignal, () => {
    count += 1;
  });
  return { now: () => count, since: (seen: number) => condition(() => count !== seen, RECHECK_MS) };
}

type WakeUps = ReturnType<typeof batchWakeUps>;

/**
 * Follows the job's line until its batch settled. Pooled, the job waits as `provider_batch` and joins
 * again at each look (a pool that ended starts anew); once its batch was sent it is `running`.
 */
async function followLine(
  input: GenerationInput,
  limits: Limits,
  wakeUps: WakeUps,
  setStatus: (status: JobStatus) => void,
): Promise<BatchMemberOutcome> {
  const { jobId, request } = input;
  const maxTokens = request.maxTokens ?? DEFAULT_MAX_TOKENS;
  const join = () =>
    batchJobs.joinProviderBatch({
      jobId,
      provider: request.provider,
      line: { jobId, prompt: request.prompt, model: request.model, maxTokens },
    });
  let sent = false;
  for (let state: BatchMemberState = await join(); ;) {
    if (state.outcome) return state.outcome;
    if (state.stage === 'submitted' && !sent) {
      limits.waits.leave();
      await batchJobs.startBatchLine(jobId);
      setStatus(JobStatus.running);
      sent = true;
    } else if (!sent) {
      await limits.waits.enter(WaitReason.providerBatch, 1, undefined);
    }
    const seen = wakeUps.now();
    await wakeUps.since(seen);
    state = state.stage === 'pooled' ? await join() : ((await batchJobs.batchMemberState(jobId)) ?? state);
  }
}

/**
 * A cancel while the job is in the batch tier: a line not yet in a sealed batch is taken back and the
 * cancel stands at once. Otherwise the provider has the line and runs (and bills) it: the job ends
 * `canceled` when its batch settles, charged what its line was billed, and the cancel then stands.
 */
async function cancelInBatch(jobId: string, batch: BatchTierInput, wakeUps: WakeUps): Promise<void> {
  if ((await batchJobs.leaveProviderBatch(jobId)) === 'left') return;
  for (;;) {
    const seen = wakeUps.now();
    const outcome = (await batchJobs.batchMemberState(jobId))?.outcome;
    if (outcome) {
      const billed = outcome.outcome === 'succeeded' ? creditsForUsage(batch.pricing, outcome.usage) : 0;
      await jobTable.markJobCanceled(jobId, undefined, billed);
      return;
    }
    await wakeUps.since(seen);
  }
}

/** The job's end as its line ended, or its move to the standard tier (undefined). */
async function endAsLineEnded(
  jobId: string,
  batch: BatchTierInput,
  outcome: BatchMemberOutcome,
): Promise<JobEnding | undefined> {
  switch (outcome.outcome) {
    case 'succeeded': {
      // A job that never looked while its batch was out went straight from pooled to settled.
      await batchJobs.startBatchLine(jobId);
      const { output, usage } = await batchJobs.takeBatchResult(jobId);
      const settleAt = creditsForUsage(batch.pricing, usage);
      return results.storeResultAndSucceed({ jobId, output, settleAt });
    }
    case 'failed':
      if (!outcome.retryable) throw new JobFailure(outcome.code, outcome.message);
      return missed(jobId, batch, `its line failed: ${outcome.message}`, outcome.code);
    case 'unrun':
      return missed(jobId, batch, `its batch ended (${outcome.reason}) before its line ran`);
  }
}

/**
 * Serves a job of the batch tier: its line is pooled with others of its provider and model, sent in a
 * provider batch, and the job ends as its line did, charged the batch price of the tokens its line
 * used. Resolves to undefined when the job is to call the provider itself (its `onBatchMiss`).
 */
export async function serveInBatch(
  input: GenerationInput,
  batch: BatchTierInput,
  limits: Limits,
  setStatus: (status: JobStatus) => void,
): Promise<JobEnding | undefined> {
  const { jobId } = input;
  const why = tooSoon(batch, limits);
  if (why) return missed(jobId, batch, why);
  const wakeUps = batchWakeUps();
  let outcome: BatchMemberOutcome;
  try {
    outcome = await followLine(input, limits, wakeUps, setStatus);
  } catch (error) {
    if (isCancellation(error)) {
      await CancellationScope.nonCancellable(() => cancelInBatch(jobId, batch, wakeUps));
    }
    throw error;
  }
  limits.waits.leave();
  return endAsLineEnded(jobId, batch, outcome);
}
