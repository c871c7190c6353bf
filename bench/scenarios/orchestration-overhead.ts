import { setTimeout as sleep } from 'node:timers/promises';
import { latencyFigures, percentile } from '../lib/stats.js';
import { allWithin, atRate, JobWatcher, submitTimed, type Submitted, type Watched } from '../lib/jobs.js';
import { openaiBody, startOpenAIBench, type OpenAIBench } from '../lib/openai-setup.js';
import { repeat, type Figures, type RunSettings, type Scenario } from '../lib/scenario.js';

const PROVIDER_MS = 1000;
const RATE = 20;
/** A rate far below saturation: the overhead a single job pays, without a queue in front of it. */
const LIGHT_RATE = 2;
const USERS = 10;

interface Sample {
  prompt: string;
  submitted: Submitted;
  watched: Watched;
}

/** Provider time of a prompt's calls as the fake saw them: arrival to the end of its answer. */
function providerMs(bench: OpenAIBench, prompt: string): number | undefined {
  let total = 0;
  let calls = 0;
  bench.provider.requests.forEach((body, index) => {
    if (body.prompt !== prompt) return;
    calls += 1;
    total += (bench.provider.answeredAt[index] ?? Number.NaN) - bench.provider.arrivals[index]!;
  });
  return calls === 1 ? total : undefined;
}

async function submitAtRate(
  bench: OpenAIBench,
  watchers: JobWatcher[],
  label: string,
  seconds: number,
  rate = RATE,
) {
  const pending: Promise<Sample>[] = [];
  await atRate(rate, seconds, (index) => {
    const prompt = `${label} ${index}`;
    const user = index % USERS;
    pending.push(
      submitTimed(bench.users[user]!, openaiBody(prompt)).then((submitted) => ({
        prompt,
        submitted,
        watched: watchers[user]!.watch(submitted.id),
      })),
    );
  });
  const samples = await Promise.all(pending);
  await allWithin(
    samples.map((sample) => sample.watched.done),
    60_000,
    `${label}: jobs`,
  );
  return samples;
}

function figuresOf(bench: OpenAIBench, samples: Sample[], prefix = ''): Figures {
  // Wall clocks (Date.now) at the fake, monotonic clocks here: both are durations, so they subtract.
  const overhead: number[] = [];
  const toRunning: number[] = [];
  const afterProvider: number[] = [];
  let retried = 0;
  for (const { prompt, submitted, watched } of samples) {
    const provider = providerMs(bench, prompt);
    const ended = watched.statusAt.succeeded;
    if (provider === undefined || ended === undefined) {
      retried += 1;
      continue;
    }
    overhead.push(ended - submitted.sentAt - provider);
    if (watched.statusAt.running !== undefined) toRunning.push(watched.statusAt.running - submitted.sentAt);
    if (watched.statusAt.storing !== undefined) afterProvider.push(ended - watched.statusAt.storing);
  }
  return {
    ...latencyFigures(`${prefix}overhead`, overhead),
    [`${prefix}submit_to_running_p50_ms`]: percentile(toRunning, 50),
    [`${prefix}storing_to_succeeded_p50_ms`]: percentile(afterProvider, 50),
    [`${prefix}jobs`]: samples.length,
    [`${prefix}jobs_not_counted`]: retried,
    // Paid calls beyond one per job: a retried call (a heartbeat timeout under load, say) is paid twice.
    [`${prefix}extra_provider_calls`]: samples.reduce(
      (sum, { prompt }) => sum + bench.provider.requests.filter((body) => body.prompt === prompt).length - 1,
      0,
    ),
  };
}

/** End-to-end job time minus provider time, at 20 jobs/s against a provider that always takes 1 s. */
export const orchestrationOverhead: Scenario = {
  name: 'overhead',
  title: 'orchestration overhead',
  conditions: (quick) =>
    `${RATE} jobs/s for ${quick ? 5 : 15} s over ${USERS} users, OpenAI fake answering in ${PROVIDER_MS} ms; ` +
    'end-to-end = POST sent → `succeeded` received on the WebSocket; provider time measured at the fake; ' +
    `1 worker process, 1 API process; \`light${LIGHT_RATE}ps_\` figures: the same at ${LIGHT_RATE} jobs/s`,
  targets: [
    { figure: 'overhead_p50_ms', label: 'p50 ≤ 50 ms', op: '<=', value: 50 },
    { figure: 'overhead_p99_ms', label: 'p99 ≤ 200 ms', op: '<=', value: 200 },
  ],
  async run(settings: RunSettings) {
    const bench = await startOpenAIBench({
      env: { PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 600_000, concurrency: 200 } }) },
      provider: { behaviour: { kind: 'ok', delayMs: PROVIDER_MS } },
      users: USERS,
    });
    const watchers = await Promise.all(bench.users.map((user) => JobWatcher.open(user)));
    try {
      // Warm-up: the first jobs load the workflow bundle's code paths and fill connection pools.
      await submitAtRate(bench, watchers, 'warm-up', 2);
      return await repeat(settings, async (run) => {
        const samples = await submitAtRate(bench, watchers, `overhead-${run}`, settings.quick ? 5 : 15);
        await sleep(2000);
        const light = await submitAtRate(bench, watchers, `light-${run}`, settings.quick ? 4 : 8, LIGHT_RATE);
        return { ...figuresOf(bench, samples), ...figuresOf(bench, light, `light${LIGHT_RATE}ps_`) };
      });
    } finally {
      for (const watcher of watchers) watcher.close();
      await bench.stop();
    }
  },
};
