import { JobStatus } from './job.js';

/**
 * The job state machine, written down once. Each status lists the statuses it may be entered from;
 * the job-table update checks this in the same SQL statement as the write.
 */
export const ENTERED_FROM: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  // Only an operator's retry, which re-runs the job under its own id (src/api/retry-job.ts).
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
