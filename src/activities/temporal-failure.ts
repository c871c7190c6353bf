import { ApplicationFailure } from '@temporalio/activity';
import { IllegalTransitionError } from '../db/job-repository.js';
import type { Logger } from '../logger.js';
import { illegalTransitions } from '../observability/metrics.js';
import type { ProviderFailureDetails } from '../jobs/failures.js';
import { ILLEGAL_TRANSITION } from '../jobs/job.js';
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
      details: [
        {
          retryAfterMs: error.retryAfterMs,
          probe: call.probe,
          taskLivesOn: error.taskLivesOn,
        } satisfies ProviderFailureDetails,
      ],
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

/**
 * A job-table write failed: a refused transition is counted and logged with the job id (it is a bug
 * or a race worth seeing), then everything is turned into the failure the activity throws.
 */
export function jobTableFailure(error: unknown, logger: Logger, jobId: string): unknown {
  if (error instanceof IllegalTransitionError) {
    illegalTransitions.inc({ to: error.to });
    logger.error({ jobId, err: error }, 'job-table transition refused');
  }
  return toTemporalFailure(error);
}
