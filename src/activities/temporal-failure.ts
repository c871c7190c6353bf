import { ApplicationFailure } from '@temporalio/activity';
import { IllegalTransitionError } from '../db/job-repository.js';
import { ProviderError } from '../providers/provider-error.js';

/** The failure type an illegal job-table transition surfaces with; never retried. */
export const ILLEGAL_TRANSITION = 'illegal_transition';

/**
 * Turns a classified error into the failure Temporal acts on: its code becomes the failure type the
 * workflow reads, and the provider's retry hint overrides the backoff.
 */
export function toTemporalFailure(error: unknown): unknown {
  if (error instanceof ProviderError) {
    return ApplicationFailure.create({
      message: error.message,
      type: error.code,
      nonRetryable: !error.retryable,
      nextRetryDelay: error.retryAfterMs,
    });
  }
  if (error instanceof IllegalTransitionError) {
    return ApplicationFailure.nonRetryable(error.message, ILLEGAL_TRANSITION, {
      jobId: error.jobId,
      from: error.from,
      to: error.to,
    });
  }
  return error;
}
