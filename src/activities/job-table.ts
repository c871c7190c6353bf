import { isTerminal, JobStatus } from '../jobs/job.js';
import { transitionJob } from '../db/job-repository.js';
import { observeJobEnded } from '../observability/job-metrics.js';
import type { StoredObject } from '../storage/object-store.js';
import { admitAndWake } from './admission.js';
import type { ActivityDependencies } from './dependencies.js';
import { jobTableFailure } from './temporal-failure.js';
import { dispatchFromActivity } from './webhook-delivery.js';

export interface MarkJobFailedInput {
  jobId: string;
  /** A FailureCode, or a Temporal failure type the workflow passes through. */
  code: string;
  message: string;
}

export interface MarkJobSucceededInput {
  jobId: string;
  result: StoredObject;
}

/**
 * One activity per job-table transition; each is safe to retry (re-entering a status is a no-op). The
 * write that ends a job then passes its running slot on to the user's oldest waiting job, whatever ended
 * it. A job with a webhook gets its deliveries started after the write, not awaited: a retry starts what
 * a crash left unstarted, and nothing twice.
 */
export function createJobTableActivities(deps: ActivityDependencies) {
  const { db, logger } = deps;
  async function transition(jobId: string, to: JobStatus, patch: Parameters<typeof transitionJob>[3] = {}) {
    let row;
    try {
      row = await transitionJob(db, jobId, to, patch);
    } catch (error) {
      throw jobTableFailure(error, logger, jobId);
    }
    if (patch.completed_at instanceof Date && observeJobEnded(row, patch.completed_at)) {
      logger.info({ jobId, status: row.status, failureCode: row.failure_code ?? undefined }, 'job ended');
    }
    if (isTerminal(to)) await admitAndWake(deps, jobId);
    if (row.webhook) await dispatchFromActivity(deps, jobId);
  }

  return {
    async markJobStoring(jobId: string): Promise<void> {
      await transition(jobId, JobStatus.storing, { progress: 100 });
    },
    async markJobSucceeded({ jobId, result }: MarkJobSucceededInput): Promise<void> {
      await transition(jobId, JobStatus.succeeded, {
        completed_at: new Date(),
        storage_key: result.key,
        content_type: result.contentType,
        byte_size: result.byteSize,
        result_sha256: result.sha256,
      });
    },
    async markJobFailed({ jobId, code, message }: MarkJobFailedInput): Promise<void> {
      await transition(jobId, JobStatus.failed, {
        completed_at: new Date(),
        failure_code: code,
        failure_message: message,
      });
    },
    async markJobExpired(jobId: string): Promise<void> {
      await transition(jobId, JobStatus.expired, { completed_at: new Date() });
    },
    async markJobCanceled(jobId: string): Promise<void> {
      await transition(jobId, JobStatus.canceled, { completed_at: new Date() });
    },
  };
}
