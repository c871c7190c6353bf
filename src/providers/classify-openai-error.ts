import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { FailureCode } from '../jobs/job.js';
import { hasNetworkErrorCode } from './network-error.js';
import { ProviderError } from './provider-error.js';
import { retryAfterMsFrom } from './rate-limit-headers.js';

/** `content_policy_violation` is what DALL·E sends; the GPT image models send `moderation_blocked`. */
const CONTENT_POLICY_CODES = new Set(['content_policy_violation', 'moderation_blocked']);

function isContentPolicy(error: APIError): boolean {
  return [error.code, error.type].some(
    (marker) => typeof marker === 'string' && CONTENT_POLICY_CODES.has(marker),
  );
}

function classifyStatus(error: APIError, status: number): ProviderError {
  const message = error.message;
  if (status === 400 && isContentPolicy(error)) {
    return new ProviderError(FailureCode.contentPolicy, message, false);
  }
  if (status === 401 || status === 403) return new ProviderError(FailureCode.authentication, message, false);
  if (status === 429) {
    return new ProviderError(FailureCode.rateLimited, message, true, retryAfterMsFrom(error.headers));
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new ProviderError(FailureCode.providerUnavailable, message, true, retryAfterMsFrom(error.headers));
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
      return withRequestId(classifyStatus(apiError, apiError.status), apiError.requestID);
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(FailureCode.internal, `unexpected OpenAI client error: ${message}`, false);
}
