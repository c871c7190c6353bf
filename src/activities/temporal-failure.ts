import { ApplicationFailure } from '@temporalio/activity';
import { IllegalTransitionError } from '../db/job-repository.js';
import { ILLEGAL_TRANSITION, type ProviderFailureDetails } from '../jobs/failures.js';
import { ProviderError } from '../providers/provider-error.js';

/**
 * Turns a classified error into the failure the workflow reads: the code becomes the failure type,
 * `nonRetryable` says whether another call could help, and the provider's wait hint rides in details.
 */
export function toTemporalFailure(error: unknown, call: { probe: boolean } = { probe: false }): unknown {
  if (error instanceof ProviderError) {
    return ApplicationFailure.create({
      message: error.message,
      type: error.code,
      nonRetryable: !error.retryable,
      details: [{ retryAfterMs: error.retryAfterMs, probe: call.probe } satisfies ProviderFailureDetails],
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
