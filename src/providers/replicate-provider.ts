import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { FailureCode, imageDimensions, type ImageSize } from '../jobs/job.js';
import {
  classifyEndedPrediction,
  classifyReplicateFetchError,
  classifyReplicateHttpFailure,
  type ReplicateRequestKind,
} from './classify-replicate-error.js';
import { cancelingOnAbort, followingTask } from './accepted-task.js';
import { ProviderError } from './provider-error.js';
import type { ImageGenerationInput, ImageProvider, ProviderCallContext } from './provider.js';

/** How to reach Replicate. */
export interface ReplicateProviderOptions {
  /** Sent as a bearer token on every API request. */
  apiToken: string;
  /** Defaults to the public API, `https://api.replicate.com/v1`; tests point it at a fake server. */
  baseURL?: string;
  /** The wait between two polls of a running prediction, in milliseconds. */
  pollIntervalMs: number;
  /** Limit for each HTTP request on its own, in milliseconds; past it the call fails as a retryable `timeout`. */
  requestTimeoutMs: number;
}

export const REPLICATE_IMAGE_MODELS: Readonly<Record<string, readonly ImageSize[]>> = {
  'stability-ai/sdxl': ['256x256', '512x512', '1024x1024'],
};

const DEFAULT_BASE_URL = 'https://api.replicate.com/v1';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** A tqdm bar as Replicate logs it: ` 45%|████▌     | 9/20 [00:02<00:02,  4.51it/s]`. */
const TQDM_PERCENT = /(\d{1,3})%\|/g;

/** The fields of a Replicate prediction this adapter reads. */
const predictionSchema = z.object({
  id: z.string().min(1),
  status: z.enum(['starting', 'processing', 'succeeded', 'failed', 'canceled']),
  output: z.unknown(),
  error: z.unknown(),
  logs: z.string().nullish(),
});
type Prediction = z.infer<typeof predictionSchema>;

/** A whole HTTP answer: the body is read under the same timeout as the request. */
interface Reply {
  ok: boolean;
  status: number;
  headers: Headers;
  body: Buffer;
}

function detailOf(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const problem = JSON.parse(text) as { detail?: unknown; title?: unknown };
    if (typeof problem.detail === 'string') return problem.detail;
    if (typeof problem.title === 'string') return problem.title;
  } catch {
    // Not problem+json (a proxy's HTML page, say): the start of the text is the best detail there is.
  }
  return text.slice(0, 200);
}

function ensureOk(reply: Reply, request: ReplicateRequestKind): void {
  if (reply.ok) return;
  const { status, headers } = reply;
  throw classifyReplicateHttpFailure({ request, status, headers, detail: detailOf(reply.body) });
}

function predictionFrom(reply: Reply, request: ReplicateRequestKind): Prediction {
  ensureOk(reply, request);
  let json: unknown;
  try {
    json = JSON.parse(reply.body.toString('utf8'));
  } catch {
    json = undefined;
  }
  const parsed = predictionSchema.safeParse(json);
  if (!parsed.success) {
    const message = `Replicate ${request} answered without a valid prediction`;
    throw new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  return parsed.data;
}

/** The first output file's URL: SDXL answers with a list of them, newer image models with a single one. */
function outputUrlOf(prediction: Prediction): string {
  const first = Array.isArray(prediction.output) ? (prediction.output as unknown[])[0] : prediction.output;
  if (typeof first !== 'string' || !URL.canParse(first)) {
    const message = `Replicate prediction ${prediction.id} succeeded without an output URL`;
    throw new ProviderError(FailureCode.invalidOutput, message, true);
  }
  return first;
}

function pngFrom(bytes: Buffer): Uint8Array {
  if (!bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    throw new ProviderError(
      FailureCode.invalidOutput,
      'Replicate returned an output that is not a PNG',
      true,
    );
  }
  return new Uint8Array(bytes);
}

function lastLoggedPercent(logs: string | null | undefined): number | undefined {
  const last = [...(logs ?? '').matchAll(TQDM_PERCENT)].at(-1)?.[1];
  return last === undefined ? undefined : Math.min(100, Number(last));
}

/** Reports the logs' progress as it rises. SDXL's refiner starts a second bar at 0%: a job never goes back. */
function progressReporter(context: ProviderCallContext) {
  let reported = -1;
  const report = (percent: number) => {
    if (percent <= reported) return;
    reported = percent;
    context.onProgress(percent);
  };
  return {
    fromLogs: (prediction: Prediction) => {
      const percent = lastLoggedPercent(prediction.logs);
      if (percent !== undefined) report(percent);
    },
    done: () => report(100),
  };
}

/** Sleeps between polls; an abort rejects with the signal's own reason so callers see cancellation. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (error) {
    signal.throwIfAborted();
    throw error;
  }
}

/** Replicate's predictions API over `fetch`, every request under its own timeout. */
function createReplicateApi(options: ReplicateProviderOptions) {
  const base = (options.baseURL ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  const auth = { authorization: `Bearer ${options.apiToken}` };

  async function exchange(url: string, init: RequestInit, signal: AbortSignal): Promise<Reply> {
    try {
      const timeout = AbortSignal.timeout(options.requestTimeoutMs);
      const response = await fetch(url, { ...init, signal: AbortSignal.any([signal, timeout]) });
      const body = Buffer.from(await response.arrayBuffer());
      return { ok: response.ok, status: response.status, headers: response.headers, body };
    } catch (error) {
      // Our own abort is cancellation, not a provider failure; it also covers an abort mid-body.
      signal.throwIfAborted();
      throw classifyReplicateFetchError(error);
    }
  }

  return {
    async submit(input: ImageGenerationInput, signal: AbortSignal): Promise<Prediction> {
      const body = JSON.stringify({
        input: { prompt: input.prompt, ...imageDimensions(input.size), seed: input.seed },
      });
      const headers = { ...auth, 'content-type': 'application/json' };
      const url = `${base}/models/${input.model}/predictions`;
      return predictionFrom(await exchange(url, { method: 'POST', headers, body }, signal), 'submit');
    },
    get: (id: string, signal: AbortSignal): Promise<Reply> =>
      exchange(`${base}/predictions/${encodeURIComponent(id)}`, { headers: auth }, signal),
    async download(url: string, signal: AbortSignal): Promise<Buffer> {
      // Output files live on Replicate's CDN, which needs no token; ours stays with the API.
      const reply = await exchange(url, {}, signal);
      ensureOk(reply, 'download');
      return reply.body;
    },
    /** Best effort: the caller is already leaving, so no failure here may replace its reason. */
    async cancelQuietly(id: string): Promise<void> {
      const url = `${base}/predictions/${encodeURIComponent(id)}/cancel`;
      await exchange(url, { method: 'POST', headers: auth }, new AbortController().signal).catch(() => {});
    },
  };
}
type ReplicateApi = ReturnType<typeof createReplicateApi>;

/**
 * The prediction an earlier attempt accepted, if it is still worth following. One that is gone (404) or
 * ended in a retryable failure gives way to a fresh submit; one that failed for good fails this attempt too.
 */
async function resumed(api: ReplicateApi, context: ProviderCallContext): Promise<Prediction | undefined> {
  const id = context.resumeTaskId;
  if (id === undefined) return undefined;
  const reply = await cancelingOnAbort(
    context,
    () => api.cancelQuietly(id),
    () => api.get(id, context.signal),
  );
  if (reply.status === 404) return undefined;
  const prediction = predictionFrom(reply, 'poll');
  if (prediction.status !== 'failed' && prediction.status !== 'canceled') return prediction;
  const failure = classifyEndedPrediction({ ...prediction, status: prediction.status });
  if (failure.retryable) return undefined;
  throw failure;
}

async function submitted(
  api: ReplicateApi,
  input: ImageGenerationInput,
  context: ProviderCallContext,
): Promise<Prediction> {
  const prediction = await api.submit(input, context.signal);
  try {
    // Before polling, so the id is durable before we wait: a retried attempt resumes instead of paying twice.
    await context.onTaskAccepted?.(prediction.id);
  } catch (error) {
    // The id was not recorded, so no later attempt would resume it: stop it rather than pay for an orphan.
    await api.cancelQuietly(prediction.id);
    throw error;
  }
  return prediction;
}

/** Polls until the prediction ends; anything but success is thrown, classified. */
async function settled(
  api: ReplicateApi,
  accepted: Prediction,
  context: ProviderCallContext,
  progress: ReturnType<typeof progressReporter>,
  pollIntervalMs: number,
): Promise<Prediction> {
  let prediction = accepted;
  progress.fromLogs(prediction);
  while (prediction.status === 'starting' || prediction.status === 'processing') {
    await pause(pollIntervalMs, context.signal);
    const { id } = prediction;
    prediction = await followingTask(async () => predictionFrom(await api.get(id, context.signal), 'poll'));
    progress.fromLogs(prediction);
  }
  if (prediction.status === 'succeeded') return prediction;
  throw classifyEndedPrediction({ ...prediction, status: prediction.status });
}

/**
 * An ImageProvider over Replicate's predictions API: submit, then poll, resuming an earlier attempt's
 * prediction when the context names one. Throws ProviderError; on abort, the signal's reason; if
 * `onTaskAccepted` fails, its error.
 */
export function createReplicateProvider(options: ReplicateProviderOptions): ImageProvider {
  const api = createReplicateApi(options);
  return {
    name: 'replicate',
    models: REPLICATE_IMAGE_MODELS,
    defaultModel: 'stability-ai/sdxl',
    async generateImage(input, context) {
      const progress = progressReporter(context);
      const accepted = (await resumed(api, context)) ?? (await submitted(api, input, context));
      const finished = await cancelingOnAbort(
        context,
        () => api.cancelQuietly(accepted.id),
        () => settled(api, accepted, context, progress, options.pollIntervalMs),
      );
      const bytes = pngFrom(await api.download(outputUrlOf(finished), context.signal));
      progress.done();
      return { bytes, contentType: 'image/png', requestId: finished.id };
    },
  };
}
