import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureCode, JobStatus } from '../jobs/job.js';
import { jobTable, storage } from './activity-stubs.js';
import { waitForAdmission } from './admission.js';
import { jobStatusQuery, type GenerationInput } from './definitions.js';
import {
  callProviderWithRetries,
  failureOf,
  JobExpired,
  JobFailure,
  startDeadline,
} from './provider-calls.js';
import { KILN_STATUS } from './search-attributes.js';

/** Deadlines count from submission (the workflow's start), not from when a worker first picked it up. */
function submittedAtMs(): number {
  return workflowInfo().startTime.getTime();
}

async function generateAndStore(
  input: GenerationInput,
  setStatus: (status: JobStatus) => void,
): Promise<void> {
  const { jobId } = input;
  const submittedAt = submittedAtMs();
  await waitForAdmission(jobId, startDeadline(input, submittedAt));
  setStatus(JobStatus.running);
  const { staged } = await callProviderWithRetries(input, submittedAt);
  await jobTable.markJobStoring(jobId);
  setStatus(JobStatus.storing);
  const result = await storage.storeResult({ jobId, staged });
  await jobTable.markJobSucceeded({ jobId, result });
}

/**
 * Runs `work` in a scope that a finish deadline cancels; the deadline then fails the job with its own
 * code, told apart from a client's cancel.
 */
async function withFinishDeadline(seconds: number | undefined, work: () => Promise<void>): Promise<void> {
  if (seconds === undefined) return work();
  const scope = new CancellationScope();
  let deadlinePassed = false;
  const timer = sleep(Math.max(1, submittedAtMs() + seconds * 1000 - Date.now())).then(() => {
    deadlinePassed = true;
    scope.cancel();
  });
  timer.catch(() => undefined);
  try {
    await scope.run(work);
  } catch (error) {
    if (deadlinePassed && isCancellation(error)) {
      throw new JobFailure(FailureCode.deadlineExceeded, `not finished within ${seconds} s`);
    }
    throw error;
  }
}

/** One generation job: queued → running → storing → succeeded | failed | canceled | expired. */
export async function runGeneration(input: GenerationInput): Promise<void> {
  const { jobId } = input;
  let status: JobStatus = JobStatus.queued;
  setHandler(jobStatusQuery, () => status);
  const enter = (next: JobStatus) => {
    status = next;
    // Operators filter jobs by KilnStatus in the Temporal UI.
    upsertSearchAttributes([{ key: KILN_STATUS, value: next }]);
  };
  try {
    await withFinishDeadline(input.request.deadline?.finishWithinSeconds, () =>
      generateAndStore(input, enter),
    );
    enter(JobStatus.succeeded);
  } catch (error) {
    // Whatever ended the job must still reach the job table, so those writes ignore cancellation.
    if (isCancellation(error)) {
      await CancellationScope.nonCancellable(() => jobTable.markJobCanceled(jobId));
      enter(JobStatus.canceled);
      throw error;
    }
    if (error instanceof JobExpired) {
      await CancellationScope.nonCancellable(() => jobTable.markJobExpired(jobId));
      enter(JobStatus.expired);
      return;
    }
    const failure = error instanceof JobFailure ? error : failureOf(error);
    await CancellationScope.nonCancellable(() =>
      jobTable.markJobFailed({ jobId, code: failure.code, message: failure.message }),
    );
    enter(JobStatus.failed);
    throw ApplicationFailure.nonRetryable(failure.message, failure.code);
  }
}
