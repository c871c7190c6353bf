import type Anthropic from '@anthropic-ai/sdk';
import { APIConnectionError, APIConnectionTimeoutError, APIError } from '@anthropic-ai/sdk';
import { FailureCode } from '../jobs/job.js';
import { hasNetworkErrorCode } from './network-error.js';
import { ProviderError } from './provider-error.js';
import { retryAfterMsFrom } from './rate-limit-headers.js';

/**
 * Each error type Anthropic names, as Kiln reads it. Typed over the SDK's own union, so a type a new
 * SDK adds fails the build until it is classified here.
 */
const CODE_OF_TYPE: Readonly<Record<Anthropic.ErrorType, FailureCode>> = {
  invalid_request_error: FailureCode.invalidRequest,
  // An unknown model: the same request would fail the same way.
  not_found_error: FailureCode.invalidRequest,
  authentication_error: FailureCode.authentication,
  // A key that may not use the model, an account that cannot pay: the operator must act, not a retry.
  permission_error: FailureCode.authentication,
  billing_error: FailureCode.authentication,
  rate_limit_error: FailureCode.rateLimited,
  timeout_error: FailureCode.timeout,
  api_error: FailureCode.providerUnavailable,
  overloaded_error: FailureCode.providerUnavailable,
  conflict_error: FailureCode.providerUnavailable,
  // The memory tool's; Kiln sends no tools, so they would be a request Kiln got wrong.
  memory_precondition_failed_error: FailureCode.invalidRequest,
  memory_path_conflict_error: FailureCode.invalidRequest,
};

const RETRYABLE: ReadonlySet<FailureCode> = new Set([
  FailureCode.rateLimited,
  FailureCode.providerUnavailable,
  FailureCode.timeout,
]);

/** 429s that are a spending cap, not a rate: nothing succeeds until someone raises it or the month ends. */
const SPEND_LIMIT_CODES: ReadonlySet<string> = new Set([
  'enforced_spend_limit_reached',
  'contract_spend_limit_reached',
]);

/** Where the body names no type Kiln knows (a proxy's error page), the status decides. */
function codeOfStatus(status: number): FailureCode {
  if (status === 401 || status === 402 || status === 403) return FailureCode.authentication;
  if (status === 429) return FailureCode.rateLimited;
  if (status === 504) return FailureCode.timeout;
  if (status === 408 || status === 409 || status >= 500) return FailureCode.providerUnavailable;
  return FailureCode.invalidRequest;
}

function codeOf(error: APIError): FailureCode {
  const type = error.type;
  if (type !== null && Object.hasOwn(CODE_OF_TYPE, type)) return CODE_OF_TYPE[type];
  // An error event with no type Kiln knows, inside a stream already open: the request was taken, so it
  // is the server's trouble.
  return error.status === undefined ? FailureCode.providerUnavailable : codeOfStatus(error.status);
}

/** An answer of the API's, before the reply or inside its stream (where it has no status of its own). */
function classifyApiError(error: APIError): ProviderError {
  const code = codeOf(error);
  const retryable = RETRYABLE.has(code) && !SPEND_LIMIT_CODES.has(error.errorCode ?? '');
  const retryAfterMs = retryable ? retryAfterMsFrom(error.headers) : undefined;
  return new ProviderError(code, error.message, retryable, retryAfterMs, error.requestID ?? undefined);
}

/**
 * Turns anything the Anthropic client throws into a ProviderError, once. Aborts by the caller's own signal
 * are not failures: the adapter rethrows those before calling this.
 */
export function classifyAnthropicError(error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  // Timeout first: it is a subclass of the connection error.
  if (error instanceof APIConnectionTimeoutError) {
    return new ProviderError(FailureCode.timeout, error.message, true);
  }
  if (error instanceof APIConnectionError || hasNetworkErrorCode(error)) {
    const message = error instanceof Error ? error.message : String(error);
    return new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  // `instanceof` narrows to APIError<any, …>; its declared defaults are the honest types.
  if (error instanceof APIError) return classifyApiError(error as APIError);
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(FailureCode.internal, `unexpected Anthropic client error: ${message}`, false);
}
