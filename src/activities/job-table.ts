import { recordProviderSwitch, recordWaiting, transitionJob, type JobPatch } from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import {
  isTerminal,
  JobStatus,
  type JobEnding,
  type JobFailureCode,
  type JobWaiting,
  type ServedBy,
} from '../jobs/job.js';
import { countProviderSwitch } from '../observability/job-metrics.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { jobChangeContextOf, type ActivityDependencies } from './dependencies.js';
import type { StoredObject } from '../storage/object-store.js';
import { jobTableFailure } from './temporal-failure.js';

export interface StoreResultInput {
  jobId: string;
  /** The provider's output as the store confirmed it, at the job's result key. */
  output: StoredObject;
  /**
   * The price of the fallback that served the job, when its reservation covered a dearer entry of its
   * chain; unset, the reservation is spent whole.
   */
  settleAt?: number;
}

export interface RecordProviderSwitchInput {
  jobId: string;
  servedBy: ServedBy;
}

export interface RecordWaitingInput {
  jobId: string;
  waiting: JobWaiting;
}

export interface MarkJobFailedInput {
  jobId: string;
  code: JobFailureCode;
  message: string;
}

/** How the row says the job ended; for rows a terminal write returned. */
export function endingOf(row: JobRow): JobEnding {
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
  async function transition(jobId: string, to: JobStatus, patch: JobPatch = {}, settleAt?: number) {
    let row;
    try {
      row = await transitionJob(db, jobId, to, patch, undefined, settleAt);
    } catch (error) {
      throw jobTableFailure(error, logger, jobId);
    }
    const endedAt = patch.completed_at instanceof Date ? patch.completed_at : undefined;
    await afterJobChange(jobChangeContextOf(deps), { row, endedAt });
    return row;
  }

  async function end(jobId: string, to: JobStatus, patch: JobPatch, settleAt?: number) {
    return endingOf(await transition(jobId, to, patch, settleAt));
  }

  return {
    /**
     * A generated job's end: `succeeded`, with the result the provider call kept at the job's result
     * key (that call left the job `storing`). A job that ended meanwhile (a cancel) keeps its end, and
     * its output is left for the workflow to discard. Safe to repeat, as every transition here.
     */
    async storeResultAndSucceed({ jobId, output, settleAt }: StoreResultInput): Promise<JobEnding> {
      const stored = {
        completed_at: new Date(),
        storage_key: output.key,
        content_type: output.contentType,
        byte_size: output.byteSize,
        result_sha256: output.sha256,
      };
      return end(jobId, JobStatus.succeeded, stored, settleAt);
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
    /**
     * Why the job waits, for every way of watching it. Safe to repeat: the same wait is written once,
     * and a job that moved on (or ended) is not written at all.
     */
    async recordJobWaiting({ jobId, waiting }: RecordWaitingInput): Promise<void> {
      const row = await recordWaiting(db, jobId, waiting).catch((error: unknown) => {
        throw jobTableFailure(error, logger, jobId);
      });
      if (row) await afterJobChange(jobChangeContextOf(deps), { row });
    },
    /**
     * The job moves on to the next entry of its fallback chain, with its `provider_switched` event.
     * Safe to repeat: a job at that entry or past it is not written (nor counted) again.
     */
    async recordProviderSwitch({ jobId, servedBy }: RecordProviderSwitchInput): Promise<void> {
      const row = await recordProviderSwitch(db, jobId, servedBy).catch((error: unknown) => {
        throw jobTableFailure(error, logger, jobId);
      });
      if (!row) return;
      if (servedBy.switched) countProviderSwitch(servedBy.switched.from, servedBy, servedBy.switched.reason);
      logger.info({ jobId, servedBy }, 'job moved on to its next provider');
      await afterJobChange(jobChangeContextOf(deps), { row });
    },
  };
}
