import { ApiError } from '@google/genai';
import { FailureCode } from '../jobs/job.js';
import { hasNetworkErrorCode } from './network-error.js';
import { ProviderError } from './provider-error.js';
import { durationMs, retryAfterMsFrom } from './rate-limit-headers.js';

/** The parts of Google's error envelope (`google.rpc.Status`) that classification reads. */
interface GoogleStatus {
  message?: unknown;
  status?: unknown;
  details?: unknown;
}

interface StatusDetail {
  '@type'?: unknown;
  /** `google.rpc.RetryInfo`: how long to wait, as a protobuf Duration (`"13s"`, `"0.5s"`). */
  retryDelay?: unknown;
  /** `google.rpc.ErrorInfo`: the machine-readable cause, such as `API_KEY_INVALID`. */
  reason?: unknown;
}

const RETRY_INFO = 'type.googleapis.com/google.rpc.RetryInfo';
const ERROR_INFO = 'type.googleapis.com/google.rpc.ErrorInfo';

/**
 * The envelope inside an ApiError's message: the client puts the whole JSON body there, after
 * `got status: …. ` when the error came inside a stream.
 */
function statusOf(error: ApiError): GoogleStatus {
  const start = error.message.indexOf('{');
  try {
    const body = JSON.parse(error.message.slice(start)) as { error?: GoogleStatus };
    return typeof body.error === 'object' && body.error !== null ? body.error : {};
  } catch {
    return {};
  }
}

function detailsOf(status: GoogleStatus, type: string): StatusDetail[] {
  const details = Array.isArray(status.details) ? (status.details as StatusDetail[]) : [];
  return details.filter((detail) => typeof detail === 'object' && detail?.['@type'] === type);
}

function retryDelayMs(status: GoogleStatus): number | undefined {
  const delay = detailsOf(status, RETRY_INFO)[0]?.retryDelay;
  const ms = typeof delay === 'string' ? durationMs(delay) : undefined;
  return ms === undefined ? undefined : Math.ceil(ms);
}

/** A wrong or expired key is answered 400 INVALID_ARGUMENT, told apart only by its ErrorInfo reason. */
function isApiKeyProblem(status: GoogleStatus): boolean {
  return detailsOf(status, ERROR_INFO).some(
    ({ reason }) => typeof reason === 'string' && reason.startsWith('API_KEY_'),
  );
}

function classifyStatus(code: number, status: GoogleStatus, headers: Headers | undefined): ProviderError {
  const message = typeof status.message === 'string' ? status.message : `Gemini answered HTTP ${code}`;
  const waitMs = () => retryDelayMs(status) ?? retryAfterMsFrom(headers);
  if (code === 401 || code === 403 || isApiKeyProblem(status)) {
    return new ProviderError(FailureCode.authentication, message, false);
  }
  // RESOURCE_EXHAUSTED: a per-minute or per-day quota; RetryInfo says when it refills.
  if (code === 429) return new ProviderError(FailureCode.rateLimited, message, true, waitMs());
  if (code === 408 || code === 409 || code >= 500) {
    return new ProviderError(FailureCode.providerUnavailable, message, true, waitMs());
  }
  // 400 INVALID_ARGUMENT or FAILED_PRECONDITION, 404 NOT_FOUND: the same request would fail the same way.
  return new ProviderError(FailureCode.invalidRequest, message, false);
}

/**
 * Turns anything the Gemini client throws into a ProviderError, once. `headers` are the failed answer's,
 * where it got that far. Aborts by the caller's own signal are not failures: the adapters rethrow those
 * before calling this, so an abort that reaches here is the client's own timeout.
 */
export function classifyGeminiError(error: unknown, headers?: Headers): ProviderError {
  if (error instanceof ProviderError) return error;
  if (error instanceof ApiError) return classifyStatus(error.status, statusOf(error), headers);
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof Error && error.name === 'AbortError') {
    return new ProviderError(FailureCode.timeout, `the Gemini request timed out: ${message}`, true);
  }
  // undici wraps every connection failure in `TypeError: fetch failed`, whatever its cause.
  if ((error instanceof TypeError && message === 'fetch failed') || hasNetworkErrorCode(error)) {
    return new ProviderError(FailureCode.providerUnavailable, `Gemini unreachable: ${message}`, true);
  }
  return new ProviderError(FailureCode.internal, `unexpected Gemini client error: ${message}`, false);
}

/** A safety system stopped the output: the same prompt would be stopped again. */
const POLICY_FINISH_REASONS: ReadonlySet<string> = new Set([
  'SAFETY',
  'PROHIBITED_CONTENT',
  'BLOCKLIST',
  'SPII',
  'RECITATION',
  'IMAGE_SAFETY',
  'IMAGE_PROHIBITED_CONTENT',
  'IMAGE_RECITATION',
]);
/** A whole answer. MAX_TOKENS is the caller's own limit reached: the text so far is what was asked for. */
const COMPLETE_FINISH_REASONS: ReadonlySet<string> = new Set(['STOP', 'MAX_TOKENS']);

/** What a 200 answer says about how it ended: a refused prompt, or why the candidate stopped. */
export interface GeminiEnding {
  /** `promptFeedback.blockReason`: the prompt itself was refused and no candidate was made. */
  blockReason?: string;
  /** The first candidate's `finishReason`; undefined while, or if, the answer never said. */
  finishReason?: string;
}

/** The failure a 200 answer's ending means, or undefined when it ended whole (or has not said). */
export function refusalOf({ blockReason, finishReason }: GeminiEnding): ProviderError | undefined {
  if (blockReason) {
    return new ProviderError(FailureCode.contentPolicy, `Gemini refused the prompt: ${blockReason}`, false);
  }
  if (finishReason === undefined || COMPLETE_FINISH_REASONS.has(finishReason)) return undefined;
  const message = `Gemini stopped the answer: ${finishReason}`;
  if (POLICY_FINISH_REASONS.has(finishReason)) {
    return new ProviderError(FailureCode.contentPolicy, message, false);
  }
  if (finishReason === 'LANGUAGE') return new ProviderError(FailureCode.invalidRequest, message, false);
  // OTHER, NO_IMAGE, IMAGE_OTHER and reasons yet to come: no answer this time, and nothing says the next
  // attempt would fare the same.
  return new ProviderError(FailureCode.invalidOutput, message, true);
}
