import { z } from 'zod';
import { FailureCode } from '../jobs/job.js';
import { classifyFalFetchError, classifyFalHttpFailure, type FalRequestKind } from './classify-fal-error.js';
import { ProviderError } from './provider-error.js';

/** How to reach fal's queue. */
export interface FalQueueOptions {
  /** Sent as `Authorization: Key <this>` on every queue request. */
  apiKey: string;
  /** Defaults to fal's queue, `https://queue.fal.run`; tests point it at a fake, deployments may at a proxy. */
  baseURL?: string;
  /** Limit for each HTTP request on its own, in milliseconds; past it the call fails as a retryable `timeout`. */
  requestTimeoutMs: number;
}

const DEFAULT_BASE_URL = 'https://queue.fal.run';

/** Where a request stands in fal's queue, as a submit or a status poll answers. */
const queueStatusSchema = z.object({
  status: z.enum(['IN_QUEUE', 'IN_PROGRESS', 'COMPLETED']),
  /** Requests ahead of this one; only while it is `IN_QUEUE`. */
  queue_position: z.number().int().min(0).nullish(),
  logs: z.array(z.object({ message: z.string() })).nullish(),
});
export type FalQueueStatus = z.infer<typeof queueStatusSchema>;

const submittedSchema = z.object({
  request_id: z.string().min(1),
  queue_position: z.number().int().min(0).nullish(),
});

/** The fields of a text-to-image result this adapter reads. */
const imageResultSchema = z.object({
  images: z.array(z.object({ url: z.string(), content_type: z.string().nullish() })),
  /** Per image, whether the safety checker flagged it (fal then sends a blacked-out image). */
  has_nsfw_concepts: z.array(z.boolean()).nullish(),
});
export type FalImageResult = z.infer<typeof imageResultSchema>;

/** A whole HTTP answer: the body is read under the same timeout as the request. */
interface Reply {
  ok: boolean;
  status: number;
  headers: Headers;
  body: string;
}

/**
 * The app a model belongs to (`owner/name`), under which its requests' status, result and cancel live:
 * `fal-ai/flux/dev` is submitted at its full path but polled under `fal-ai/flux`.
 */
export function falAppOf(model: string): string {
  return model.split('/').slice(0, 2).join('/');
}

function parsed<S extends z.ZodType>(
  schema: S,
  reply: Reply,
  request: FalRequestKind,
  requestId?: string,
): z.infer<S> {
  if (!reply.ok) {
    const { status, headers, body } = reply;
    throw classifyFalHttpFailure({ request, status, headers, body, requestId });
  }
  let json: unknown;
  try {
    json = JSON.parse(reply.body);
  } catch {
    json = undefined;
  }
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  // A result in an unexpected shape is a bad output another request may fix; anything else is fal's trouble.
  const code = request === 'result' ? FailureCode.invalidOutput : FailureCode.providerUnavailable;
  throw new ProviderError(code, `fal ${request} answered in an unexpected shape`, true, undefined, requestId);
}

/** fal's queue API over `fetch`, every request under its own timeout and with no retries of its own. */
export function createFalQueueApi(options: FalQueueOptions) {
  const base = (options.baseURL ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  const auth = { authorization: `Key ${options.apiKey}` };
  const requestUrl = (model: string, id: string) =>
    `${base}/${falAppOf(model)}/requests/${encodeURIComponent(id)}`;

  async function exchange(url: string, init: RequestInit, signal: AbortSignal): Promise<Reply> {
    try {
      const timeout = AbortSignal.timeout(options.requestTimeoutMs);
      const response = await fetch(url, { ...init, signal: AbortSignal.any([signal, timeout]) });
      const body = await response.text();
      return { ok: response.ok, status: response.status, headers: response.headers, body };
    } catch (error) {
      // Our own abort is cancellation, not a provider failure; it also covers an abort mid-body.
      signal.throwIfAborted();
      throw classifyFalFetchError(error);
    }
  }

  return {
    async submit(model: string, input: object, signal: AbortSignal) {
      const headers = { ...auth, 'content-type': 'application/json' };
      const init = { method: 'POST', headers, body: JSON.stringify(input) };
      return parsed(submittedSchema, await exchange(`${base}/${model}`, init, signal), 'submit');
    },
    /** The raw answer: a 404 means something else to a resumed request than to one just submitted. */
    status: (model: string, id: string, signal: AbortSignal): Promise<Reply> =>
      exchange(`${requestUrl(model, id)}/status?logs=1`, { headers: auth }, signal),
    statusOf: (reply: Reply, id: string): FalQueueStatus => parsed(queueStatusSchema, reply, 'status', id),
    async result(model: string, id: string, signal: AbortSignal): Promise<FalImageResult> {
      return parsed(
        imageResultSchema,
        await exchange(requestUrl(model, id), { headers: auth }, signal),
        'result',
        id,
      );
    },
    /** Best effort: the caller is already leaving, so no failure here may replace its reason. */
    async cancelQuietly(model: string, id: string): Promise<void> {
      const url = `${requestUrl(model, id)}/cancel`;
      await exchange(url, { method: 'PUT', headers: auth }, new AbortController().signal).catch(() => {});
    },
  };
}
export type FalQueueApi = ReturnType<typeof createFalQueueApi>;
