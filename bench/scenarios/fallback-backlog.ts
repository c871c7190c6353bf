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
import { Standing, standingAt, type JobStanding } from '../lib/queued-at-opening.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { latencyFigures, median } from '../lib/stats.js';

/** openai's limit: one call a second, four in flight. The stream outpaces it, so a queue builds. */
const RPM = 60;
const CONCURRENCY = 4;
const RATE_PER_S = 2;
const healthyFor = (quick: boolean) => (quick ? 8 : 10);
const AFTER_S = 5;
/**
 * Once the circuit is open, a queued job moves on at its next look: a wait in place for a slot looks
 * after each recheck (≤ 1 s: the pacing interval), a job asleep on a slot-turn timer wakes within one
 * interval too (a wait in place hands back to the workflow only the last turn it saw, ≤ 60 000 / rpm),
 * and its next call returns at once. Then the switch itself, as the plain fallback scenario's 2 s.
 */
const LONGEST_SLOT_TURN_MS = 60_000 / RPM;
const TARGET_DRAIN_BEYOND_MS = 2000 + LONGEST_SLOT_TURN_MS;

/** What one run saw, on one clock (ms since the epoch), and where each queued job stood at the opening. */
interface RunMoments extends Moments {
  failedAt: number;
  openedAt: number;
  arrivals: number[];
  jobs: Job[];
  /** Jobs submitted before the failure and not ended by it. */
  queued: string[];
  standings: JobStanding[];
}

/** The first switch of each job, by job. */
function firstSwitches(switches: Moments['switches']): Map<string, number> {
  const first = new Map<string, number>();
  for (const { jobId, at } of switches) if (!first.has(jobId)) first.set(jobId, at);
  return first;
}

function standingFigures(standings: JobStanding[], openedAt: number) {
  const count = (standing: Standing) => standings.filter((s) => s.standing === standing).length;
  const timers = standings.flatMap((s) => (s.timerMs === undefined ? [] : [s.timerMs]));
  const dispatches = standings.flatMap((s) =>
    s.dispatchedAt === undefined ? [] : [s.dispatchedAt - openedAt],
  );
  return {
    at_open_in_task_queue: count(Standing.taskQueue),
    at_open_in_activity: count(Standing.inActivity),
    at_open_on_timer: count(Standing.timer),
    at_open_elsewhere: count(Standing.elsewhere),
    longest_timer_at_open_ms: timers.length > 0 ? Math.max(...timers) : 0,
    ...latencyFigures('task_queue_open_to_dispatch', dispatches, [50]),
  };
}

function figuresOf(run: RunMoments) {
  const { failedAt, openedAt, arrivals, jobs, switches, ends, createdAt, queued } = run;
  const switchedAt = firstSwitches(switches);
  // A job is done with openai when it switched, or else when it ended.
  const leftOpenai = (jobId: string) => switchedAt.get(jobId) ?? ends.get(jobId) ?? Number.NaN;
  const before = [...createdAt].filter(([, at]) => at < failedAt).map(([jobId]) => jobId);
  const drainedAt = Math.max(...before.map(leftOpenai));
  const allDrainedAt = Math.max(...[...createdAt.keys()].map(leftOpenai));
  const queuedSwitches = queued.flatMap((jobId) => {
    const at = switchedAt.get(jobId);
    return at === undefined ? [] : [at - failedAt];
  });
  const afterOpen = [...switchedAt.values()].filter((at) => at >= openedAt).sort((a, b) => a - b);
  const gaps = afterOpen.slice(1).map((at, i) => at - afterOpen[i]!);
  return {
    breaker_open_ms: openedAt - failedAt,
    first_switch_ms: (switches[0]?.at ?? Number.NaN) - failedAt,
    drain_ms: drainedAt - failedAt,
    drain_beyond_breaker_ms: drainedAt - openedAt,
    all_drained_ms: allDrainedAt - failedAt,
    queued_at_failure: queued.length,
    queued_switched: queuedSwitches.length,
    ...latencyFigures('queued_failure_to_switch', queuedSwitches, [50, 90]),
    switch_gap_p50_ms: median(gaps),
    ...standingFigures(run.standings, openedAt),
    calls_to_dead_provider: arrivals.filter((at) => at >= failedAt).length,
    calls_after_open: arrivals.filter((at) => at >= openedAt).length,
    switched_jobs: switchedAt.size,
    failed_jobs: jobs.filter((job) => job.status !== 'succeeded').length,
    jobs: jobs.length,
  };
}

async function standingsAt(bench: OpenAIBench, jobIds: string[], moment: number): Promise<JobStanding[]> {
  const rows = await bench.ctx.database.db
    .selectFrom('jobs')
    .select('workflow_id')
    .where('id', 'in', jobIds)
    .execute();
  return Promise.all(rows.map((row) => standingAt(bench.ctx.temporal, row.workflow_id, moment)));
}

async function measureOnce(bench: OpenAIBench, watcher: JobWatcher, quick: boolean, run: number) {
  await healProvider(bench);
  const requestsBefore = bench.provider.requests.length;
  let streamed = false;
  const opening = firstOpening(bench, () => streamed);
  const stream = {
    ratePerS: RATE_PER_S,
    healthyS: healthyFor(quick),
    afterS: AFTER_S,
    label: `fallback backlog ${run}`,
  };
  const { failedAt, jobIds, jobs } = await streamThroughFailure(bench, watcher, stream).finally(
    () => (streamed = true),
  );
  const openedAt = await opening;
  if (openedAt === undefined) throw new Error('the openai circuit never opened');
  const moments = await momentsOf(bench, jobIds);
  const queued = jobIds.filter(
    (id) =>
      (moments.createdAt.get(id) ?? Infinity) < failedAt && !((moments.ends.get(id) ?? Infinity) < failedAt),
  );
  const standings = await standingsAt(bench, queued, openedAt);
  const arrivals = bench.provider.arrivals.slice(requestsBefore);
  return figuresOf({ ...moments, failedAt, openedAt, arrivals, jobs, queued, standings });
}

/** The fallback scenario with a queue on the dead provider: how fast the backlog moves to `local`. */
export const fallbackBacklog: Scenario = {
  name: 'fallback-backlog',
  title: 'fallback with a backlog',
  conditions: (quick) =>
    `OpenAI-fake image jobs at ${RATE_PER_S}/s (fake answers in ${PROVIDER_DELAY_MS} ms) with PROVIDER_LIMITS ` +
    `openai rpm ${RPM} / concurrency ${CONCURRENCY}, so a queue builds, for ${healthyFor(quick)} s; then every ` +
    `call answered 503 (T) while the stream goes on ${AFTER_S} s; FALLBACK_CHAINS openai:dall-e-2 → local ` +
    `(LOCAL_PROVIDER_DELAY_MS ${LOCAL_DELAY_MS}, no limit of its own); defaults otherwise: breaker ` +
    `${BREAKER_THRESHOLD} failures / ${BREAKER_COOLDOWN_S} s cool-down, FALLBACK_AFTER_FAILED_CALLS ` +
    `${FALLBACK_AFTER_FAILED_CALLS}; queued = submitted before T and not ended by T; drain = T → the last ` +
    'job submitted before T switched (its first `provider_switched` event) or, if it never did, ended; ' +
    '`at_open_*` = where each queued job stood when the breaker opened, from its workflow history ' +
    "(callProvider scheduled on openai's task queue and not yet started, running, asleep on a timer); " +
    'the circuit row is deleted between runs; 1 worker process, 1 API process',
  targets: [
    {
      figure: 'drain_beyond_breaker_ms',
      label:
        `backlog drained ≤ ${TARGET_DRAIN_BEYOND_MS / 1000} s after the breaker opened ` +
        `(2 s + one slot turn at rpm ${RPM})`,
      op: '<=',
      value: TARGET_DRAIN_BEYOND_MS,
    },
    { figure: 'failed_jobs', label: 'no job fails', op: '<=', value: 0 },
  ],
  async run(settings: RunSettings) {
    const limits = { openai: { rpm: RPM, concurrency: CONCURRENCY } };
    const bench = await startOpenAIBench({ env: fallbackEnv({ PROVIDER_LIMITS: JSON.stringify(limits) }) });
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
