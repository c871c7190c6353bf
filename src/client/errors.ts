import type { ApiErrorBody, Job, JobFailureCode } from './api-types.js';

/** An error answer of the API, as its `{ error: { code, message, details? } }` body says. */
export class KilnApiError extends Error {
  override readonly name = 'KilnApiError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** The error of an answer that is not ok; a body that is not the API's error shape keeps its status. */
export async function errorOf(response: Response): Promise<KilnApiError> {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as ApiErrorBody;
    return new KilnApiError(response.status, error.code, error.message, error.details);
  } catch {
    return new KilnApiError(response.status, 'http_error', `HTTP ${response.status}: ${text.slice(0, 200)}`);
  }
}

/**
 * Why `run` got no result: the job's failure code when it `failed`, else how it ended (`canceled`, or
 * `expired`: not started before its start deadline). A closed set, so a switch over it can be exhaustive.
 */
export type KilnJobErrorCode = JobFailureCode | 'canceled' | 'expired';

/** A job that has ended without a result. */
export type UnsuccessfulJob = Job & { status: 'failed' | 'canceled' | 'expired' };

export function isUnsuccessful(job: Job): job is UnsuccessfulJob {
  return job.status === 'failed' || job.status === 'canceled' || job.status === 'expired';
}

/** A job that ended without a result, with the job as it ended. */
export class KilnJobError extends Error {
  override readonly name = 'KilnJobError';
  readonly code: KilnJobErrorCode;

  constructor(readonly job: UnsuccessfulJob) {
    super(messageOf(job));
    // A failed row always has its failure; `internal` is the server's own code for the unexplained.
    this.code = job.status === 'failed' ? (job.failure?.code ?? 'internal') : job.status;
  }
}

function messageOf(job: Job): string {
  if (job.status === 'canceled') return `job ${job.id} was canceled`;
  if (job.status === 'expired') return `job ${job.id} expired: it had not started by its start deadline`;
  return job.failure?.message ?? `job ${job.id} failed`;
}
