import { transitionJob, type JobPatch } from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import { isTerminal, JobStatus, type JobEnding, type JobFailureCode } from '../jobs/job.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { jobChangeContextOf, type ActivityDependencies } from './dependencies.js';
import { storeStagedResult, type StoreResultInput } from './result-storage.js';
import { jobTableFailure } from './temporal-failure.js';

export interface MarkJobFailedInput {
  jobId: string;
  code: JobFailureCode;
  message: string;
}

function endingOf(row: JobRow): JobEnding {
  // Only reached after a terminal write, which returns the row at or past it: ended.
  if (!isTerminal(row.status)) throw new Error(`job ${row.id} is ${row.status} after a terminal write`);
  const failure = row.failure_code ? { code: row.failure_code, message: row.failure_message ?? '' } : null;
  return { status: row.status, failure };
}

/**
 * One activity per job-table transition; each is safe to repeat at any later point of the job (a
 * write the job is already at or past changes nothing), and the terminal ones return how the row says
 * the job ended. What follows a write (deliveries, the slot passed on) is the job change's, and is
 * run again with the write when it repeats.
 */
export function createJobTableActivities(deps: ActivityDependencies) {
  const { db, logger } = deps;
  /** `known`: the row as this activity last wrote it, which spares the write its read. */
  async function transition(jobId: string, to: JobStatus, patch: JobPatch = {}, known?: JobRow) {
    let row;
    try {
      row = await transitionJob(db, jobId, to, patch, known);
    } catch (error) {
      throw jobTableFailure(error, logger, jobId);
    }
    const endedAt = patch.completed_at instanceof Date ? patch.completed_at : undefined;
    await afterJobChange(jobChangeContextOf(deps), { row, endedAt });
    return row;
  }

  async function end(jobId: string, to: JobStatus, patch: JobPatch, known?: JobRow) {
    return endingOf(await transition(jobId, to, patch, known));
  }

  return {
    /**
     * A generated job's last steps, as one local activity (one history marker, and no workflow task
     * between them): `storing`, the staged output moved to its result key, `succeeded`. Each step is
     * safe to repeat, so the whole is. A job that ended meanwhile (a cancel) keeps its end, and its
     * output is left for the workflow to discard.
     */
    async storeResultAndSucceed(input: StoreResultInput): Promise<JobEnding> {
      const { jobId } = input;
      const storing = await transition(jobId, JobStatus.storing, { progress: 100 });
      if (isTerminal(storing.status)) return endingOf(storing);
      const result = await storeStagedResult(deps.store, input);
      const stored = {
        completed_at: new Date(),
        storage_key: result.key,
        content_type: result.contentType,
        byte_size: result.byteSize,
        result_sha256: result.sha256,
      };
      return end(jobId, JobStatus.succeeded, stored, storing);
    },
    async markJobFailed({ jobId, code, message }: MarkJobFailedInput): Promise<JobEnding> {
      return end(jobId, JobStatus.failed, {
        completed_at: new Date(),
        failure_code: code,
        failure_message: message,
      });
    },
    async markJobExpired(jobId: string): Promise<JobEnding> {
      return end(jobId, JobStatus.expired, { completed_at: new Date() });
    },
    async markJobCanceled(jobId: string): Promise<JobEnding> {
      return end(jobId, JobStatus.canceled, { completed_at: new Date() });
    },
  };
}
