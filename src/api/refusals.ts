import { assertExhaustive } from '../assert-exhaustive.js';
import type { JobRow } from '../db/schema.js';
import type { CancelOutcome } from '../use-cases/cancel-generation.js';
import type { ExtendOutcome } from '../use-cases/extend-deadline.js';
import type { InsufficientCredits } from '../use-cases/insufficient-credits.js';
import type { ListRefusal } from '../use-cases/list-generations.js';
import type { RetryRefusal } from '../use-cases/retry-job.js';
import type { SubmitRefusal } from '../use-cases/submit-generation.js';
import { ApiError } from './api-error.js';
import { invalidRequest } from './invalid-request.js';

// HTTP's answer to each use-case's refusal: one code, status, message and details per reason.

/** A job its user cannot pay for, on submission or retry: `402` with its cost and the balance. */
function insufficientCredits({ cost, balance }: InsufficientCredits): ApiError {
  return new ApiError('insufficient_credits', `the job costs ${cost} credits; the balance is ${balance}`, {
    cost,
    balance,
  });
}

/** A revoked key is answered as every unauthenticated request is; `Retry-After` is the route's to set. */
export function submitRefusal(refusal: Exclude<SubmitRefusal, { reason: 'unauthorized' }>): ApiError {
  switch (refusal.reason) {
    case 'rate_limited': {
      const { retryAfterMs, rate } = refusal;
      return new ApiError('rate_limited', `at most ${rate.perMinute} submissions per minute per API key`, {
        retryAfterMs,
      });
    }
    case 'insufficient_credits':
      return insufficientCredits(refusal);
    case 'idempotency_key_reused':
      return new ApiError('idempotency_key_reused', 'this Idempotency-Key was used with a different request');
    case 'batch_unpriced':
      return invalidRequest({ field: 'tier', message: 'the model has no batch price in force today' });
    default:
      return assertExhaustive(refusal, 'submit refusal');
  }
}

export function retryRefusal(refusal: RetryRefusal): ApiError {
  switch (refusal.reason) {
    case 'job_not_failed': {
      const { status } = refusal;
      return new ApiError('job_not_failed', `only a failed job can be retried; this one is ${status}`, {
        status,
      });
    }
    case 'history_unavailable':
      return new ApiError('history_unavailable', 'Temporal no longer keeps the run this job would retry');
    case 'run_closing':
      return new ApiError('run_closing', 'the failed run is still closing; retry in a moment');
    case 'provider_not_configured': {
      const { provider, model } = refusal;
      const message = `provider ${provider} (model ${model}) is not configured here: no run could call it`;
      return new ApiError('provider_not_configured', message, { provider, model });
    }
    case 'insufficient_credits':
      return insufficientCredits(refusal);
    default:
      return assertExhaustive(refusal, 'retry refusal');
  }
}

export function listRefusal(refusal: ListRefusal): ApiError {
  switch (refusal.reason) {
    case 'invalid_cursor':
      return new ApiError('invalid_cursor', 'cursor is not valid');
    default:
      return assertExhaustive(refusal.reason, 'list refusal');
  }
}

/** HTTP's answer to a cancel that was not made; `row` says what a finished job ended as. */
export function extendRefusal({ reason, message }: Extract<ExtendOutcome, { kind: 'refused' }>): ApiError {
  switch (reason) {
    case 'not_found':
      return new ApiError('not_found', message);
    case 'finished':
      return new ApiError('job_finished', message);
    case 'deadline_shortened':
    case 'no_such_deadline':
      return new ApiError(reason, message);
    default:
      return assertExhaustive(reason, 'deadline extension refusal');
  }
}

export function cancelRefusal(
  outcome: Exclude<CancelOutcome, 'canceling'>,
  row?: Pick<JobRow, 'status'>,
): ApiError {
  switch (outcome) {
    case 'not_found':
      return new ApiError('not_found', 'no such job');
    case 'finished':
      return new ApiError('job_finished', `job is already ${row?.status ?? 'finished'}`);
    default:
      return assertExhaustive(outcome, 'cancel outcome');
  }
}
