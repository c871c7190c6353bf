import { FailureCode } from '../jobs/job.js';
import { ProviderError } from './provider-error.js';

/** Socket failures Node and undici report, often as the `cause` of a wrapper error: worth another try. */
const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Whether `error`, or one of its first few causes, is a network failure rather than an answer. */
export function hasNetworkErrorCode(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 4; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== undefined && NETWORK_ERROR_CODES.has(code)) return true;
    cause = cause.cause;
  }
  return false;
}

/**
 * Turns what `fetch` throws, calling `vendor` over plain HTTP, into a ProviderError. Aborts by the
 * caller's own signal are not failures: the adapter rethrows those before calling this, so an
 * AbortSignal timeout is the only abort that lands here.
 */
export function classifyFetchError(vendor: string, error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Error && error.name === 'TimeoutError') {
    return new ProviderError(FailureCode.timeout, `${vendor} request timed out: ${message}`, true);
  }
  // undici wraps every connection failure in `TypeError: fetch failed`, whatever its cause.
  if ((error instanceof TypeError && message === 'fetch failed') || hasNetworkErrorCode(error)) {
    return new ProviderError(FailureCode.providerUnavailable, `${vendor} unreachable: ${message}`, true);
  }
  return new ProviderError(FailureCode.internal, `unexpected error calling ${vendor}: ${message}`, false);
}
