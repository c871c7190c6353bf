import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { FailureCode } from '../jobs/job.js';
import { hasNetworkErrorCode } from './network-error.js';
import { ProviderError } from './provider-error.js';
import { retryAfterMsFrom } from './rate-limit-headers.js';

/** `content_policy_violation` is what DALL·E sends; the GPT image models send `moderation_blocked`. */
const CONTENT_POLICY_CODES = new Set(['content_policy_violation', 'moderation_blocked']);

/** What OpenAI said of a request it refused: as an HTTP error, or as a line of a batch's error file. */
export interface OpenAIRefusal {
  status: number;
  message: string;
  code?: string | null;
  type?: string | null;
  /** The reply's headers, for the wait a 429 or 5xx asks for; a batch line has none. */
  headers?: Headers;
}

function isContentPolicy({ code, type }: OpenAIRefusal): boolean {
  return [code, type].some((marker) => typeof marker === 'string' && CONTENT_POLICY_CODES.has(marker));
}

/** The one mapping from OpenAI's status (and code) to Kiln's failure codes. */
export function classifyOpenAIStatus(refusal: OpenAIRefusal): ProviderError {
  const { status, message, headers } = refusal;
  if (status === 400 && isContentPolicy(refusal)) {
    return new ProviderError(FailureCode.contentPolicy, message, false);
  }
  if (status === 401 || status === 403) return new ProviderError(FailureCode.authentication, message, false);
  if (status === 429) {
    return new ProviderError(FailureCode.rateLimited, message, true, retryAfterMsFrom(headers));
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new ProviderError(FailureCode.providerUnavailable, message, true, retryAfterMsFrom(headers));
  }
  // 400, 404, 422 and any other client error: the same request would fail the same way.
  return new ProviderError(FailureCode.invalidRequest, message, false);
}

/** The failure with the id OpenAI gave the request that failed, for the call's span. */
function withRequestId(failure: ProviderError, requestId: string | null | undefined): ProviderError {
  if (!requestId) return failure;
  const { code, message, retryable, retryAfterMs } = failure;
  return new ProviderError(code, message, retryable, retryAfterMs, requestId);
}

/**
 * Turns anything the OpenAI client throws into a ProviderError, once. Aborts by the caller's own signal are
 * not failures: the adapter rethrows those before calling this.
 */
export function classifyOpenAIError(error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  // Timeout first: it is a subclass of the connection error.
  if (error instanceof APIConnectionTimeoutError) {
    return new ProviderError(FailureCode.timeout, error.message, true);
  }
  if (error instanceof APIConnectionError || hasNetworkErrorCode(error)) {
    const message = error instanceof Error ? error.message : String(error);
    return new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  if (error instanceof APIError) {
    // `instanceof` narrows to APIError<any, …>; its declared defaults are the honest types.
    const apiError = error as APIError;
    if (apiError.status !== undefined) {
      const { status, message, code, type, headers } = apiError;
      return withRequestId(
        classifyOpenAIStatus({ status, message, code, type, headers }),
        apiError.requestID,
      );
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(FailureCode.internal, `unexpected OpenAI client error: ${message}`, false);
}
