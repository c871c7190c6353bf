import {
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  proxyActivities,
  sleep,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { ProviderActivities } from '../activities/index.js';
import type { ProviderFailure, ProviderFailureDetails } from '../jobs/failures.js';
import { FailureCode, isJobFailureCode, WaitReason, type JobFailureCode } from '../jobs/job.js';
import type { GenerationInput } from './definitions.js';
import type { JobDeadlines } from './job-deadlines.js';
import type { JobWaits } from './job-waits.js';
import { ProviderRoute } from './provider-route.js';

/** Ends the job: its code and message go to the job table. */
export class JobFailure extends Error {
  constructor(
    readonly code: JobFailureCode,
    message: string,
  ) {
    super(message);
  }
}

/** The job's start deadline passed before any provider call. */
export class JobExpired extends Error {}

/** Reads the code and retry verdict off a failed activity; anything unclassified is `internal`. */
export function failureOf(error: unknown): ProviderFailure {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (cause instanceof ApplicationFailure && cause.type && isJobFailureCode(cause.type)) {
    const details = cause.details?.[0] as ProviderFailureDetails | undefined;
    return {
      code: cause.type,
      message: cause.message,
      retryable: !cause.nonRetryable,
      retryAfterMs: details?.retryAfterMs,
      probe: details?.probe ?? false,
      taskLivesOn: details?.taskLivesOn ?? false,
    };
  }
  // Temporal's own retries of this activity ran out on lost workers: as retryable as a provider timeout.
  if (cause instanceof TimeoutFailure) {
    return {
      code: FailureCode.timeout,
      message: cause.message,
      retryable: true,
      retryAfterMs: undefined,
      probe: false,
    };
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return { code: FailureCode.internal, message, retryable: false, retryAfterMs: undefined, probe: false };
}

function providerCallActivity({ providerTimeouts }: GenerationInput, taskQueue: string) {
  const { heartbeatSeconds, attemptSeconds } = providerTimeouts;
  return proxyActivities<ProviderActivities>({
    taskQueue,
    startToCloseTimeout: `${attemptSeconds}s`,
    // Far below the attempt timeout: a worker that dies mid-call is noticed in seconds.
    heartbeatTimeout: `${heartbeatSeconds}s`,
    // Abort the provider request (and wait for that) before the job is marked canceled.
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: {
      // Temporal retries only what is not the provider's verdict: a lost worker, a database hiccup.
      // Provider failures come back to the loop below, which owns backoff, the breaker and the budget.
      nonRetryableErrorTypes: Object.values(FailureCode),
      initialInterval: '1s',
      maximumInterval: '10s',
      maximumAttempts: 5,
    },
  });
}

/** Exponential backoff with equal jitter, so that jobs failing together do not retry together. */
function backoffMs(call: number, { initialBackoffMs, maxBackoffMs }: GenerationInput['retry']): number {
  const ceiling = Math.min(maxBackoffMs, initialBackoffMs * 2 ** (call - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** What the job waits for after a failed call: the provider's pause after a 429, else its own backoff. */
function waitAfter(failure: ProviderFailure): WaitReason {
  return failure.code === FailureCode.rateLimited ? WaitReason.rateLimited : WaitReason.backoff;
}

/** What the job's deadlines, budget and waits are: held by the workflow, read afresh at each turn. */
export interface CallLimits {
  deadlines: JobDeadlines;
  waits: JobWaits;
  startedAtMs: number;
}

/** The latest time the job may wait to: no later than its retry budget, its finish deadline, and, before its first call, its start deadline. */
function canWaitUntil({ deadlines }: CallLimits, budgetEndsAt: number, started: boolean): number {
  const startBy = started ? Infinity : deadlines.startBy();
  return Math.min(budgetEndsAt, startBy, deadlines.finishBy() ?? Infinity);
}

/**
 * Calls the provider until it produces an output, within the job's limits: at most `maxCalls` calls,
 * no retry past the budget, no first call past the start deadline. Waits the breaker asks for are
 * durable timers: they cost neither calls nor worker slots. A job with a fallback chain moves on to
 * its next entry when the one it calls cannot serve it in time (see ProviderRoute), within the same
 * limits; it is charged `settleAt`, the price of the entry that served it.
 */
export async function callProviderWithRetries(input: GenerationInput, limits: CallLimits) {
  const { retry } = input;
  const { deadlines, waits, startedAtMs } = limits;
  const route = new ProviderRoute(input);
  const budgetEndsAt = startedAtMs + retry.budgetSeconds * 1000;
  let calls = 0;
  // Set by the first call that reached the provider (a failed probe included): past that, no expiry.
  let started = false;
  let invalidOutputs = 0;
  let lastFailure: ProviderFailure | undefined;
  for (;;) {
    if (!started && Date.now() >= deadlines.startBy())
      throw new JobExpired('start deadline passed before the provider call');
    let waitMs: number;
    let reason: WaitReason;
    const budget = { attempt: calls + 1, maxCalls: retry.maxCalls };
    waits.calling(budget.attempt);
    try {
      const afterFailedCall = lastFailure !== undefined;
      const ask = { jobId: input.jobId, request: route.request, seed: input.seed, budget, afterFailedCall };
      const outcome = await providerCallActivity(input, route.taskQueue).callProvider(ask);
      waits.called();
      if (outcome.kind === 'generated') return { output: outcome.output, settleAt: route.settleAt };
      waitMs = outcome.retryInMs;
      // Outcomes of workers that told no reason: what they waited for was a slot.
      reason = outcome.reason ?? WaitReason.providerSlot;
      const moveOn = route.afterWait(
        reason,
        Date.now() + waitMs,
        canWaitUntil(limits, budgetEndsAt, started),
      );
      if (moveOn) {
        await route.switchFor(moveOn);
        continue;
      }
    } catch (error) {
      if (isCancellation(error)) throw error;
      waits.callFailed();
      lastFailure = failureOf(error);
      started = true;
      // A refused call (429) did no paid work: like a probe, it spends budget time but no call.
      if (!lastFailure.probe && lastFailure.code !== FailureCode.rateLimited) calls += 1;
      if (lastFailure.code === FailureCode.invalidOutput) invalidOutputs += 1;
      waitMs = lastFailure.retryAfterMs ?? backoffMs(Math.max(1, calls), retry);
      const moveOn = route.afterFailure(
        lastFailure,
        Date.now() + waitMs,
        canWaitUntil(limits, budgetEndsAt, true),
      );
      if (calls >= retry.maxCalls || invalidOutputs > retry.maxInvalidOutputs) {
        throw new JobFailure(lastFailure.code, lastFailure.message);
      }
      if (moveOn) {
        await route.switchFor(moveOn);
        continue;
      }
      if (!lastFailure.retryable) throw new JobFailure(lastFailure.code, lastFailure.message);
      reason = waitAfter(lastFailure);
    }
    if (Date.now() + waitMs > budgetEndsAt) {
      const why = lastFailure ? `${lastFailure.message}; ` : '';
      throw new JobFailure(
        lastFailure?.code ?? FailureCode.providerUnavailable,
        `${why}retry budget exhausted`,
      );
    }
    const sleepMs = started ? waitMs : Math.min(waitMs, Math.max(1, deadlines.startBy() - Date.now()));
    await waits.enter(reason, calls + 1, Date.now() + sleepMs);
    await sleep(sleepMs);
    waits.leave();
  }
}
