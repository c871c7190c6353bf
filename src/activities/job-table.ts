import { creditsForUsage, estimatedTokens, type TokenPricing } from '../jobs/token-pricing.js';
import {
  findJob,
  recordProviderSwitch,
  recordWaiting,
  transitionJob,
  type JobPatch,
} from '../db/job-repository.js';
import { readStreamedText } from '../db/text-stream-repository.js';
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
   * What the job is charged, when less than its reservation: the price of the fallback that served it
   * (the reservation covered a dearer entry of its chain), or of the tokens it used. Unset, the
   * reservation is spent whole.
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
  streamed?: StreamedTextCharge;
}

/**
 * What a usage-priced text job that ends without a result pays for the text its last call streamed:
 * the token pricing of each entry of its chain (null for one priced per job), and its prompt's tokens,
 * estimated.
 */
export interface StreamedTextCharge {
  pricings: (TokenPricing | null)[];
  promptTokens: number;
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

  /**
   * The credits of the text a job's last call streamed before the job ended without a result, at the
   * prices of the entry it called; none when it streamed nothing (no provider bills a refused call) or
   * that entry prices per job. Read before the end is written: the call was stopped by then.
   */
  async function chargeForStreamed(
    jobId: string,
    streamed?: StreamedTextCharge,
  ): Promise<number | undefined> {
    if (!streamed) return undefined;
    const [row, text] = await Promise.all([findJob(db, jobId), readStreamedText(db, jobId)]);
    const pricing = streamed.pricings[row?.served_by?.entry ?? 0];
    if (!pricing || !text?.text) return undefined;
    return creditsForUsage(pricing, {
      inputTokens: streamed.promptTokens,
      outputTokens: estimatedTokens(text.text),
    });
  }

  async function endUnserved(
    jobId: string,
    to: JobStatus,
    patch: JobPatch,
    streamed?: StreamedTextCharge,
    billed?: number,
  ) {
    const charge =
      billed ??
      (await chargeForStreamed(jobId, streamed).catch((error: unknown) => {
        throw jobTableFailure(error, logger, jobId);
      }));
    return end(jobId, to, { completed_at: new Date(), ...patch }, charge);
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
    /*
     * The ends without a result: the reservation comes back, but for what a usage-priced text job's
     * last call streamed (`streamed`, from workflows that price by tokens), or what its provider billed
     * for a line it ran although the job was canceled (`billed`, the batch tier).
     */
    async markJobFailed({ jobId, code, message, streamed }: MarkJobFailedInput): Promise<JobEnding> {
      return endUnserved(jobId, JobStatus.failed, { failure_code: code, failure_message: message }, streamed);
    },
    async markJobExpired(jobId: string, streamed?: StreamedTextCharge): Promise<JobEnding> {
      return endUnserved(jobId, JobStatus.expired, {}, streamed);
    },
    async markJobCanceled(jobId: string, streamed?: StreamedTextCharge, billed?: number): Promise<JobEnding> {
      return endUnserved(jobId, JobStatus.canceled, {}, streamed, billed);
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
