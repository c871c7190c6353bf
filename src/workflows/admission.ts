import { condition, setHandler } from '@temporalio/workflow';
import { WaitReason } from '../jobs/job.js';
import { jobTable } from './activity-stubs.js';
import { admittedSignal } from './definitions.js';
import type { JobDeadlines } from './job-deadlines.js';
import type { JobWaits } from './job-waits.js';
import { JobExpired } from './provider-calls.js';

/** A wake-up signal lost to a crash costs at most this long: a waiting job asks again. */
const RECHECK_MS = 15_000;

/**
 * Holds the job until it has one of its user's running slots (its plan's `maxRunning`). The slot comes
 * with a signal from the write that ended another job; the start deadline still applies while waiting.
 */
export async function waitForAdmission(
  jobId: string,
  deadlines: JobDeadlines,
  waits: JobWaits,
): Promise<void> {
  let admitted = false;
  setHandler(admittedSignal, () => {
    admitted = true;
  });
  admitted = admitted || (await jobTable.admitWaitingJobs(jobId));
  while (!admitted) {
    const left = deadlines.startBy() - Date.now();
    if (left <= 0) throw new JobExpired('start deadline passed while waiting for a running slot');
    await waits.enter(WaitReason.admission, 1, deadlines.startBy());
    if (!(await condition(() => admitted, Math.min(RECHECK_MS, left)))) {
      admitted = await jobTable.admitWaitingJobs(jobId);
    }
  }
  waits.leave();
}
