import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../../src/config/index.js';
import { isTerminal, type Job } from '../../src/jobs/job.js';
import { allWithin, atRate, submitTimed, type JobWatcher, type Submitted } from './jobs.js';
import { openaiBody, type OpenAIBench } from './openai-setup.js';

/** What the fallback scenarios give the OpenAI fake and `local`, and the production defaults they check. */
export const PROVIDER_DELAY_MS = 200;
export const LOCAL_DELAY_MS = 100;
export const BREAKER_THRESHOLD = 5;
export const BREAKER_COOLDOWN_S = 30;
export const FALLBACK_AFTER_FAILED_CALLS = 2;
const CHAINS = {
  'openai:dall-e-2': [{ provider: 'local', model: 'kiln-sketch-1', sizes: { '256x256': '512x512' } }],
};

/** Kiln's environment for a fallback scenario: `local` behind `openai:dall-e-2`, and `extra`. */
export function fallbackEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    FALLBACK_CHAINS: JSON.stringify(CHAINS),
    LOCAL_PROVIDER_DELAY_MS: String(LOCAL_DELAY_MS),
    ...extra,
  };
}

/** The scenarios state the production defaults of the breaker and the fallback: stop if they moved. */
export function checkDefaults({ circuit, fallback, retry }: Config): void {
  if (
    circuit.failureThreshold !== BREAKER_THRESHOLD ||
    retry.initialBackoffMs !== 1000 ||
    circuit.cooldownMs !== BREAKER_COOLDOWN_S * 1000 ||
    fallback.afterFailedCalls !== FALLBACK_AFTER_FAILED_CALLS
  ) {
    throw new Error('breaker or fallback settings are not the defaults this scenario states');
  }
}

/** When something happened to the run's jobs, by the job events' `created_at` (PostgreSQL's clock). */
export interface Moments {
  /** Each job that moved to the fallback: when its `provider_switched` event was written, and why. */
  switches: { jobId: string; at: number; reason: string }[];
  /** Each job that succeeded: when, and which chain entry served it. */
  successes: { jobId: string; at: number; entry: number }[];
  /** Each job that ended, whichever way: when. */
  ends: Map<string, number>;
  /** When each job's row was written, at submit. */
  createdAt: Map<string, number>;
}

export async function momentsOf(bench: OpenAIBench, jobIds: string[]): Promise<Moments> {
  const rows = await bench.ctx.database.db
    .selectFrom('job_events')
    .select(['job_id', 'type', 'data', 'created_at'])
    .where('job_id', 'in', jobIds)
    .where('type', 'in', ['provider_switched', 'status'])
    .orderBy('created_at')
    .execute();
  const jobs = await bench.ctx.database.db
    .selectFrom('jobs')
    .select(['id', 'created_at'])
    .where('id', 'in', jobIds)
    .execute();
  const createdAt = new Map(jobs.map((job) => [job.id, new Date(job.created_at).getTime()]));
  const moments: Moments = { switches: [], successes: [], ends: new Map(), createdAt };
  for (const row of rows) {
    const job = row.data as Job;
    const at = new Date(row.created_at).getTime();
    if (row.type === 'provider_switched') {
      moments.switches.push({ jobId: row.job_id, at, reason: job.servedBy.switched?.reason ?? '?' });
      continue;
    }
    if (isTerminal(job.status) && !moments.ends.has(row.job_id)) moments.ends.set(row.job_id, at);
    if (job.status === 'succeeded') {
      moments.successes.push({ jobId: row.job_id, at, entry: job.servedBy.entry });
    }
  }
  return moments;
}

/**
 * When the openai circuit opened (its `open_until` less the cool-down: PostgreSQL's `now()` in the
 * transaction that counted the threshold-th failure); undefined while it is closed.
 */
async function circuitOpenedAt(bench: OpenAIBench): Promise<number | undefined> {
  const row = await bench.ctx.database.db
    .selectFrom('provider_circuits')
    .select(['state', 'open_until'])
    .where('provider', '=', 'openai')
    .executeTakeFirst();
  if (!row?.open_until || row.state === 'closed') return undefined;
  return new Date(row.open_until).getTime() - BREAKER_COOLDOWN_S * 1000;
}

/**
 * The circuit's first opening in a run, read every 20 ms until `over()`: a failed probe re-opens it
 * later with a later `open_until`, which a single read at the end would take for the first.
 */
export async function firstOpening(bench: OpenAIBench, over: () => boolean): Promise<number | undefined> {
  for (;;) {
    const openedAt = await circuitOpenedAt(bench);
    if (openedAt !== undefined || over()) return openedAt;
    await sleep(20);
  }
}

/** The fake answers again and the circuit is forgotten, as after a cool-down and a successful probe. */
export async function healProvider(bench: OpenAIBench): Promise<void> {
  bench.provider.setBehaviour({ kind: 'ok', delayMs: PROVIDER_DELAY_MS });
  await bench.ctx.database.db.deleteFrom('provider_circuits').where('provider', '=', 'openai').execute();
}

/** A stream of `ratePerS` jobs a second: `healthyS` seconds, then every openai call answers 503 for `afterS`. */
export interface FailureStream {
  ratePerS: number;
  healthyS: number;
  afterS: number;
  /** Each prompt's prefix (prompts are unique, so that no job reuses another's output). */
  label: string;
}

/** Streams the jobs through the failure and waits until every one of them has ended. */
export async function streamThroughFailure(
  bench: OpenAIBench,
  watcher: JobWatcher,
  { ratePerS, healthyS, afterS, label }: FailureStream,
) {
  const submits: Promise<Submitted>[] = [];
  let failedAt = Number.NaN;
  await atRate(ratePerS, healthyS + afterS, (index) => {
    if (index === healthyS * ratePerS) {
      bench.provider.setBehaviour({ kind: 'server_error', status: 503 });
      failedAt = Date.now();
    }
    const submitted = submitTimed(bench.users[0]!, openaiBody(`${label} ${index} ${randomUUID()}`));
    submits.push(submitted.then((s) => (watcher.watch(s.id), s)));
  });
  const jobIds = (await Promise.all(submits)).map((s) => s.id);
  const jobs = await allWithin(
    jobIds.map((id) => watcher.get(id)!.done),
    180_000,
    `${label}'s jobs`,
  );
  return { failedAt, jobIds, jobs };
}
