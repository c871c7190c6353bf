import type { Job } from '../../src/jobs/job.js';
import {
  BREAKER_COOLDOWN_S,
  BREAKER_THRESHOLD,
  checkDefaults,
  FALLBACK_AFTER_FAILED_CALLS,
  fallbackEnv,
  firstOpening,
  healProvider,
  LOCAL_DELAY_MS,
  momentsOf,
  PROVIDER_DELAY_MS,
  streamThroughFailure,
  type Moments,
} from '../lib/fallback-run.js';
import { JobWatcher } from '../lib/jobs.js';
import { startOpenAIBench, type OpenAIBench } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { latencyFigures } from '../lib/stats.js';

const RATE_PER_S = 4;
/** Healthy stream before the fake starts answering 503, then the stream goes on for `afterFor`. */
const HEALTHY_S = 3;
const afterFor = (quick: boolean) => (quick ? 6 : 8);
const TARGET_BEYOND_MS = 2000;

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
  const stream = {
    ratePerS: RATE_PER_S,
    healthyS: HEALTHY_S,
    afterS: afterFor(quick),
    label: `fallback ${run}`,
  };
  const { failedAt, jobIds, jobs } = await streamThroughFailure(bench, watcher, stream).finally(
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
    const bench = await startOpenAIBench({ env: fallbackEnv() });
    try {
      checkDefaults(bench.ctx.config);
      const watcher = await JobWatcher.open(bench.users[0]!);
      const results = await repeat(settings, (run) => measureOnce(bench, watcher, settings.quick, run));
      watcher.close();
      return results;
    } finally {
      await bench.stop();
    }
  },
};
