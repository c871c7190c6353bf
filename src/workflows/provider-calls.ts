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
import {
  FailureCode,
  isJobFailureCode,
  SwitchReason,
  WaitReason,
  type JobFailureCode,
  type TokenUsage,
} from '../jobs/job.js';
import type { GenerationInput } from './definitions.js';
import type { JobDeadlines } from './job-deadlines.js';
import type { JobWaits } from './job-waits.js';
import type { StoredObject } from '../storage/object-store.js';
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

/**
 * The provider call on `taskQueue`. `startWithinMs`: how long it may wait there for a worker, set only
 * when the job could move on to a fallback if the queue cannot start it before its start deadline.
 */
function providerCallActivity(
  { providerTimeouts }: GenerationInput,
  taskQueue: string,
  startWithinMs: number | undefined,
) {
  const { heartbeatSeconds, attemptSeconds } = providerTimeouts;
  return proxyActivities<ProviderActivities>({
    taskQueue,
    ...(startWithinMs === undefined ? {} : { scheduleToStartTimeout: Math.max(1000, startWithinMs) }),
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

/** The call waited in its provider's task queue past the time it was given: no worker took it, nothing was sent. */
function queuedTooLong(error: unknown): boolean {
  return (
    error instanceof ActivityFailure &&
    error.cause instanceof TimeoutFailure &&
    error.cause.timeoutType === 'SCHEDULE_TO_START'
  );
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

/** What a fallback is left to start in when the queue before it may use the rest of the start deadline. */
const FALLBACK_START_RESERVE_MS = 5000;

/** What one turn of the loop came to: an output, a move to the next entry, or a wait before the next call. */
type Turn =
  | { kind: 'generated'; output: StoredObject; usage?: TokenUsage }
  | { kind: 'moved_on' }
  | { kind: 'wait'; waitMs: number; reason: WaitReason };

/**
 * One job's provider calls, within its limits: at most `maxCalls` calls, no retry past the budget, no
 * first call past the start deadline. Waits the breaker asks for are durable timers: they cost neither
 * calls nor worker slots. A job with a fallback chain moves on to its next entry when the one it calls
 * cannot serve it in time (see ProviderRoute), within the same limits.
 */
class ProviderCalls {
  private readonly route: ProviderRoute;
  private readonly budgetEndsAt: number;
  private calls = 0;
  /** Set by the first call that reached the provider (a failed probe included): past that, no expiry. */
  private started = false;
  private invalidOutputs = 0;
  private lastFailure: ProviderFailure | undefined;

  constructor(
    private readonly input: GenerationInput,
    private readonly limits: CallLimits,
  ) {
    this.route = new ProviderRoute(input);
    this.budgetEndsAt = limits.startedAtMs + input.retry.budgetSeconds * 1000;
  }

  /**
   * Until an output: it and `settleAt`, what the entry that made it charges for it (see
   * ProviderRoute.settleFor).
   */
  async run(): Promise<{ output: StoredObject; settleAt: number | undefined }> {
    for (;;) {
      if (!this.started && Date.now() >= this.limits.deadlines.startBy())
        throw new JobExpired('start deadline passed before the provider call');
      const turn = await this.callOnce();
      if (turn.kind === 'generated')
        return { output: turn.output, settleAt: this.route.settleFor(turn.usage) };
      if (turn.kind === 'wait') await this.wait(turn.waitMs, turn.reason);
    }
  }

  /** The latest time the job may wait to: its retry budget, its finish deadline, and before its first call, its start deadline. */
  private canWaitUntil(): number {
    const { deadlines } = this.limits;
    const startBy = this.started ? Infinity : deadlines.startBy();
    return Math.min(this.budgetEndsAt, startBy, deadlines.finishBy() ?? Infinity);
  }

  /**
   * How long the call may wait in its provider's task queue for a worker: bounded only when a fallback
   * could start the job sooner, and then short of the start deadline by what the fallback needs to
   * start (half the time left, at most 5 s).
   */
  private queueTimeMs(): number | undefined {
    const startBy = this.limits.deadlines.startBy();
    if (this.started || !this.route.canMoveOn || !Number.isFinite(startBy)) return undefined;
    const left = startBy - Date.now();
    return left - Math.min(left / 2, FALLBACK_START_RESERVE_MS);
  }

  private async callOnce(): Promise<Turn> {
    const { input, limits, route } = this;
    const moveOnFirst = await route.beforeCall();
    if (moveOnFirst) return this.moveOn(moveOnFirst);
    const budget = { attempt: this.calls + 1, maxCalls: input.retry.maxCalls };
    limits.waits.calling(budget.attempt);
    try {
      const afterFailedCall = this.lastFailure !== undefined;
      const ask = {
        jobId: input.jobId,
        request: route.request,
        seed: input.seed,
        budget,
        afterFailedCall,
        ...(route.canMoveOn ? { canMoveOn: true } : {}),
      };
      const activity = providerCallActivity(input, route.taskQueue, this.queueTimeMs());
      const outcome = await activity.callProvider(ask);
      limits.waits.called();
      if (outcome.kind === 'generated') return outcome;
      // Outcomes of workers that told no reason: what they waited for was a slot.
      const reason = outcome.reason ?? WaitReason.providerSlot;
      const moveOn = route.afterWait(reason, Date.now() + outcome.retryInMs, this.canWaitUntil());
      return moveOn ? this.moveOn(moveOn) : { kind: 'wait', waitMs: outcome.retryInMs, reason };
    } catch (error) {
      if (isCancellation(error)) throw error;
      if (queuedTooLong(error)) {
        limits.waits.called();
        return this.moveOn(SwitchReason.startDeadline);
      }
      limits.waits.callFailed();
      return this.afterFailure(failureOf(error));
    }
  }

  private async afterFailure(failure: ProviderFailure): Promise<Turn> {
    const { retry } = this.input;
    this.lastFailure = failure;
    this.started = true;
    // A refused call (429) did no paid work: like a probe, it spends budget time but no call.
    if (!failure.probe && failure.code !== FailureCode.rateLimited) this.calls += 1;
    if (failure.code === FailureCode.invalidOutput) this.invalidOutputs += 1;
    if (this.calls >= retry.maxCalls || this.invalidOutputs > retry.maxInvalidOutputs) {
      throw new JobFailure(failure.code, failure.message);
    }
    const waitMs = failure.retryAfterMs ?? backoffMs(Math.max(1, this.calls), retry);
    const moveOn = this.route.afterFailure(failure, Date.now() + waitMs, this.canWaitUntil());
    if (moveOn) return this.moveOn(moveOn);
    if (!failure.retryable) throw new JobFailure(failure.code, failure.message);
    return { kind: 'wait', waitMs, reason: waitAfter(failure) };
  }

  private async moveOn(reason: SwitchReason): Promise<Turn> {
    await this.route.switchFor(reason);
    return { kind: 'moved_on' };
  }

  /** A wait within the budget, cut short at the start deadline before the first call. */
  private async wait(waitMs: number, reason: WaitReason): Promise<void> {
    const { deadlines, waits } = this.limits;
    if (Date.now() + waitMs > this.budgetEndsAt) {
      const failure = this.lastFailure;
      const why = failure ? `${failure.message}; ` : '';
      throw new JobFailure(failure?.code ?? FailureCode.providerUnavailable, `${why}retry budget exhausted`);
    }
    const untilStart = Math.max(1, deadlines.startBy() - Date.now());
    const sleepMs = this.started ? waitMs : Math.min(waitMs, untilStart);
    await waits.enter(reason, this.calls + 1, Date.now() + sleepMs);
    await sleep(sleepMs);
    waits.leave();
  }
}

/** Calls the provider until it produces an output, within the job's limits (see ProviderCalls). */
export function callProviderWithRetries(input: GenerationInput, limits: CallLimits) {
  return new ProviderCalls(input, limits).run();
}
