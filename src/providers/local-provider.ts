import { setTimeout as sleep } from 'node:timers/promises';
import { IMAGE_SIZES, imageDimensions } from '../jobs/job.js';
import { renderPromptPng } from './png-renderer.js';
import type { ImageProvider } from './provider.js';

/** How the local provider imitates a slow model. */
export interface LocalProviderOptions {
  /** Total time one generation takes, in milliseconds. */
  delayMs: number;
  /** How many progress reports that time is split into (at least one). */
  steps: number;
}

export const LOCAL_MODELS = { 'kiln-sketch-1': IMAGE_SIZES } as const;

/** Sleeps one step; an abort rejects with the signal's own reason so callers see cancellation, not a failure. */
export async function waitOneStep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (error) {
    signal.throwIfAborted();
    throw error;
  }
}

/** A provider that needs no key and no network: it waits, reports progress, then draws the prompt. */
export function createLocalProvider(options: LocalProviderOptions): ImageProvider {
  const steps = Math.max(1, Math.floor(options.steps));
  const stepMs = options.delayMs / steps;
  return {
    name: 'local',
    models: LOCAL_MODELS,
    defaultModel: 'kiln-sketch-1',
    async generateImage(input, context) {
      for (let step = 1; step <= steps; step++) {
        await waitOneStep(stepMs, context.signal);
        context.onProgress(Math.round((step / steps) * 100));
      }
      const bytes = renderPromptPng({
        prompt: input.prompt,
        seed: input.seed ?? 0,
        ...imageDimensions(input.size),
      });
      return { bytes, contentType: 'image/png' };
    },
  };
}
