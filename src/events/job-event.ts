import type { Job } from '../jobs/job.js';

/** Postgres NOTIFY channel on which every job-table change is announced. */
export const JOB_EVENTS_CHANNEL = 'kiln_job_events';

/** NOTIFY payloads must stay under 8000 bytes; the failure message is the only unbounded field. */
const MAX_MESSAGE_LENGTH = 2000;

export function encodeJobEvent(job: Job): string {
  const failure = job.failure && {
    ...job.failure,
    message: job.failure.message.slice(0, MAX_MESSAGE_LENGTH),
  };
  return JSON.stringify({ ...job, failure });
}

export function decodeJobEvent(payload: string): Job {
  return JSON.parse(payload) as Job;
}
