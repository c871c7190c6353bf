import { setTimeout as sleep } from 'node:timers/promises';
import { apiFetch } from '../../test/harness/job-watcher.js';
import { allWithin, JobWatcher, submitTimed } from '../lib/jobs.js';
import { openaiBody, startOpenAIBench, type OpenAIBench } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { latencyFigures } from '../lib/stats.js';

/** The production default, which `startOpenAIBench` sets and this scenario leaves alone. */
const HEARTBEAT_TIMEOUT_SECONDS = 10;
/** The SDK sends heartbeats at most every 0.8 × the timeout; Temporal's cancel rides on the answer. */
const HEARTBEAT_EVERY_MS = 0.8 * HEARTBEAT_TIMEOUT_SECONDS * 1000;
const jobsFor = (quick: boolean) => (quick ? 6 : 20);
const lanesFor = (quick: boolean) => (quick ? 2 : 4);

/** One canceled job: cancel sent → the fake's request closed, and → `canceled` on the socket. */
interface Sample {
  abortMs: number;
  canceledMs: number;
}

/** Polls `value` every 5 ms until it is defined. */
async function waitFor<T>(value: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const found = value();
    if (found !== undefined) return found;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * Submits a job the fake holds open, waits for it to run with its request open, holds it `holdMs`
 * more, then cancels it and times what follows.
 */
async function cancelOne(
  bench: OpenAIBench,
  watcher: JobWatcher,
  prompt: string,
  holdMs: number,
): Promise<Sample> {
  const { provider } = bench;
  const user = bench.users[0]!;
  const { id } = await submitTimed(user, openaiBody(prompt));
  const watched = watcher.watch(id);
  const index = await waitFor(
    () => {
      const i = provider.requests.findIndex((body) => body.prompt === prompt);
      return i >= 0 && watched.statusAt.running !== undefined ? i : undefined;
    },
    60_000,
    `job ${id} running with its request open`,
  );
  await sleep(holdMs);
  if (provider.answeredAt[index] !== undefined) throw new Error(`job ${id}: request closed before cancel`);
  // The fake stamps closes with Date.now(), the socket watcher arrivals with performance.now().
  const sentAt = Date.now();
  const sentAtPerf = performance.now();
  const res = await apiFetch(user, `/v1/generations/${id}/cancel`, { method: 'POST' });
  if (res.status !== 202) throw new Error(`cancel of ${id} answered ${res.status}: ${await res.text()}`);
  const closedAt = await waitFor(() => provider.answeredAt[index], 30_000, `job ${id}'s request closed`);
  const [job] = await allWithin([watched.done], 60_000, `job ${id} ended`);
  if (job?.status !== 'canceled') throw new Error(`job ${id} ended ${job?.status}, not canceled`);
  return { abortMs: closedAt - sentAt, canceledMs: watched.statusAt.canceled! - sentAtPerf };
}

/** `jobs` cancels over `lanes` jobs at a time, the holds spread evenly over one heartbeat interval. */
async function cancelMany(bench: OpenAIBench, watcher: JobWatcher, quick: boolean, run: number) {
  const jobs = jobsFor(quick);
  const samples: Sample[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: lanesFor(quick) }, async () => {
      while (next < jobs) {
        const job = next++;
        const holdMs = (job / jobs) * HEARTBEAT_EVERY_MS;
        samples.push(await cancelOne(bench, watcher, `cancel ${run} ${job}`, holdMs));
      }
    }),
  );
  return samples;
}

/** Cancel sent → the provider request aborted, and → the job `canceled`, with default settings. */
export const cancel: Scenario = {
  name: 'cancel',
  title: 'cancel',
  conditions: (quick) =>
    `${jobsFor(quick)} OpenAI-fake image jobs whose request the fake holds open, ${lanesFor(quick)} at a ` +
    'time; each is canceled (`POST /v1/generations/:id/cancel`) once it is running with its request open ' +
    `and then held 0–${HEARTBEAT_EVERY_MS / 1000} s more (spread evenly over the jobs, so the cancel lands ` +
    'anywhere in the heartbeat interval); `abort` = cancel sent → the fake sees its request closed, ' +
    '`canceled` = cancel sent → `canceled` on the WebSocket; default settings (heartbeat timeout ' +
    `${HEARTBEAT_TIMEOUT_SECONDS} s); 1 worker process, 1 API process`,
  targets: [{ figure: 'abort_p95_ms', label: 'p95 ≤ 1 s', op: '<=', value: 1000 }],
  async run(settings: RunSettings) {
    const bench = await startOpenAIBench({ env: {}, provider: { behaviour: { kind: 'hang' } } });
    try {
      const configured = bench.ctx.config.timeouts.providerHeartbeatSeconds;
      if (configured !== HEARTBEAT_TIMEOUT_SECONDS) {
        throw new Error(
          `heartbeat timeout is ${configured} s, not the default ${HEARTBEAT_TIMEOUT_SECONDS} s`,
        );
      }
      const watcher = await JobWatcher.open(bench.users[0]!);
      const results = await repeat(settings, async (run) => {
        const requestsBefore = bench.provider.requests.length;
        const samples = await cancelMany(bench, watcher, settings.quick, run);
        return {
          ...latencyFigures(
            'abort',
            samples.map((s) => s.abortMs),
            [50, 95],
          ),
          ...latencyFigures(
            'canceled',
            samples.map((s) => s.canceledMs),
            [50, 95],
          ),
          // A canceled call must not be made again.
          repeated_calls: bench.provider.requests.length - requestsBefore - samples.length,
          samples: samples.length,
        };
      });
      watcher.close();
      return results;
    } finally {
      await bench.stop();
    }
  },
};
