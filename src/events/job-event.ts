import type { Job } from '../jobs/job.js';
import type { TextUpdate } from './text-stream.js';

/** Postgres NOTIFY channel on which every job event is announced as it is committed. */
export const JOB_EVENTS_CHANNEL = 'kiln_job_events';

/**
 * `status`: the job entered a status (or started another provider call); `progress`: only progress
 * moved; `waiting`: only why the job waits changed; `provider_switched`: the job moved on to the next
 * provider of its fallback chain (its `servedBy` says which, from which, and why); `tier_changed`: the
 * job left the batch tier for a call of its own (its `tier`), or went back to it on a retry.
 */
export type JobEventType = 'status' | 'progress' | 'waiting' | 'provider_switched' | 'tier_changed';

/**
 * One change of a job, as every way of watching it tells it. `seq` counts 1, 2, 3… per job with no gaps:
 * it is the job row's `version` after the change.
 */
export interface JobEvent {
  seq: number;
  type: JobEventType;
  job: Job;
}

/** NOTIFY payloads must stay under 8000 bytes; the failure message is the only unbounded field. */
const MAX_MESSAGE_LENGTH = 2000;

export function encodeJobEvent(event: JobEvent): string {
  const { failure } = event.job;
  const bounded = failure && { ...failure, message: failure.message.slice(0, MAX_MESSAGE_LENGTH) };
  return JSON.stringify({ ...event, job: { ...event.job, failure: bounded } });
}

/** What the events channel carries: a numbered event, or a text job's streamed text. */
export type ChannelMessage =
  { kind: 'event'; event: JobEvent } | { kind: 'text'; jobId: string; update: TextUpdate };

export function decodeChannelMessage(payload: string): ChannelMessage {
  const parsed = JSON.parse(payload) as JobEvent | (TextUpdate & { jobId: string });
  if (parsed.type === 'text' || parsed.type === 'reset') {
    const { jobId, ...update } = parsed;
    return { kind: 'text', jobId, update };
  }
  return { kind: 'event', event: parsed };
}
