import type { JobWaiting, WaitReason } from './api-types.js';

const REASONS: Record<WaitReason, string> = {
  admission: 'waiting for one of your running slots',
  provider_slot: 'waiting for a provider slot',
  rate_limited: 'the provider asked for a pause',
  circuit_open: 'the provider is failing; waiting for it to recover',
  backoff: 'waiting to retry after a failed call',
  provider_queue: "waiting in the provider's own queue",
  identical_job: "waiting for an identical job's result",
  provider_batch: 'in a provider batch, done within a day',
};

/**
 * Why a job waits, in words for a person: "waiting for a provider slot, about 12 s (call 2 of 6)".
 * `now` is when the words are shown: the estimate counts down from the job's `until`.
 */
export function describeWaiting(waiting: JobWaiting, now: number = Date.now()): string {
  const parts = [REASONS[waiting.reason]];
  if (waiting.position !== undefined) parts.push(`${waiting.position} ahead`);
  if (waiting.until)
    parts.push(`about ${Math.max(1, Math.ceil((Date.parse(waiting.until) - now) / 1000))} s`);
  const words = parts.join(', ');
  return waiting.attempt > 1 ? `${words} (call ${waiting.attempt} of ${waiting.maxCalls})` : words;
}
