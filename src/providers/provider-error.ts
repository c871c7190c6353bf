import type { FailureCode } from '../jobs/job.js';

/** A classified provider failure: the only error type a provider adapter throws. */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';

  constructor(
    readonly code: FailureCode,
    message: string,
    /** Whether another attempt could succeed. */
    readonly retryable: boolean,
    /** The provider's own hint (e.g. `Retry-After`), in milliseconds. */
    readonly retryAfterMs?: number,
    /** The provider's own id of the failed request, where it answered with one. */
    readonly requestId?: string,
    /**
     * Met while following a task the provider had accepted (a poll that failed, not the task): the task
     * may still run, and be billed, so a later attempt resumes it rather than submit another.
     */
    readonly taskLivesOn = false,
  ) {
    super(message);
  }
}
