import { startFakeOpenAIChatServer, type FakeOpenAIChatServer } from '../../test/fakes/openai-chat-server.js';
import { allWithin, inPool, JobWatcher, submitTimed } from '../lib/jobs.js';
import { startKilnBench, type KilnBench } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { latencyFigures } from '../lib/stats.js';

/**
 * Far enough apart that the first token's message is not also the stream's end: the fake's reply is
 * about 16 tokens, so a stream lasts about half a second.
 */
const TOKEN_DELAY_MS = 30;
const MODEL = 'gpt-4o-mini';
const jobsFor = (quick: boolean) => (quick ? 20 : 100);
const lanesFor = (quick: boolean) => (quick ? 2 : 4);

const textBody = (prompt: string) => ({ kind: 'text', provider: 'openai', model: MODEL, prompt });

/** One text job: its first token from the fake's write to the watcher's receipt. */
interface Sample {
  overheadMs: number;
  /**
   * The subscription's first message came after the token was written: the token may have reached the
   * watcher by the subscription's catch-up read rather than the live stream, as it would a real client
   * that got its 202 that late.
   */
  subscribedLate: boolean;
}

/** Submits a text job, follows it over the socket from its 202 to its end, and times its first token. */
async function firstTokenOverhead(
  bench: KilnBench,
  chat: FakeOpenAIChatServer,
  watcher: JobWatcher,
  prompt: string,
): Promise<Sample> {
  const { id } = await submitTimed(bench.users[0]!, textBody(prompt));
  const watched = watcher.watch(id);
  const [job] = await allWithin([watched.done], 60_000, `job ${id} ended`);
  if (job?.status !== 'succeeded') throw new Error(`job ${id} ended ${job?.status}, not succeeded`);
  const writtenAt =
    chat.firstTokenAt[chat.requests.findIndex((body) => body.messages.at(-1)?.content === prompt)];
  const subscribedAt = watched.messages[0]?.at;
  if (writtenAt === undefined || watched.firstTextAt === undefined || subscribedAt === undefined) {
    throw new Error(`job ${id}: its first token was not seen at both ends`);
  }
  // One clock: the fake runs in this process and stamps performance.timeOrigin + performance.now(),
  // the watcher performance.now(), so adding the time origin puts both on the same monotonic scale.
  const toFakeClock = (at: number) => performance.timeOrigin + at;
  return {
    overheadMs: toFakeClock(watched.firstTextAt) - writtenAt,
    subscribedLate: toFakeClock(subscribedAt) > writtenAt,
  };
}

/** The provider's first content token written → the first text message on the job's WebSocket. */
export const firstToken: Scenario = {
  name: 'first-token',
  title: 'text time to first token',
  conditions: (quick) =>
    `${jobsFor(quick)} text jobs (${MODEL}) against the OpenAI chat fake, which streams a token every ` +
    `${TOKEN_DELAY_MS} ms, ${lanesFor(quick)} at a time, each watched over one WebSocket from its submit; ` +
    '`first_token` = the fake writes the first content token → the first text message reaches the ' +
    'watcher (both stamped in the bench process, on one clock); `subscribed_late` counts the jobs whose ' +
    "subscription's first message came after that token was written; 1 worker process, 1 API process",
  targets: [{ figure: 'first_token_p99_ms', label: 'p99 ≤ 60 ms', op: '<=', value: 60 }],
  async run(settings: RunSettings) {
    const chat = await startFakeOpenAIChatServer({ behaviour: { kind: 'ok', tokenDelayMs: TOKEN_DELAY_MS } });
    try {
      const bench = await startKilnBench(chat, { env: {} });
      try {
        const watcher = await JobWatcher.open(bench.users[0]!);
        const results = await repeat(settings, async (run) => {
          const requestsBefore = chat.requests.length;
          const samples = await inPool(jobsFor(settings.quick), lanesFor(settings.quick), (job) =>
            firstTokenOverhead(bench, chat, watcher, `first token ${run} ${job}`),
          );
          const overheads = samples.map((s) => s.overheadMs);
          return {
            ...latencyFigures('first_token', overheads, [50, 99]),
            first_token_min_ms: Math.min(...overheads),
            subscribed_late: samples.filter((s) => s.subscribedLate).length,
            // One call per job: more means a call failed and was retried, and the run is suspect.
            repeated_calls: chat.requests.length - requestsBefore - samples.length,
            samples: samples.length,
          };
        });
        watcher.close();
        return results;
      } finally {
        await bench.stop();
      }
    } finally {
      await chat.close();
    }
  },
};
