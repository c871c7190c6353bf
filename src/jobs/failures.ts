import type { JobFailureCode } from './job.js';

/**
 * What crosses from activities to the workflow when something fails, besides the failure type (a
 * FailureCode). Plain data: the workflow bundle imports this file.
 */

/** Carried in a provider failure's details for the workflow's retry loop. */
export interface ProviderFailureDetails {
  /** The provider's own wait hint (Retry-After), if it gave one. */
  retryAfterMs: number | undefined;
  /** The call was the breaker's probe: its failure belongs to the outage, not to this job's call count. */
  probe: boolean;
  /**
   * The provider may still run (and bill) the task the call had it accept: the job's next call resumes
   * it there, and does not move on to a fallback. Workers of release 0.1.0 send none.
   */
  taskLivesOn?: boolean;
}

/** A provider failure as the workflow's retry loop sees it. */
export interface ProviderFailure extends ProviderFailureDetails {
  code: JobFailureCode;
  message: string;
  retryable: boolean;
}
