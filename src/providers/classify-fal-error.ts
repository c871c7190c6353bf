/*
 * Every fal failure is classified here, once. fal answers in two shapes: a model's verdict on the input
 * (`detail`, a list of typed errors, usually 422) and a request error of its platform (`detail` a string,
 * `error_type` in the body and in X-Fal-Error-Type). The choices:
 * - 401/403 are authentication; 429 is rate_limited with the Retry-After delay.
 * - A model's `content_policy_violation` is content_policy; any other model verdict, and any other 4xx on
 *   submit (404: no such model), is invalid_request. Both final: the same input fails the same way.
 * - `request_timeout`, `startup_timeout`, 408 and 504 are timeout; 409, 5xx (the runner's `runner_*`
 *   errors, `internal_error`) are provider_unavailable; both retryable. fal's queue has retried these
 *   already, but a later call is a fresh request on a fresh runner.
 * - 499 on a result (`client_cancelled`): someone else canceled the request (another client of the key,
 *   the dashboard). Nothing is wrong with the input: provider_unavailable, retryable.
 * - 404 on a status or a result: fal no longer knows the request. Retryable, so that the next call
 *   submits a fresh one instead of asking again.
 */
import { FailureCode } from '../jobs/job.js';
import { classifyFetchError } from './network-error.js';
import { ProviderError } from './provider-error.js';
import { retryAfterMsFrom } from './rate-limit-headers.js';

/** Which of the adapter's requests failed: the same status means different things on each. */
export type FalRequestKind = 'submit' | 'status' | 'result';

/** A non-2xx answer from fal's queue, its body as text. */
export interface FalHttpFailure {
  request: FalRequestKind;
  status: number;
  headers: Headers;
  body: string;
  /** The queue request it concerns, once there is one. */
  requestId?: string;
}

/** What a fal error body says, in either of its shapes. */
interface FalProblem {
  detail: string;
  /** The platform's `error_type`, for request errors. */
  errorType: string | undefined;
  /** The `type` of each of a model's errors. */
  modelErrorTypes: string[];
}

const CONTENT_POLICY = 'content_policy_violation';
const TIMEOUT_ERROR_TYPES: ReadonlySet<string> = new Set(['request_timeout', 'startup_timeout']);

function problemOf(body: string, headers: Headers): FalProblem {
  let json: { detail?: unknown; error_type?: unknown } = {};
  try {
    json = (JSON.parse(body) as typeof json | null) ?? {};
  } catch {
    // Not JSON (a proxy's HTML page, say): the start of the text is the best detail there is.
  }
  const errorType = typeof json.error_type === 'string' ? json.error_type : headers.get('x-fal-error-type');
  const errors = Array.isArray(json.detail) ? (json.detail as { type?: unknown; msg?: unknown }[]) : [];
  const messages = errors.map((error) => (typeof error.msg === 'string' ? error.msg : ''));
  const detail = typeof json.detail === 'string' ? json.detail : messages.join('; ') || body.slice(0, 200);
  return {
    detail,
    errorType: errorType ?? undefined,
    modelErrorTypes: errors.flatMap((error) => (typeof error.type === 'string' ? [error.type] : [])),
  };
}

export function classifyFalHttpFailure(failure: FalHttpFailure): ProviderError {
  const { request, status, headers, requestId } = failure;
  const problem = problemOf(failure.body, headers);
  const message = `fal ${request} failed with HTTP ${status}: ${problem.detail}`;
  const error = (code: FailureCode, retryable: boolean, retryAfterMs?: number) =>
    new ProviderError(code, message, retryable, retryAfterMs, requestId);
  if (status === 401 || status === 403) return error(FailureCode.authentication, false);
  if (status === 429) return error(FailureCode.rateLimited, true, retryAfterMsFrom(headers));
  if (problem.modelErrorTypes.includes(CONTENT_POLICY)) return error(FailureCode.contentPolicy, false);
  if (TIMEOUT_ERROR_TYPES.has(problem.errorType ?? '') || status === 408 || status === 504) {
    return error(FailureCode.timeout, true);
  }
  if (status === 409 || status >= 500) {
    return error(FailureCode.providerUnavailable, true, retryAfterMsFrom(headers));
  }
  if ((status === 404 || status === 499) && request !== 'submit') {
    return error(FailureCode.providerUnavailable, true);
  }
  return error(FailureCode.invalidRequest, false);
}

/** What `fetch` throws calling fal, classified as for any vendor spoken to over plain HTTP. */
export function classifyFalFetchError(error: unknown): ProviderError {
  return classifyFetchError('fal', error);
}
