import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  setHandler,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { FailureCode, JobStatus } from '../jobs/job.js';
import { jobStatusQuery, type GenerateImageInput } from './definitions.js';

// Job-table writes are small and idempotent: retry them until Postgres is back rather than lose a job.
const jobTable = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

// Copying one image inside the object store: a minute is generous, and a stuck store should fail the job.
const storage = proxyActivities<Activities>({
  startToCloseTimeout: '60s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

function providerActivities({ heartbeatSeconds, attemptSeconds }: GenerateImageInput['providerTimeouts']) {
  // Every attempt costs money: a few, spaced out, and only for failures the adapter marked retryable.
  // The heartbeat timeout, far below the attempt timeout, is what notices a dead worker in seconds.
  return proxyActivities<Activities>({
    startToCloseTimeout: `${attemptSeconds}s`,
    heartbeatTimeout: `${heartbeatSeconds}s`,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 5 },
  });
}

/** The code and message a failed job is recorded with, read from the failure chain. */
function describeFailure(error: unknown): { code: string; message: string } {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (cause instanceof ApplicationFailure && cause.type) return { code: cause.type, message: cause.message };
  if (cause instanceof TimeoutFailure) return { code: FailureCode.timeout, message: cause.message };
  return { code: FailureCode.internal, message: error instanceof Error ? error.message : String(error) };
}

/** One generation job: queued → running → storing → succeeded | failed | canceled. */
export async function generateImage(input: GenerateImageInput): Promise<void> {
  const { jobId } = input;
  let status: JobStatus = JobStatus.queued;
  setHandler(jobStatusQuery, () => status);
  try {
    await jobTable.markJobRunning(jobId);
    status = JobStatus.running;
    const staged = await providerActivities(input.providerTimeouts).callProvider({
      jobId,
      request: input.request,
      seed: input.seed,
    });
    await jobTable.markJobStoring(jobId);
    status = JobStatus.storing;
    const result = await storage.storeResult({ jobId, ...staged });
    await jobTable.markJobSucceeded({ jobId, result });
    status = JobStatus.succeeded;
  } catch (error) {
    // Cancellation must still reach the job table, so that write runs outside the canceled scope.
    if (isCancellation(error)) {
      await CancellationScope.nonCancellable(() => jobTable.markJobCanceled(jobId));
      status = JobStatus.canceled;
      throw error;
    }
    const failure = describeFailure(error);
    await jobTable.markJobFailed({ jobId, ...failure });
    status = JobStatus.failed;
    throw ApplicationFailure.nonRetryable(failure.message, failure.code);
  }
}
