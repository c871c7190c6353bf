import { admitWaitingJobs } from '../db/admission-repository.js';
import { admittedSignal } from '../workflows/definitions.js';
import type { JobChangeContext } from './job-change-context.js';
import { wakeWorkflows } from './wake-workflows.js';

/**
 * Per-user running slots: a plan's `maxRunning` jobs go on, the rest wait in submission order. Hands the
 * user's free slots to their oldest waiting jobs and wakes those; says whether `jobId` holds a slot.
 * Run when a job arrives, and after the write that ends a job, to pass its slot on.
 */
export async function admitAndWake(context: JobChangeContext, jobId: string): Promise<boolean> {
  const { admitted, toWake } = await admitWaitingJobs(context.db, jobId, context.plans);
  await wakeWorkflows(context, toWake, admittedSignal);
  return admitted;
}
