import { Context } from '@temporalio/activity';
import type { ActivityCancellationDetails } from '@temporalio/common';
import { recordProviderTask, recordWaiting, updateProgress } from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import {
  FailureCode,
  WaitReason,
  type GenerationRequest,
  type ImageSize,
  type TokenUsage,
} from '../jobs/job.js';
import { verifyImage } from '../outputs/verify-image.js';
import { ProviderError } from '../providers/provider-error.js';
import type { ImageProvider, ProviderCallContext, TextProvider } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { ProviderQuota } from '../providers/rate-limit-headers.js';
import type { ActivityDependencies } from './dependencies.js';
import { toTemporalFailure } from './temporal-failure.js';
import { openTextStream } from './text-stream-writer.js';

/** What one generation asks the provider for. */
export interface GenerationAsk {
  jobId: string;
  request: GenerationRequest;
  seed: number;
  /**
   * Which of the job's calls this is, as its retry policy counts them, and how many it may make: what
   * a call that waits (for a slot, or in the provider's own queue) tells the job table. Workflows of
   * release 0.1.0 send none.
   */
  budget?: { attempt: number; maxCalls: number };
}

/** What the provider-call activity keeps in its heartbeat details between attempts. */
export interface CallHeartbeat {
  taskId?: string;
  progress?: number;
}

/** What a call produced, ready to stage. */
export interface Output {
  bytes: Uint8Array;
  contentType: string;
  quota?: ProviderQuota;
  /** A text call's tokens, as its provider counted them. */
  usage?: TokenUsage;
}

/** The provider that makes the job's kind. */
export type CallableProvider =
  { kind: 'image'; provider: ImageProvider } | { kind: 'text'; provider: TextProvider };

/** Heartbeat at least this often during a silent provider call; the SDK throttles the actual sends. */
const HEARTBEAT_INTERVAL_MS = 1000;

export const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';

export function callableProvider(providers: ProviderRegistry, request: GenerationRequest): CallableProvider {
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

/** Heartbeats with `heartbeat`'s details while `work` runs, however silent it is. */
export async function heartbeatingWhile<T>(heartbeat: CallHeartbeat, work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  const beat = setInterval(() => context.heartbeat(heartbeat), HEARTBEAT_INTERVAL_MS);
  try {
    return await work();
  } finally {
    clearInterval(beat);
  }
}

/**
 * The generation itself, for the provider-call activity: the call for the job's kind, with its
 * heartbeats, progress, streamed text and aborts. `afterChange` is what follows a progress write.
 */
export function createProviderGeneration(
  { db, logger, callCancels }: ActivityDependencies,
  afterChange: (row: JobRow) => Promise<void>,
) {
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
          if (updated && webhookWantsProgress) await afterChange(updated);
        })
        .then(
          () => undefined,
          (error: unknown) => logger.warn({ jobId, err: error }, 'progress write failed'),
        );
    };
  }

  /**
   * The provider holds the task in its own queue: the job waits there (`provider_queue`, with the
   * requests ahead), told to the job table in order, off the call's path. The write that follows the
   * task's first progress ends the wait.
   */
  function queueReporter(providerName: string, { jobId, budget }: GenerationAsk) {
    let pending = Promise.resolve();
    return (position: number) => {
      logger.info(
        { jobId, provider: providerName, queuePosition: position },
        "waiting in the provider's queue",
      );
      if (!budget) return;
      const since = new Date().toISOString();
      const waiting = { reason: WaitReason.providerQueue, since, until: null, ...budget, position };
      pending = pending
        .then(() => recordWaiting(db, jobId, waiting))
        .then(async (row) => {
          if (row) await afterChange(row);
        })
        .catch((error: unknown) =>
          logger.warn({ jobId, err: error }, "the provider's queue position not recorded"),
        );
    };
  }

  /** Runs the image call; `heartbeat.taskId` holds the provider's task id once there is one. */
  async function generateImage(
    provider: ImageProvider,
    ask: GenerationAsk,
    heartbeat: CallHeartbeat,
    abort: CallAbort,
  ): Promise<Output> {
    const { jobId, request, seed } = ask;
    const context = Context.current();
    const image = await provider.generateImage(
      { prompt: request.prompt, model: request.model, size: imageSizeOf(request), seed },
      {
        ...abort,
        onProgress: progressReporter(jobId, heartbeat, request.webhook?.events.includes('progress') ?? false),
        onQueuePosition: queueReporter(provider.name, ask),
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
    { jobId, request }: GenerationAsk,
    attempt: number,
    signal: AbortSignal,
  ): Promise<Output> {
    const stream = await openTextStream(db, jobId, attempt, logger);
    try {
      const { text, quota, usage } = await provider.generateText(
        { prompt: request.prompt, model: request.model, maxTokens: request.maxTokens ?? undefined },
        { signal, onDelta: (delta) => stream.append(delta) },
      );
      return { bytes: new TextEncoder().encode(text), contentType: TEXT_CONTENT_TYPE, quota, usage };
    } finally {
      await stream.close();
    }
  }

  /**
   * The call for the job's kind (the caller heartbeats while it lasts). Aborted by Temporal's cancellation or,
   * sooner, by the cancel's announcement; either way the activity ends as Temporal's cancellation. Only
   * the job's cancel stops the provider's task: an attempt Temporal gave up on leaves it to the next.
   */
  async function generate(
    callable: CallableProvider,
    ask: GenerationAsk,
    heartbeat: CallHeartbeat,
    attempt: number,
  ): Promise<Output> {
    const context = Context.current();
    const announced = callCancels.watch(ask.jobId);
    const signal = AbortSignal.any([context.cancellationSignal, announced.signal]);
    // A lost attempt leaves the task running: stopping it would make the next attempt pay for another.
    const taskOutlivesAbort = () => !announced.signal.aborted && attemptLost(context.cancellationDetails);
    try {
      return callable.kind === 'text'
        ? await generateText(callable.provider, ask, attempt, signal)
        : await generateImage(callable.provider, ask, heartbeat, { signal, taskOutlivesAbort });
    } catch (error) {
      if (announced.signal.aborted) await temporalCancellation();
      throw error;
    } finally {
      announced.release();
    }
  }

  return { generate };
}
