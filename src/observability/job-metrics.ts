import { Counter, Histogram } from 'prom-client';
import type { JobRow } from '../db/schema.js';
import { JobStatus, type SwitchReason } from '../jobs/job.js';
import { ProviderError } from '../providers/provider-error.js';
import { metricsRegistry } from './metrics.js';

/**
 * Provider calls take 0.1–120 s. Buckets close together where most calls land (1–30 s) keep
 * histogram_quantile's interpolation error small for p50/p90/p99; the tail reaches the attempt timeout.
 */
const PROVIDER_CALL_BUCKETS = [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180];
/** A job also waits for admission, slots and retries: the same buckets, stretched to the retry budget. */
const JOB_DURATION_BUCKETS = [...PROVIDER_CALL_BUCKETS, 300, 600, 900];

const registers = [metricsRegistry];

const submitted = new Counter({
  name: 'kiln_jobs_submitted_total',
  help: 'Jobs accepted by the API (idempotent replays not counted)',
  labelNames: ['provider', 'model'] as const,
  registers,
});

const started = new Counter({
  name: 'kiln_jobs_started_total',
  help: 'Jobs whose first provider call started',
  labelNames: ['provider', 'model'] as const,
  registers,
});

const succeeded = new Counter({
  name: 'kiln_jobs_succeeded_total',
  help: 'Jobs that ended succeeded',
  labelNames: ['provider', 'model'] as const,
  registers,
});

const failed = new Counter({
  name: 'kiln_jobs_failed_total',
  help: 'Jobs that ended failed, by failure code',
  labelNames: ['provider', 'model', 'code'] as const,
  registers,
});

const jobDuration = new Histogram({
  name: 'kiln_job_duration_seconds',
  help: 'From submission to the end of a job, by how it ended',
  labelNames: ['provider', 'model', 'status'] as const,
  buckets: JOB_DURATION_BUCKETS,
  registers,
});

const providerCallDuration = new Histogram({
  name: 'kiln_provider_call_duration_seconds',
  help: 'One provider call, output check included; outcome is ok or the failure code',
  labelNames: ['provider', 'model', 'outcome'] as const,
  buckets: PROVIDER_CALL_BUCKETS,
  registers,
});

const retries = new Counter({
  name: 'kiln_provider_call_retries_total',
  help: "Provider calls beyond a job's first",
  labelNames: ['provider', 'model'] as const,
  registers,
});

const rateLimited = new Counter({
  name: 'kiln_provider_rate_limited_total',
  help: 'Provider calls refused with 429 (or an exhausted quota)',
  labelNames: ['provider', 'model'] as const,
  registers,
});

const repeatedCalls = new Counter({
  name: 'kiln_provider_calls_repeated_total',
  help: 'Provider calls made again because the attempt before was lost mid-call (a dead worker): maybe paid twice',
  labelNames: ['provider', 'model'] as const,
  registers,
});

const outputsReused = new Counter({
  name: 'kiln_outputs_reused_total',
  help: 'Retried provider calls answered by the output an earlier attempt kept: no second paid call',
  labelNames: ['provider', 'model'] as const,
  registers,
});

const providerSwitches = new Counter({
  name: 'kiln_provider_switches_total',
  help: 'Jobs moved on to the next provider of their fallback chain, from which to which, and why',
  labelNames: ['from_provider', 'from_model', 'to_provider', 'to_model', 'reason'] as const,
  registers,
});

type JobLabels = Pick<JobRow, 'provider' | 'model'>;

/** A job left `from` for `to`, the next entry of its fallback chain, for `reason`. */
export function countProviderSwitch(from: JobLabels, to: JobLabels, reason: SwitchReason): void {
  providerSwitches.inc({
    from_provider: from.provider,
    from_model: from.model,
    to_provider: to.provider,
    to_model: to.model,
    reason,
  });
}

/** A retried attempt found an earlier attempt's output kept and used it instead of calling again. */
export function countOutputReused({ provider, model }: JobLabels): void {
  outputsReused.inc({ provider, model });
}

export function countSubmitted({ provider, model }: JobLabels): void {
  submitted.inc({ provider, model });
}

/**
 * Times one provider call of `row` (the row `startProviderCall` returned). A resumed task is no new
 * call, so it counts neither as a start nor as a retry. `ended` records once, whichever path calls it.
 */
export function observeProviderCall(
  row: JobLabels & Pick<JobRow, 'attempts'>,
  call: { isNew: boolean; afterLostAttempt: boolean },
) {
  const labels = { provider: row.provider, model: row.model };
  if (call.isNew && row.attempts === 1) started.inc(labels);
  if (call.isNew && row.attempts > 1) retries.inc(labels);
  if (call.isNew && call.afterLostAttempt) repeatedCalls.inc(labels);
  const stopTimer = providerCallDuration.startTimer(labels);
  let ended = false;
  return {
    ended(error?: unknown): void {
      if (ended) return;
      ended = true;
      const outcome = error === undefined ? 'ok' : error instanceof ProviderError ? error.code : 'internal';
      stopTimer({ outcome });
      if (outcome === 'rate_limited') rateLimited.inc(labels);
    },
  };
}

/**
 * Counts a job that has just ended; says whether it did. `wroteAt` is the `completed_at` this caller
 * wrote: a retried activity that found the job already ended gets an earlier value back and counts nothing.
 */
export function observeJobEnded(row: JobRow, wroteAt: Date): boolean {
  if (row.completed_at?.getTime() !== wroteAt.getTime()) return false;
  const { provider, model } = row;
  if (row.status === JobStatus.succeeded) succeeded.inc({ provider, model });
  if (row.status === JobStatus.failed) failed.inc({ provider, model, code: row.failure_code ?? 'internal' });
  const seconds = (row.completed_at.getTime() - row.created_at.getTime()) / 1000;
  jobDuration.observe({ provider, model, status: row.status }, seconds);
  return true;
}
