/*
 * Every Replicate failure is classified here, once. The choices:
 * - HTTP: 401/403 are authentication; 429 is rate_limited with the Retry-After delay; 408, 409 and 5xx are
 *   provider_unavailable and retryable. A 404 on submit is an unknown model (invalid_request), but on a
 *   poll it means the prediction vanished: retryable, so the next attempt finds it gone and submits anew.
 *   A 404 on download is an expired output file (invalid_output, retryable). Other 4xx are invalid_request.
 * - A `failed` prediction ran the model on this input and the model refused it, so by default the same
 *   input fails again: invalid_request, final. Safety-checker messages are content_policy, also final.
 *   Messages that blame Replicate's side (internal or server errors, "Prediction interrupted; please
 *   retry") are provider_unavailable and retryable.
 * - A `canceled` prediction that we did not cancel was stopped by someone else (the dashboard, another
 *   client): nothing is wrong with the input, so provider_unavailable and retryable.
 */
import { FailureCode } from '../jobs/job.js';
import { retryAfterMsFrom } from './rate-limit-headers.js';
import { classifyFetchError } from './network-error.js';
import { ProviderError } from './provider-error.js';

/** Which of the adapter's requests failed: the same status means different things on each. */
export type ReplicateRequestKind = 'submit' | 'poll' | 'download';

/** A non-2xx answer from Replicate, with the `detail` of its problem+json body when it had one. */
export interface ReplicateHttpFailure {
  request: ReplicateRequestKind;
  status: number;
  headers: Headers;
  detail: string;
}

/** A prediction that ended without output, as Replicate reports it. */
export interface EndedPrediction {
  id: string;
  status: 'failed' | 'canceled';
  error: unknown;
}

const CONTENT_POLICY_ERROR = /nsfw|flagged as sensitive|safety (checker|filter)/i;
const PROVIDER_SIDE_ERROR = /internal (server )?error|server error|interrupted/i;

export function classifyReplicateHttpFailure(failure: ReplicateHttpFailure): ProviderError {
  const { request, status, headers } = failure;
  const message = `Replicate ${request} failed with HTTP ${status}: ${failure.detail}`;
  if (status === 401 || status === 403) return new ProviderError(FailureCode.authentication, message, false);
  if (status === 429) {
    return new ProviderError(FailureCode.rateLimited, message, true, retryAfterMsFrom(headers));
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new ProviderError(FailureCode.providerUnavailable, message, true, retryAfterMsFrom(headers));
  }
  if (status === 404 && request === 'poll') {
    return new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  if ((status === 404 || status === 410) && request === 'download') {
    return new ProviderError(FailureCode.invalidOutput, message, true);
  }
  return new ProviderError(FailureCode.invalidRequest, message, false);
}

export function classifyEndedPrediction(prediction: EndedPrediction): ProviderError {
  if (prediction.status === 'canceled') {
    const message = `Replicate prediction ${prediction.id} was canceled by someone else`;
    return new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  const reason = typeof prediction.error === 'string' ? prediction.error : JSON.stringify(prediction.error);
  const message = `Replicate prediction ${prediction.id} failed: ${reason}`;
  if (CONTENT_POLICY_ERROR.test(reason)) return new ProviderError(FailureCode.contentPolicy, message, false);
  if (PROVIDER_SIDE_ERROR.test(reason)) {
    return new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  return new ProviderError(FailureCode.invalidRequest, message, false);
}

/** What `fetch` throws calling Replicate, classified as for any vendor spoken to over plain HTTP. */
export function classifyReplicateFetchError(error: unknown): ProviderError {
  return classifyFetchError('Replicate', error);
}
