import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  setHandler,
  setWorkflowOptions,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureCode, JobStatus, type JobDeadline, type JobEnding } from '../jobs/job.js';
import { jobTable, results, storage } from './activity-stubs.js';
import { waitForAdmission } from './admission.js';
import {
  extendDeadlineUpdate,
  jobStatusQuery,
  jobWaitingQuery,
  type GenerationInput,
} from './definitions.js';
import { JobDeadlines } from './job-deadlines.js';
import { JobWaits } from './job-waits.js';
import {
  callProviderWithRetries,
  failureOf,
  JobExpired,
  JobFailure,
  type CallLimits,
} from './provider-calls.js';
import { serveFromIdentical } from './result-cache.js';
import { serveInBatch } from './batch-tier.js';
import { streamedTextCharge } from './provider-route.js';
import { KILN_STATUS } from './search-attributes.js';

/*
 * Jobs that opted in to the result cache look for an identical job first. Behind a patch although
 * older inputs carry no `cache`: a job the new API started may have run its first tasks on a worker of
 * the build before, which ignored the field; its history replays on this build down the old path.
 */
const RESULT_CACHE_PATCH = 'result-cache';
/* As the result cache: a job of the batch tier goes to its batch only on a build that knows the tier. */
const BATCH_TIER_PATCH = 'batch-tier';

/** Deadlines count from submission (the workflow's start), not from when a worker first picked it up. */
function submittedAtMs(): number {
  return workflowInfo().startTime.getTime();
}

async function generateAndStore(
  input: GenerationInput,
  limits: CallLimits,
  setStatus: (status: JobStatus) => void,
): Promise<JobEnding> {
  const { jobId, cache, batch } = input;
  if (cache && patched(RESULT_CACHE_PATCH)) {
    const served = await serveFromIdentical(jobId, cache, limits);
    if (served) return served;
  }
  if (batch && patched(BATCH_TIER_PATCH)) {
    const served = await serveInBatch(input, batch, limits, setStatus);
    if (served) return served;
  }
  await waitForAdmission(jobId, limits.deadlines, limits.waits);
  setStatus(JobStatus.running);
  const { output, settleAt } = await callProviderWithRetries(input, limits);
  return results.storeResultAndSucceed({ jobId, output, ...(settleAt === undefined ? {} : { settleAt }) });
}

/** Resolves once the finish deadline passes, as extensions have moved it by then. */
async function finishDeadlinePassed(deadlines: JobDeadlines, finishBy: number): Promise<void> {
  for (let at = finishBy; ;) {
    const extensions = deadlines.extensions;
    if (!(await condition(() => deadlines.extensions !== extensions, Math.max(1, at - Date.now())))) return;
    at = deadlines.finishBy() ?? at;
  }
}

/**
 * Runs `work` in a scope that a finish deadline cancels; the deadline then fails the job with its own
 * code, told apart from a client's cancel.
 */
async function withFinishDeadline<T>(deadlines: JobDeadlines, work: () => Promise<T>): Promise<T> {
  const finishBy = deadlines.finishBy();
  if (finishBy === undefined) return work();
  const scope = new CancellationScope();
  let deadlinePassed = false;
  const timer = finishDeadlinePassed(deadlines, finishBy).then(() => {
    deadlinePassed = true;
    scope.cancel();
  });
  timer.catch(() => undefined);
  try {
    return await scope.run(work);
  } catch (error) {
    if (deadlinePassed && isCancellation(error)) {
      const seconds = deadlines.deadline.finishWithinSeconds;
      throw new JobFailure(FailureCode.deadlineExceeded, `not finished within ${seconds} s`);
    }
    throw error;
  }
}

/**
 * Records how the job ended, whatever ended it; these writes ignore cancellation, as they must land. A
 * usage-priced text job pays for what its last call streamed.
 */
function recordEnd(input: GenerationInput, error: unknown): Promise<JobEnding> {
  const { jobId } = input;
  const streamed = streamedTextCharge(input);
  return CancellationScope.nonCancellable(() => {
    if (isCancellation(error)) return jobTable.markJobCanceled(jobId, streamed);
    if (error instanceof JobExpired) return jobTable.markJobExpired(jobId, streamed);
    const failure = error instanceof JobFailure ? error : failureOf(error);
    const { code, message } = failure;
    return jobTable.markJobFailed({ jobId, code, message, ...(streamed && { streamed }) });
  });
}

/** Ends the workflow as the row says the job ended, so that Temporal and the job table agree. */
function finishAs(ending: JobEnding, error: unknown): void {
  switch (ending.status) {
    case JobStatus.succeeded:
    case JobStatus.expired:
      return;
    case JobStatus.canceled:
      throw isCancellation(error) ? error : ApplicationFailure.nonRetryable('canceled', JobStatus.canceled);
    case JobStatus.failed: {
      const { code, message } = ending.failure ?? { code: FailureCode.internal, message: 'failed' };
      throw ApplicationFailure.nonRetryable(message, code);
    }
  }
}

/*
 * Pinned under Worker Versioning: a job runs start to end on the build it started on. Its retry budget
 * and deadlines bound it to minutes (a batch job's batch, to a day), so an old version drains soon
 * after a deploy, and a change to its commands needs no `patched()` for the jobs in flight. An unversioned worker (the default; its build
 * has no deployment name) refuses a behavior, so none is given there: such a change goes behind
 * `patched()`, as release histories in CI make sure.
 */
export const pinnedWhenVersioned = () =>
  workflowInfo().currentDeploymentVersion?.deploymentName ? ({ versioningBehavior: 'PINNED' } as const) : {};
setWorkflowOptions(pinnedWhenVersioned, runGeneration);

/** One generation job: queued → running → storing → succeeded | failed | canceled | expired. */
export async function runGeneration(input: GenerationInput): Promise<void> {
  const { jobId } = input;
  let status: JobStatus = JobStatus.queued;
  const deadlines = new JobDeadlines(input.request.deadline, submittedAtMs());
  const waits = new JobWaits(jobId, input.retry.maxCalls);
  setHandler(jobStatusQuery, () => status);
  setHandler(jobWaitingQuery, () => waits.now);
  setHandler(extendDeadlineUpdate, (extension) => deadlines.extend(extension), {
    validator: (extension: JobDeadline) => deadlines.validate(extension),
  });
  const enter = (next: JobStatus) => {
    status = next;
    // Operators filter jobs by KilnStatus in the Temporal UI.
    upsertSearchAttributes([{ key: KILN_STATUS, value: next }]);
  };
  let ending: JobEnding;
  let error: unknown;
  try {
    const limits = { deadlines, waits, startedAtMs: submittedAtMs() };
    ending = await withFinishDeadline(deadlines, () => generateAndStore(input, limits, enter));
  } catch (caught) {
    error = caught;
    ending = await recordEnd(input, caught);
  }
  waits.ended();
  // A job that did not succeed keeps no output: one written as it was canceled, or one its lost worker
  // wrote before the replay found the deadline passed. The row says how the job ended.
  if (ending.status !== JobStatus.succeeded) {
    await CancellationScope.nonCancellable(() => storage.discardOutputs(jobId));
  }
  enter(ending.status);
  finishAs(ending, error);
}
