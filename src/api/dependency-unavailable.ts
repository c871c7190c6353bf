import { isGrpcDeadlineError, isGrpcServiceError, ServiceError } from '@temporalio/client';
import { isDatabaseUnavailable } from '../db/database-errors.js';

/** What a client is told to wait before trying again while a dependency is away. */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 5;

// grpc.status.UNAVAILABLE: the frontend is down, restarting, or unreachable.
const GRPC_UNAVAILABLE = 14;

/** Whether `error` means the Temporal frontend cannot be reached right now (or did not answer in time). */
export function isTemporalUnavailable(error: unknown): boolean {
  const cause = error instanceof ServiceError ? error.cause : error;
  if (isGrpcDeadlineError(cause)) return true;
  return isGrpcServiceError(cause) && Number(cause.code) === GRPC_UNAVAILABLE;
}

export type UnavailableDependencyCode = 'database_unavailable' | 'temporal_unavailable';

/**
 * Which dependency the API cannot do without is away, if that is what `error` says: a client is told
 * so with a `503` and when to try again, instead of a bare `500`.
 */
export function unavailableDependency(
  error: unknown,
): { code: UnavailableDependencyCode; message: string } | undefined {
  if (isDatabaseUnavailable(error)) {
    return { code: 'database_unavailable', message: 'the job database cannot be reached; try again shortly' };
  }
  if (isTemporalUnavailable(error)) {
    return {
      code: 'temporal_unavailable',
      message: 'the workflow service cannot be reached; try again shortly',
    };
  }
  return undefined;
}
