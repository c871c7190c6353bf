import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from '../../src/jobs/job.js';
import { cachePlan, DUPLICATE_SHARE, type DistinctRequest, type Duplicate } from '../lib/cache-plan.js';
import { allWithin, atRate, JobWatcher, submitTimed } from '../lib/jobs.js';
import { openaiBody, startOpenAIBench, type OpenAIBench } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { percentile } from '../lib/stats.js';

/** Fixed, so that every run, and every bench, sends the same plan: users, repeats, order and delays. */
const SEED = 18;
const USERS = 3;
const RATE_PER_S = 6;
const PROVIDER_DELAY_MS = 1000;
/** Half the call: a duplicate sent this soon after its first's 202 finds the first in flight. */
const IN_FLIGHT_MS = PROVIDER_DELAY_MS / 2;
const COST = 5;
const CACHE_PRICE = 1;
const jobsFor = (quick: boolean) => (quick ? 30 : 60);

/** A job of the run as it ended, with when it was sent (performance.now()), for its latency. */
interface Ended {
  job: Job;
  sentAt: number;
  endedAt: number;
}

/** Submits a request; resolves at its 202 with the job's end, watched over the WebSocket. */
type Send = (user: number, prompt: string) => Promise<{ ended: Promise<Ended> }>;

/** A sender that submits with `cache: "reuse"` as `user` and watches the job with that user's watcher. */
function senderFor(bench: OpenAIBench, watchers: JobWatcher[]): Send {
  return async (user, prompt) => {
    const body = { ...openaiBody(prompt), cache: 'reuse' };
    const { id, sentAt } = await submitTimed(bench.users[user]!, body);
    const watched = watchers[user]!.watch(id);
    const ended = watched.done.then((job) => ({
      job,
      sentAt,
      endedAt: watched.statusAt[job.status] ?? Number.NaN,
    }));
    return { ended };
  };
}

/** Sends a distinct request, then its duplicates, each when its timing says; resolves with them all ended. */
async function sendWithDuplicates(send: Send, request: DistinctRequest): Promise<Ended[]> {
  const first = await send(request.user, request.prompt);
  const later = request.duplicates.map(async ({ user, timing, afterMs }: Duplicate) => {
    if (timing === 'after_success') await first.ended;
    await sleep(afterMs);
    return (await send(user, request.prompt)).ended;
  });
  return Promise.all([first.ended, ...later]);
}

async function creditsCharged(bench: OpenAIBench, jobIds: string[]): Promise<number> {
  const { total } = await bench.ctx.database.db
    .selectFrom('credit_ledger')
    .select((eb) => eb.fn.sum<string>('amount').as('total'))
    .where('job_id', 'in', jobIds)
    .executeTakeFirstOrThrow();
  return -Number(total);
}

async function measureOnce(bench: OpenAIBench, watchers: JobWatcher[], quick: boolean, run: number) {
  const plan = cachePlan(SEED, jobsFor(quick), USERS, IN_FLIGHT_MS, `cache ${run}`);
  const callsBefore = bench.provider.requests.length;
  const send = senderFor(bench, watchers);
  const sending: Promise<Ended[]>[] = [];
  await atRate(RATE_PER_S, plan.requests.length / RATE_PER_S, (index) => {
    sending.push(sendWithDuplicates(send, plan.requests[index]!));
  });
  const ended = (await allWithin(sending, 180_000, `cache run ${run}`)).flat();
  const jobIds = ended.map(({ job }) => job.id);
  const credits = {
    charged: await creditsCharged(bench, jobIds),
    expected: plan.requests.length * COST + plan.duplicates * CACHE_PRICE,
  };
  return figuresOf(ended, plan.requests.length, bench.provider.requests.length - callsBefore, credits);
}

function figuresOf(
  ended: Ended[],
  distinct: number,
  calls: number,
  credits: { charged: number; expected: number },
) {
  const jobs = ended.map(({ job }) => job);
  const reused = ended.filter(({ job }) => job.cacheOutcome === 'reused');
  return {
    jobs: jobs.length,
    distinct_requests: distinct,
    provider_calls: calls,
    calls_per_job: calls / jobs.length,
    calls_per_distinct: calls / distinct,
    // Fewer calls than distinct requests would be requests merged that differ: as wrong as more.
    calls_off: Math.abs(calls - distinct),
    joined_jobs: jobs.filter((job) => job.cacheOutcome === 'joined').length,
    reused_jobs: reused.length,
    reused_submit_to_succeeded_p50_ms: percentile(
      reused.map(({ sentAt, endedAt }) => endedAt - sentAt),
      50,
    ),
    failed_jobs: jobs.filter((job) => job.status !== 'succeeded').length,
    credits_charged: credits.charged,
    credits_expected: credits.expected,
    credits_off: Math.abs(credits.charged - credits.expected),
  };
}

/** A load with identical requests, some in flight, some after success: one provider call each. */
export const cache: Scenario = {
  name: 'cache',
  title: 'result cache',
  conditions: (quick) =>
    `${jobsFor(quick)} OpenAI-fake image jobs (fake answers in ${PROVIDER_DELAY_MS} ms), all ` +
    `\`cache: "reuse"\`, over ${USERS} users with RESULT_CACHE_SCOPE deployment; ${DUPLICATE_SHARE * 100} % ` +
    'repeat an earlier request (seeded order, the same every run): half sent 0–' +
    `${IN_FLIGHT_MS} ms after their first's 202 (in flight), half 0–1 s after it succeeded; ` +
    `distinct requests sent at ${RATE_PER_S}/s; JOB_COSTS openai ${COST}, RESULT_CACHE_PRICE ` +
    `${CACHE_PRICE}; credits expected = distinct × ${COST} + duplicates × ${CACHE_PRICE}, charged = the ` +
    "run's jobs' ledger; 1 worker process, 1 API process",
  targets: [
    { figure: 'calls_off', label: 'provider calls = distinct requests', op: '<=', value: 0 },
    { figure: 'credits_off', label: 'credits charged = expected', op: '<=', value: 0 },
    { figure: 'failed_jobs', label: 'no job fails', op: '<=', value: 0 },
  ],
  async run(settings: RunSettings) {
    const bench = await startOpenAIBench({
      env: {
        RESULT_CACHE_SCOPE: 'deployment',
        RESULT_CACHE_PRICE: String(CACHE_PRICE),
        JOB_COSTS: JSON.stringify({ openai: COST }),
      },
      provider: { behaviour: { kind: 'ok', delayMs: PROVIDER_DELAY_MS } },
      users: USERS,
    });
    const watchers = await Promise.all(bench.users.map((user) => JobWatcher.open(user)));
    try {
      return await repeat(settings, (run) => measureOnce(bench, watchers, settings.quick, run));
    } finally {
      for (const watcher of watchers) watcher.close();
      await bench.stop();
    }
  },
};
