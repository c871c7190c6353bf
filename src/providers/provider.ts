import type { ImageSize } from '../jobs/job.js';

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
}

/** Hooks the caller gives a provider for one call. */
export interface ProviderCallContext {
  /** Aborts the in-flight request: Temporal cancellation or a heartbeat timeout lands here. */
  signal: AbortSignal;
  /** Progress 0–100, reported as the provider learns it. */
  onProgress(percent: number): void;
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
