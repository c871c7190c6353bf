import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from '../../src/jobs/job.js';
import { allWithin, atRate, JobWatcher, submitTimed, type Submitted } from '../lib/jobs.js';
import { openaiBody, startOpenAIBench, type OpenAIBench } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { latencyFigures } from '../lib/stats.js';

const RATE_PER_S = 4;
/** Healthy stream before the fake starts answering 503, then the stream goes on for `afterFor`. */
const HEALTHY_S = 3;
const afterFor = (quick: boolean) => (quick ? 6 : 8);
const PROVIDER_DELAY_MS = 200;
const LOCAL_DELAY_MS = 100;
/** The production defaults, which this scenario leaves alone and checks. */
const BREAKER_THRESHOLD = 5;
const BREAKER_COOLDOWN_S = 30;
const FALLBACK_AFTER_FAILED_CALLS = 2;
const TARGET_BEYOND_MS = 2000;
const CHAINS = {
  'openai:dall-e-2': [{ provider: 'local', model: 'kiln-sketch-1', sizes: { '256x256': '512x512' } }],
};

/** When something happened to the run's jobs, by the job events' `created_at` (PostgreSQL's clock). */
interface Moments {
  /** Each job that moved to the fallback: when its `provider_switched` event was written, and why. */
  switches: { jobId: string; at: number; reason: string }[];
  /** Each job that succeeded: when, and which chain entry served it. */
  successes: { jobId: string; at: number; entry: number }[];
  /** When each job's row was written, at submit. */
  createdAt: Map<string, number>;
}

async function momentsOf(bench: OpenAIBench, jobIds: string[]): Promise<Moments> {
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
  const moments: Moments = { switches: [], successes: [], createdAt };
  for (const row of rows) {
    const job = row.data as Job;
    const at = new Date(row.created_at).getTime();
    if (row.type === 'provider_switched') {
      moments.switches.push({ jobId: row.job_id, at, reason: job.servedBy.switched?.reason ?? '?' });
    } else if (job.status === 'succeeded') {
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
async function firstOpening(bench: OpenAIBench, over: () => boolean): Promise<number | undefined> {
  for (;;) {
    const openedAt = await circuitOpenedAt(bench);
    if (openedAt !== undefined || over()) return openedAt;
    await sleep(20);
  }
}

/** The fake answers again and the circuit is forgotten, as after a cool-down and a successful probe. */
async function healProvider(bench: OpenAIBench): Promise<void> {
  bench.provider.setBehaviour({ kind: 'ok', delayMs: PROVIDER_DELAY_MS });
  await bench.ctx.database.db.deleteFrom('provider_circuits').where('provider', '=', 'openai').execute();
}

/** A steady stream of jobs; `failAt` seconds in, every openai call starts answering 503. */
async function streamThroughFailure(bench: OpenAIBench, watcher: JobWatcher, quick: boolean, run: number) {
  const submits: Promise<Submitted>[] = [];
  let failedAt = Number.NaN;
  const seconds = HEALTHY_S + afterFor(quick);
  await atRate(RATE_PER_S, seconds, (index) => {
    if (index === HEALTHY_S * RATE_PER_S) {
      bench.provider.setBehaviour({ kind: 'server_error', status: 503 });
      failedAt = Date.now();
    }
    const submitted = submitTimed(bench.users[0]!, openaiBody(`fallback ${run} ${index} ${randomUUID()}`));
    submits.push(submitted.then((s) => (watcher.watch(s.id), s)));
  });
  const jobIds = (await Promise.all(submits)).map((s) => s.id);
  const jobs = await allWithin(
    jobIds.map((id) => watcher.get(id)!.done),
    120_000,
    `run ${run}'s jobs`,
  );
  return { failedAt, jobIds, jobs };
}

/** What one run saw, on one clock (ms since the epoch): the figures are differences of these. */
interface RunMoments extends Moments {
  failedAt: number;
  openedAt: number;
  /** When each call of the run reached the fake. */
  arrivals: number[];
  jobs: Job[];
}

function figuresOf({ failedAt, openedAt, arrivals, jobs, switches, successes, createdAt }: RunMoments) {
  const firstSwitch = switches[0]?.at ?? Number.NaN;
  const firstServed = successes.find((s) => s.entry === 1)?.at ?? Number.NaN;
  // Submit → moment of the jobs submitted in a window: with the circuit open, what moving on costs
  // a job that never calls openai; before T, the healthy path to compare it with.
  const sinceSubmit = (moments: { jobId: string; at: number }[], from: number, to: number) =>
    moments.flatMap(({ jobId, at }) => {
      const created = createdAt.get(jobId) ?? Number.NaN;
      return created >= from && created < to ? [at - created] : [];
    });
  return {
    breaker_open_ms: openedAt - failedAt,
    first_switch_ms: firstSwitch - failedAt,
    first_served_ms: firstServed - failedAt,
    switch_beyond_breaker_ms: firstSwitch - openedAt,
    served_beyond_breaker_ms: firstServed - openedAt,
    calls_to_dead_provider: arrivals.filter((at) => at >= failedAt).length,
    calls_after_open: arrivals.filter((at) => at >= openedAt).length,
    switched_jobs: switches.length,
    switched_circuit_open: switches.filter((s) => s.reason === 'circuit_open').length,
    ...latencyFigures('healthy_submit_to_served', sinceSubmit(successes, 0, failedAt), [50]),
    ...latencyFigures('open_submit_to_switch', sinceSubmit(switches, openedAt, Infinity), [50]),
    ...latencyFigures('open_submit_to_served', sinceSubmit(successes, openedAt, Infinity), [50]),
    failed_jobs: jobs.filter((job) => job.status !== 'succeeded').length,
    jobs: jobs.length,
  };
}

async function measureOnce(bench: OpenAIBench, watcher: JobWatcher, quick: boolean, run: number) {
  await healProvider(bench);
  const requestsBefore = bench.provider.requests.length;
  let streamed = false;
  const opening = firstOpening(bench, () => streamed);
  const { failedAt, jobIds, jobs } = await streamThroughFailure(bench, watcher, quick, run).finally(
    () => (streamed = true),
  );
  const openedAt = await opening;
  if (openedAt === undefined) throw new Error('the openai circuit never opened');
  const moments = await momentsOf(bench, jobIds);
  const arrivals = bench.provider.arrivals.slice(requestsBefore);
  return figuresOf({ ...moments, failedAt, openedAt, arrivals, jobs });
}

/** A steady stream on the OpenAI fake, which starts answering 503 mid-stream; local is its fallback. */
export const fallback: Scenario = {
  name: 'fallback',
  title: 'fallback',
  conditions: (quick) =>
    `OpenAI-fake image jobs at ${RATE_PER_S}/s (fake answers in ${PROVIDER_DELAY_MS} ms) for ${HEALTHY_S} s, ` +
    `then every call answered 503 (T) while the stream goes on ${afterFor(quick)} s; FALLBACK_CHAINS ` +
    `openai:dall-e-2 → local (LOCAL_PROVIDER_DELAY_MS ${LOCAL_DELAY_MS}); defaults otherwise: breaker ` +
    `${BREAKER_THRESHOLD} failures / ${BREAKER_COOLDOWN_S} s cool-down, FALLBACK_AFTER_FAILED_CALLS ` +
    `${FALLBACK_AFTER_FAILED_CALLS}, backoff from 1 s; breaker open = the circuit row's open_until − ` +
    'cool-down, read every 20 ms for the first opening; first served = the first job to succeed on ' +
    'the fallback (its `succeeded` job event); ' +
    '`served_beyond_breaker` = first served − breaker open; the circuit row is deleted between runs; ' +
    '1 worker process, 1 API process',
  targets: [
    {
      figure: 'served_beyond_breaker_ms',
      label: `first job served by the fallback ≤ ${TARGET_BEYOND_MS / 1000} s after the breaker opened`,
      op: '<=',
      value: TARGET_BEYOND_MS,
    },
    { figure: 'failed_jobs', label: 'no job fails', op: '<=', value: 0 },
  ],
  async run(settings: RunSettings) {
    const bench = await startOpenAIBench({
      env: {
        FALLBACK_CHAINS: JSON.stringify(CHAINS),
        LOCAL_PROVIDER_DELAY_MS: String(LOCAL_DELAY_MS),
      },
    });
    try {
      const { circuit, fallback: configured, retry } = bench.ctx.config;
      if (
        circuit.failureThreshold !== BREAKER_THRESHOLD ||
        retry.initialBackoffMs !== 1000 ||
        circuit.cooldownMs !== BREAKER_COOLDOWN_S * 1000 ||
        configured.afterFailedCalls !== FALLBACK_AFTER_FAILED_CALLS
      ) {
        throw new Error('breaker or fallback settings are not the defaults this scenario states');
      }
      const watcher = await JobWatcher.open(bench.users[0]!);
      const results = await repeat(settings, (run) => measureOnce(bench, watcher, settings.quick, run));
      watcher.close();
      return results;
    } finally {
      await bench.stop();
    }
  },
};
