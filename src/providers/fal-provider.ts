import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressGuardOptions } from '../egress/address-guard.js';
import { FailureCode, imageDimensions, type ImageSize } from '../jobs/job.js';
import { maxImageBytes } from '../outputs/verify-image.js';
import {
  createFalQueueApi,
  type FalImageResult,
  type FalQueueApi,
  type FalQueueOptions,
  type FalQueueStatus,
} from './fal-queue-api.js';
import { fetchImageUrl } from './openai-image-url.js';
import { cancelingOnAbort, followingTask } from './accepted-task.js';
import { ProviderError } from './provider-error.js';
import type { ImageGenerationInput, ImageProvider, ProviderCallContext } from './provider.js';

/** How to reach fal, and how to follow a request there. */
export interface FalProviderOptions extends FalQueueOptions {
  /** The wait between two polls of a request's status, in milliseconds. */
  pollIntervalMs: number;
  /**
   * Addresses the result's image URLs may be fetched from; default: no private or loopback address, as
   * for webhooks (fal's files are on its public CDN).
   */
  imageUrlGuard?: AddressGuardOptions;
}

/** Of the sizes Kiln offers, the ones each model makes (FLUX is trained from 512 up). */
export const FAL_IMAGE_MODELS: Readonly<Record<string, readonly ImageSize[]>> = {
  'fal-ai/flux/schnell': ['512x512', '1024x1024'],
  'fal-ai/flux/dev': ['512x512', '1024x1024'],
};

/** fal's own names for square sizes; any other size is sent as its width and height. */
const IMAGE_SIZE_PRESETS: Partial<Record<ImageSize, string>> = {
  '512x512': 'square',
  '1024x1024': 'square_hd',
};

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Reported once a runner has the request: it left fal's queue, which is worth a step on the bar. */
const STARTED_PERCENT = 5;
/** A tqdm bar as a diffusers runner logs it: ` 45%|████▌     | 13/28 [00:02<00:02,  4.51it/s]`. */
const TQDM_PERCENT = /(\d{1,3})%\|/g;

/** A request fal accepted, and where it stood when last seen. */
interface Accepted {
  id: string;
  status: FalQueueStatus;
}

function falInput(input: ImageGenerationInput) {
  return {
    prompt: input.prompt,
    image_size: IMAGE_SIZE_PRESETS[input.size] ?? imageDimensions(input.size),
    seed: input.seed,
    num_images: 1,
    // FLUX answers JPEG unless asked; a job's result is a PNG.
    output_format: 'png',
    enable_safety_checker: true,
  };
}

/** Requests ahead in fal's queue as they change, then progress as the runner's logs say, only rising. */
function progressReporter(context: ProviderCallContext) {
  let reported = -1;
  let position: number | undefined;
  const report = (percent: number) => {
    if (percent <= reported) return;
    reported = percent;
    context.onProgress(percent);
  };
  return {
    from({ status, queue_position, logs }: FalQueueStatus) {
      if (status === 'IN_QUEUE') {
        const next = queue_position ?? position;
        if (next === undefined || next === position) return;
        position = next;
        context.onQueuePosition?.(next);
        return;
      }
      const messages = (logs ?? []).map((log) => log.message).join('\n');
      const logged = [...messages.matchAll(TQDM_PERCENT)].at(-1)?.[1];
      report(Math.max(STARTED_PERCENT, Math.min(100, Number(logged ?? 0))));
    },
    done: () => report(100),
  };
}
type ProgressReporter = ReturnType<typeof progressReporter>;

/** Sleeps between polls; an abort rejects with the signal's own reason so callers see cancellation. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (error) {
    signal.throwIfAborted();
    throw error;
  }
}

/**
 * The request an earlier attempt submitted, if fal still knows it (404: canceled while queued, or long
 * gone). Whatever else became of it, the result tells.
 */
async function resumed(api: FalQueueApi, model: string, context: ProviderCallContext) {
  const id = context.resumeTaskId;
  if (id === undefined) return undefined;
  const reply = await cancelingOnAbort(
    context,
    () => api.cancelQuietly(model, id),
    () => api.status(model, id, context.signal),
  );
  if (reply.status === 404) return undefined;
  return { id, status: api.statusOf(reply, id) };
}

async function submitted(
  api: FalQueueApi,
  input: ImageGenerationInput,
  context: ProviderCallContext,
): Promise<Accepted> {
  const { request_id: id, queue_position } = await api.submit(input.model, falInput(input), context.signal);
  try {
    // Before polling, so the id is durable before we wait: a retried attempt resumes instead of paying twice.
    await context.onTaskAccepted?.(id);
  } catch (error) {
    // The id was not recorded, so no later attempt would resume it: stop it rather than pay for an orphan.
    await api.cancelQuietly(input.model, id);
    throw error;
  }
  return { id, status: { status: 'IN_QUEUE', queue_position } };
}

/** Polls until fal has completed the request, then reads its result; failures are thrown, classified. */
async function completed(
  api: FalQueueApi,
  model: string,
  { id, status: first }: Accepted,
  context: ProviderCallContext,
  progress: ProgressReporter,
  pollIntervalMs: number,
): Promise<FalImageResult> {
  let status = first;
  progress.from(status);
  while (status.status !== 'COMPLETED') {
    await pause(pollIntervalMs, context.signal);
    status = await followingTask(async () => api.statusOf(await api.status(model, id, context.signal), id));
    progress.from(status);
  }
  return api.result(model, id, context.signal);
}

/** The image's URL; a flagged image is fal's safety checker refusing it, which the same prompt meets again. */
function imageUrlOf(result: FalImageResult, id: string): string {
  if (result.has_nsfw_concepts?.[0] === true) {
    const message = `fal request ${id}: the safety checker flagged the image`;
    throw new ProviderError(FailureCode.contentPolicy, message, false, undefined, id);
  }
  const url = result.images[0]?.url;
  if (url === undefined) {
    throw new ProviderError(FailureCode.invalidOutput, `fal request ${id} completed without an image`, true);
  }
  return url;
}

function pngFrom(bytes: Buffer, id: string): Uint8Array {
  if (!bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    const message = `fal request ${id} returned an image that is not a PNG`;
    throw new ProviderError(FailureCode.invalidOutput, message, true, undefined, id);
  }
  return new Uint8Array(bytes);
}

/**
 * An ImageProvider over fal's queue API: submit, then poll, resuming an earlier attempt's request when the
 * context names one; the image is fetched from fal's URL through the address guard. Throws ProviderError;
 * on abort, the signal's reason; if `onTaskAccepted` fails, its error.
 */
export function createFalProvider(options: FalProviderOptions): ImageProvider {
  const api = createFalQueueApi(options);
  return {
    name: 'fal',
    models: FAL_IMAGE_MODELS,
    defaultModel: 'fal-ai/flux/schnell',
    async generateImage(input, context) {
      const progress = progressReporter(context);
      const accepted = (await resumed(api, input.model, context)) ?? (await submitted(api, input, context));
      const result = await cancelingOnAbort(
        context,
        () => api.cancelQuietly(input.model, accepted.id),
        () => completed(api, input.model, accepted, context, progress, options.pollIntervalMs),
      );
      const image = await fetchImageUrl(imageUrlOf(result, accepted.id), {
        guard: options.imageUrlGuard ?? { allowPrivate: false },
        maxBytes: maxImageBytes(input.size),
        timeoutMs: options.requestTimeoutMs,
        signal: context.signal,
      });
      const bytes = pngFrom(image, accepted.id);
      progress.done();
      return { bytes, contentType: 'image/png', requestId: accepted.id };
    },
  };
}
