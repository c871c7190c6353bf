import { Context } from '@temporalio/activity';
import type { ActivityCancellationDetails } from '@temporalio/common';
import { recordCallFailed, recordCallSucceeded, requestCallPermit } from '../db/circuit-repository.js';
import { findJob, recordProviderTask, startProviderCall, updateProgress } from '../db/job-repository.js';
import { pauseProvider } from '../db/provider-capacity-repository.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { FailureCode, type GenerationRequest, type ImageSize } from '../jobs/job.js';
import { countStagedOutputReused, observeProviderCall } from '../observability/job-metrics.js';
import { circuitOpenings, providerAuthFailures } from '../observability/metrics.js';
import { verifyImage } from '../outputs/verify-image.js';
import { ProviderError } from '../providers/provider-error.js';
import type { ImageProvider, ProviderCallContext, TextProvider } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { ProviderQuota } from '../providers/rate-limit-headers.js';
import { limitKeyFor, limitOf } from '../providers/provider-limits.js';
import { nextRequestInMs } from '../providers/rate-limit-headers.js';
import type { StoredObject } from '../storage/object-store.js';
import type { JobRow } from '../db/schema.js';
import { jobChangeContextOf, type ActivityDependencies } from './dependencies.js';
import { acquireProviderSlot } from './provider-slot.js';
import { jobTableFailure, toTemporalFailure } from './temporal-failure.js';
import { openTextStream } from './text-stream-writer.js';

export interface CallProviderInput {
  jobId: string;
  request: GenerationRequest;
  seed: number;
}

/** Either the output, staged for `storeResult`, or word to wait (breaker, pause, full slots): no call was made. */
export type CallProviderOutcome =
  { kind: 'generated'; staged: StoredObject } | { kind: 'waiting'; retryInMs: number };

/** What the provider-call activity keeps in its heartbeat details between attempts. */
interface CallHeartbeat {
  taskId?: string;
  progress?: number;
}

/** Heartbeat at least this often during a silent provider call; the SDK throttles the actual sends. */
const HEARTBEAT_INTERVAL_MS = 1000;

/** Failures that say the provider itself is unwell, as opposed to this one request being bad. */
const BREAKER_FAILURES: ReadonlySet<string> = new Set([FailureCode.providerUnavailable, FailureCode.timeout]);

/** How long a 429 without a Retry-After holds the provider back for everyone. */
const DEFAULT_RATE_LIMIT_PAUSE_MS = 1000;

export function stagingKeyFor(jobId: string): string {
  return `staging/${jobId}`;
}

/**
 * Cancellations that end this attempt only: Temporal gave up on it (a heartbeat timeout, or a restarted
 * server that no longer knows it), the worker is shutting down, or the activity is paused. The job still
 * wants the output, and the next attempt resumes the provider's task from the job row.
 */
function attemptLost(details: ActivityCancellationDetails | undefined): boolean {
  if (!details) return false;
  return details.notFound || details.timedOut || details.workerShutdown || details.paused;
}

/** How a call is aborted: the signal, and whether the provider's task outlives the abort. */
type CallAbort = Pick<ProviderCallContext, 'signal' | 'taskOutlivesAbort'>;

/** The provider that makes the job's kind. */
type CallableProvider = { kind: 'image'; provider: ImageProvider } | { kind: 'text'; provider: TextProvider };

/** What a call produced, ready to stage. */
interface Output {
  bytes: Uint8Array;
  contentType: string;
  quota?: ProviderQuota;
}

const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';

function callableProvider(providers: ProviderRegistry, request: GenerationRequest): CallableProvider {
  const image = request.kind === 'image' ? providers.image(request.provider) : undefined;
  const text = request.kind === 'text' ? providers.text(request.provider) : undefined;
  if (image) return { kind: 'image', provider: image };
  if (text) return { kind: 'text', provider: text };
  throw toTemporalFailure(
    new ProviderError(FailureCode.invalidRequest, `no ${request.kind} provider ${request.provider}`, false),
  );
}

/** Image jobs always carry a size: the API fills in the default. */
function imageSizeOf(request: GenerationRequest): ImageSize {
  if (request.size === null) throw new Error('an image job without a size');
  return request.size;
}

export function createProviderActivities(deps: ActivityDependencies) {
  const { db, store, providers, logger, circuit, providerLimits, callCancels } = deps;

  /**
   * What follows a change the call made. A failure does not touch the paid call: what stays unstarted
   * goes with the job's next change.
   */
  async function afterCallChange(row: JobRow): Promise<void> {
    await afterJobChange(jobChangeContextOf(deps), { row }).catch((error: unknown) =>
      logger.warn({ jobId: row.id, err: error }, 'job change effects failed'),
    );
  }

  /** Progress goes to the heartbeat at once and to the job table in order, off the call's path. */
  function progressReporter(jobId: string, heartbeat: CallHeartbeat, webhookWantsProgress: boolean) {
    let pending = Promise.resolve();
    let last = -1;
    return (percent: number) => {
      // 100 % is what `storing` says a moment later: a progress write for it would tell nothing, and
      // cost every job a transaction and an event.
      if (percent >= 100) return;
      const progress = Math.max(0, Math.floor(percent));
      if (progress <= last) return;
      last = progress;
      heartbeat.progress = progress;
      Context.current().heartbeat(heartbeat);
      pending = pending
        .then(() => updateProgress(db, jobId, progress))
        .then(async (updated) => {
          if (updated && webhookWantsProgress) await afterCallChange(updated);
        })
        .then(
          () => undefined,
          (error: unknown) => logger.warn({ jobId, err: error }, 'progress write failed'),
        );
    };
  }

  /** A task accepted before a crash: from the last heartbeat, or from Postgres if that heartbeat was lost. */
  async function taskToResume(jobId: string): Promise<string | undefined> {
    const { info } = Context.current();
    const fromHeartbeat = (info.heartbeatDetails as CallHeartbeat | undefined)?.taskId;
    if (fromHeartbeat || info.attempt === 1) return fromHeartbeat;
    return (await findJob(db, jobId))?.provider_task_id ?? undefined;
  }

  /**
   * An attempt whose completion was lost (its worker died after staging, or Temporal restarted) leaves
   * the paid output in staging: the retried attempt takes it rather than pay for another. A first
   * attempt has no earlier one, and is spared the lookup.
   */
  async function stagedByLostAttempt(jobId: string): Promise<StoredObject | undefined> {
    if (Context.current().info.attempt === 1) return undefined;
    return store.stat(stagingKeyFor(jobId));
  }

  /** One 429 (or an emptied quota) holds back every job of this provider, not just the one that met it. */
  async function pauseFor(limitKey: string, ms: number, why: string) {
    await pauseProvider(db, limitKey, ms);
    logger.warn({ limitKey, pauseMs: ms }, `provider paused: ${why}`);
  }

  async function onFailure(
    provider: { name: string },
    limitKey: string,
    jobId: string,
    error: unknown,
    hadTask: boolean,
  ) {
    if (!(error instanceof ProviderError)) return;
    if (error.code === FailureCode.rateLimited) {
      await pauseFor(limitKey, error.retryAfterMs ?? DEFAULT_RATE_LIMIT_PAUSE_MS, 'rate limited');
    }
    // The task failed for good: the next call must submit anew, not resume it.
    if (hadTask) await recordProviderTask(db, jobId, null);
    if (error.code === FailureCode.authentication) {
      providerAuthFailures.inc({ provider: provider.name });
      logger.error(
        { jobId, provider: provider.name },
        'provider rejected our credentials: calls fail until fixed',
      );
    }
    if (
      BREAKER_FAILURES.has(error.code) &&
      (await recordCallFailed(db, provider.name, circuit)) === 'opened'
    ) {
      circuitOpenings.inc({ provider: provider.name });
      logger.warn({ provider: provider.name, cooldownMs: circuit.cooldownMs }, 'circuit opened');
    }
  }

  /** Runs the image call; `heartbeat.taskId` holds the provider's task id once there is one. */
  async function generateImage(
    provider: ImageProvider,
    input: CallProviderInput,
    heartbeat: CallHeartbeat,
    abort: CallAbort,
  ): Promise<Output> {
    const context = Context.current();
    const { jobId, request, seed } = input;
    const image = await provider.generateImage(
      { prompt: request.prompt, model: request.model, size: imageSizeOf(request), seed },
      {
        ...abort,
        onProgress: progressReporter(jobId, heartbeat, request.webhook?.events.includes('progress') ?? false),
        resumeTaskId: heartbeat.taskId,
        onTaskAccepted: async (taskId) => {
          heartbeat.taskId = taskId;
          context.heartbeat(heartbeat);
          await recordProviderTask(db, jobId, taskId);
        },
      },
    );
    verifyImage(image.bytes, imageSizeOf(request));
    return image;
  }

  /**
   * Runs the text call, streaming its tokens to subscribers as they come. A completion cannot be resumed:
   * every attempt writes from the start, which subscribers see as a reset.
   */
  async function generateText(
    provider: TextProvider,
    input: CallProviderInput,
    attempt: number,
    signal: AbortSignal,
  ): Promise<Output> {
    const { jobId, request } = input;
    const stream = await openTextStream(db, jobId, attempt, logger);
    try {
      const { text, quota } = await provider.generateText(
        { prompt: request.prompt, model: request.model, maxTokens: request.maxTokens ?? undefined },
        { signal, onDelta: (delta) => stream.append(delta) },
      );
      return { bytes: new TextEncoder().encode(text), contentType: TEXT_CONTENT_TYPE, quota };
    } finally {
      await stream.close();
    }
  }

  /**
   * The call for the job's kind, heartbeating while it lasts. Aborted by Temporal's cancellation or,
   * sooner, by the cancel's announcement; either way the activity ends as Temporal's cancellation. Only
   * the job's cancel stops the provider's task: an attempt Temporal gave up on leaves it to the next.
   */
  async function generate(
    callable: CallableProvider,
    input: CallProviderInput,
    heartbeat: CallHeartbeat,
    attempt: number,
  ): Promise<Output> {
    const context = Context.current();
    const announced = callCancels.watch(input.jobId);
    const signal = AbortSignal.any([context.cancellationSignal, announced.signal]);
    // A lost attempt leaves the task running: stopping it would make the next attempt pay for another.
    const taskOutlivesAbort = () => !announced.signal.aborted && attemptLost(context.cancellationDetails);
    const beat = setInterval(() => context.heartbeat(heartbeat), HEARTBEAT_INTERVAL_MS);
    try {
      return callable.kind === 'text'
        ? await generateText(callable.provider, input, attempt, signal)
        : await generateImage(callable.provider, input, heartbeat, { signal, taskOutlivesAbort });
    } catch (error) {
      if (announced.signal.aborted) await temporalCancellation();
      throw error;
    } finally {
      clearInterval(beat);
      announced.release();
    }
  }

  /**
   * Waits, heartbeating, for Temporal's cancellation of a call the announcement already aborted: it
   * comes with the answer to a heartbeat. Bounded: if it never comes (the workflow ended first), the
   * abort's own error stands.
   */
  async function temporalCancellation(): Promise<void> {
    const { cancelled, info } = Context.current();
    const bound = new Promise((resolve) => setTimeout(resolve, 2 * (info.heartbeatTimeoutMs ?? 10_000)));
    await Promise.race([cancelled, bound]).catch(() => undefined);
  }

  async function afterSuccess(limitKey: string, output: Output) {
    const waitMs = output.quota ? nextRequestInMs(output.quota) : 0;
    if (waitMs > 0) await pauseFor(limitKey, waitMs, 'request quota used up');
  }

  /**
   * The call itself, once it holds a slot. Resuming a task the provider already accepted is no new call:
   * the breaker is not asked.
   */
  async function callHoldingSlot(
    callable: CallableProvider,
    limitKey: string,
    input: CallProviderInput,
    resumeTaskId: string | undefined,
  ): Promise<CallProviderOutcome> {
    const { jobId } = input;
    const { provider } = callable;
    const permit = resumeTaskId ? undefined : await requestCallPermit(db, provider.name, circuit);
    if (permit?.granted === false) return { kind: 'waiting', retryInMs: permit.retryInMs };
    const probe = permit?.probe ?? false;
    const row = await startProviderCall(db, jobId, resumeTaskId === undefined).catch((error: unknown) => {
      throw jobTableFailure(error, logger, jobId);
    });
    await afterCallChange(row);
    // `call` is the job's provider call number; `attempt` in every activity line is Temporal's.
    const log = { jobId, provider: provider.name, call: row.attempts, resumeTaskId, probe };
    logger.info(log, 'provider call started');
    const callMetrics = observeProviderCall(row, {
      isNew: resumeTaskId === undefined,
      afterLostAttempt: Context.current().info.attempt > 1,
    });
    const heartbeat: CallHeartbeat = { taskId: resumeTaskId };
    try {
      const output = await generate(callable, input, heartbeat, row.attempts);
      callMetrics.ended();
      // A healthy circuit has nothing to reset: no write on the common path.
      if (!permit?.healthy) await recordCallSucceeded(db, provider.name);
      await afterSuccess(limitKey, output);
      const staged = await store.put(stagingKeyFor(jobId), output.bytes, output.contentType);
      if (heartbeat.taskId) await recordProviderTask(db, jobId, null);
      logger.info({ ...log, bytes: output.bytes.byteLength }, 'provider call finished');
      return { kind: 'generated', staged };
    } catch (error) {
      // Whatever the client library threw on abort, Temporal must see the cancellation itself.
      const { cancellationSignal } = Context.current();
      if (cancellationSignal.aborted) throw cancellationSignal.reason;
      callMetrics.ended(error);
      logger.warn({ ...log, err: error }, 'provider call failed');
      await onFailure(provider, limitKey, jobId, error, heartbeat.taskId !== undefined);
      throw toTemporalFailure(error, { probe });
    }
  }

  return {
    /**
     * The paid call, within the provider's fleet-wide slots and behind its shared circuit breaker.
     * Heartbeats while in flight so that a dead worker is noticed within the heartbeat timeout and the
     * call resumed or retried elsewhere.
     */
    async callProvider(input: CallProviderInput): Promise<CallProviderOutcome> {
      const { jobId, request } = input;
      const staged = await stagedByLostAttempt(jobId);
      if (staged) {
        countStagedOutputReused(request);
        logger.info({ jobId, key: staged.key }, 'provider call answered by an earlier attempt');
        return { kind: 'generated', staged };
      }
      const callable = callableProvider(providers, request);
      const { provider } = callable;
      const resumeTaskId = await taskToResume(jobId);
      const limitKey = limitKeyFor(providerLimits, provider.name, request.model);
      const slot = await acquireProviderSlot({
        db,
        limitKey,
        jobId,
        limit: limitOf(providerLimits, limitKey),
        heartbeat: () => Context.current().heartbeat({ taskId: resumeTaskId } satisfies CallHeartbeat),
      });
      if (!('release' in slot)) return { kind: 'waiting', retryInMs: slot.retryInMs };
      try {
        return await callHoldingSlot(callable, limitKey, input, resumeTaskId);
      } finally {
        await slot.release();
      }
    },
  };
}
