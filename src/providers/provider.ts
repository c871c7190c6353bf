import type { ImageSize, TokenUsage } from '../jobs/job.js';

export type { TokenUsage };
import type { ProviderQuota } from './rate-limit-headers.js';

/** What a provider is asked to make. */
export interface ImageGenerationInput {
  prompt: string;
  model: string;
  size: ImageSize;
  /** Makes the output reproducible where the provider supports it (the local provider does). */
  seed?: number;
}

export interface GeneratedImage {
  bytes: Uint8Array;
  contentType: 'image/png';
  /** The provider's word on its remaining request quota, where it sends one. */
  quota?: ProviderQuota;
  /**
   * The provider's own id of the request (OpenAI's `x-request-id`, a Replicate prediction's id): what its
   * support asks for, kept on the call's span.
   */
  requestId?: string;
}

/** Hooks the caller gives a provider for one call. */
export interface ProviderCallContext {
  /** Aborts the in-flight request: Temporal cancellation or a heartbeat timeout lands here. */
  signal: AbortSignal;
  /**
   * Asked once `signal` has aborted: true when only this attempt was lost (Temporal timed it out, or a
   * restarted Temporal forgot it) and a later attempt resumes the task, which must live on for it.
   * Otherwise the job no longer wants the output and a submit-then-poll provider stops the task.
   * Unset: every abort stops it.
   */
  taskOutlivesAbort?(): boolean;
  /** Progress 0–100, reported as the provider learns it. */
  onProgress(percent: number): void;
  /**
   * Requests ahead of this one in the provider's own queue (fal's `queue_position`), reported as it
   * changes while the task waits there: a wait Kiln's own queue estimate cannot see.
   */
  onQueuePosition?(position: number): void;
  /**
   * A task the provider accepted during an earlier attempt of this job. Providers that work by
   * submit-then-poll resume it instead of submitting (and paying for) a second one.
   */
  resumeTaskId?: string;
  /**
   * Called once a submit-then-poll provider has accepted a task, before waiting on it. The provider
   * awaits it: the caller makes the task id durable so that a retried attempt can resume.
   */
  onTaskAccepted?(taskId: string): Promise<void>;
}

/**
 * One AI image provider. Implementations throw only `ProviderError`: every failure is classified once,
 * here, so retry decisions downstream read a code instead of parsing messages.
 */
export interface ImageProvider {
  readonly name: string;
  /** Each model this provider offers, with the sizes it can make. */
  readonly models: Readonly<Record<string, readonly ImageSize[]>>;
  readonly defaultModel: string;
  generateImage(input: ImageGenerationInput, context: ProviderCallContext): Promise<GeneratedImage>;
}

/** What a text provider is asked to write. */
export interface TextGenerationInput {
  prompt: string;
  model: string;
  /** Unset: the provider's own limit. */
  maxTokens?: number;
}

export interface GeneratedText {
  text: string;
  quota?: ProviderQuota;
  /** As for images: the provider's own id of the request. */
  requestId?: string;
  /** Where the provider reports it. */
  usage?: TokenUsage;
}

/** Hooks the caller gives a text provider for one call. */
export interface TextCallContext {
  /** Aborts the in-flight request, as for images. */
  signal: AbortSignal;
  /** Each piece of text as it arrives, in order; together they are the returned text. */
  onDelta(delta: string): void;
}

/**
 * One AI text provider: a chat completion, streamed. Like image providers, it throws only
 * `ProviderError` (or the abort's own reason on cancellation).
 */
export interface TextProvider {
  readonly name: string;
  readonly models: readonly string[];
  readonly defaultModel: string;
  generateText(input: TextGenerationInput, context: TextCallContext): Promise<GeneratedText>;
}
