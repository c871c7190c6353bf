import { JobStatus } from './job.js';

/**
 * The job state machine, written down once. Each status lists the statuses it may be entered from;
 * the job-table update checks this in the same SQL statement as the write.
 */
export const ENTERED_FROM: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  // Only an operator's retry, which re-runs the job under its own id (src/use-cases/retry-job.ts).
  queued: [JobStatus.failed],
  running: [JobStatus.queued],
  storing: [JobStatus.running],
  succeeded: [JobStatus.storing],
  failed: [JobStatus.queued, JobStatus.running, JobStatus.storing],
  canceled: [JobStatus.queued, JobStatus.running, JobStatus.storing],
  expired: [JobStatus.queued],
};

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return ENTERED_FROM[to].includes(from);
}

/** How far along its lifecycle each status is; the terminal statuses are all the end. */
const STAGE: Readonly<Record<JobStatus, number>> = {
  queued: 0,
  running: 1,
  storing: 2,
  succeeded: 3,
  failed: 3,
  canceled: 3,
  expired: 3,
};

/**
 * Whether a job in `current` has already been through `to`, or ended: a write of `to` is then a
 * repeat of an earlier write (a local activity re-run on replay, a retried activity) or was overtaken
 * by the job's end, and must change nothing. Only an operator's retry moves a job back, and it has its
 * own write.
 */
export function isAtOrPast(current: JobStatus, to: JobStatus): boolean {
  return STAGE[current] >= STAGE[to];
}
