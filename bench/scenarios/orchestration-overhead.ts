import type { FakeOpenAIImagesServer } from '../../test/fakes/openai-images-server.js';
import { DESIGNS, type Contender } from '../lib/contenders.js';
import { startContenders } from '../lib/contender-set.js';
import { allWithin, atRate } from '../lib/jobs.js';
import { interleave, type Figures, type RunSettings, type Scenario } from '../lib/scenario.js';
import { latencyFigures } from '../lib/stats.js';

const PROVIDER_MS = 1000;
/** Far below saturation: the overhead a single job pays, without a queue in front of it. */
const RATE = 2;
const USERS = 10;
const secondsFor = (quick: boolean) => (quick ? 5 : 15);

/** Provider time of a prompt's call as the fake saw it (arrival to the end of its answer); one call only. */
function providerMs(fake: FakeOpenAIImagesServer, prompt: string): number | undefined {
  const calls = fake.requests.flatMap((body, index) =>
    body.prompt === prompt ? [(fake.answeredAt[index] ?? Number.NaN) - fake.arrivals[index]!] : [],
  );
  return calls.length === 1 ? calls[0] : undefined;
}

async function overheadAtRate(
  contender: Contender,
  fake: FakeOpenAIImagesServer,
  label: string,
  seconds: number,
): Promise<Figures> {
  const pending: Promise<{ prompt: string; sentAt: number; endedAt: number }>[] = [];
  await atRate(RATE, seconds, (index) => {
    const prompt = `${label} ${index}`;
    pending.push(
      contender.post(prompt, index).then(async (posted) => ({
        prompt,
        sentAt: posted.sentAt,
        endedAt: await contender.ended(posted),
      })),
    );
  });
  const samples = await allWithin(pending, 60_000, `${label}: jobs`);
  // Wall clock (Date.now) at the fake, monotonic clock here: both give durations, which subtract.
  const overhead = samples.flatMap(({ prompt, sentAt, endedAt }) => {
    const provider = providerMs(fake, prompt);
    return provider === undefined ? [] : [endedAt - sentAt - provider];
  });
  return {
    ...latencyFigures('overhead', overhead),
    jobs: samples.length,
    // A job whose provider was called more than once (a retry) has no single provider time.
    jobs_not_counted: samples.length - overhead.length,
  };
}

/** End-to-end job time minus provider time at 2 jobs/s, against a provider that takes 1 s: vs `bare`. */
export const orchestrationOverhead: Scenario = {
  name: 'overhead',
  title: 'orchestration overhead',
  conditions: (quick) =>
    `each round, Kiln, \`bare\` and \`direct\` in turn: ${RATE} jobs/s for ${secondsFor(quick)} s (Kiln over ` +
    `${USERS} users), OpenAI fake answering in ${PROVIDER_MS} ms; end-to-end = POST sent → the end known ` +
    "at the client (Kiln: `succeeded` on the WebSocket, subscribed after the 202; `bare`: its result's " +
    'long poll, asked after the 202, answered; `direct`: its answer); minus provider time measured at ' +
    'the fake; one API and one worker process per design',
  targets: [
    { figure: 'ratio.overhead_p50_ms', label: 'Kiln ÷ bare ≤ 1.3', op: '<=', value: 1.3 },
    { figure: 'ratio.overhead_p99_ms', label: 'Kiln ÷ bare ≤ 1.5', op: '<=', value: 1.5 },
  ],
  ratioRows: [
    {
      label: `overhead at ${RATE} jobs/s, ${PROVIDER_MS / 1000} s provider, p50 (ms)`,
      figure: 'overhead_p50_ms',
    },
    {
      label: `overhead at ${RATE} jobs/s, ${PROVIDER_MS / 1000} s provider, p99 (ms)`,
      figure: 'overhead_p99_ms',
    },
  ],
  async run(settings: RunSettings) {
    const set = await startContenders(
      { kind: 'ok', delayMs: PROVIDER_MS },
      {
        worker: true,
        watch: true,
        users: USERS,
        kilnEnv: { PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 600_000, concurrency: 200 } }) },
      },
    );
    try {
      // Warm-up: the first jobs load the workflow bundle's code paths and fill connection pools.
      for (const design of DESIGNS) await overheadAtRate(set.of(design), set.fake, `warm-up ${design}`, 2);
      return await interleave(settings, (design, round) =>
        overheadAtRate(set.of(design), set.fake, `overhead ${design} ${round}`, secondsFor(settings.quick)),
      );
    } finally {
      await set.stop();
    }
  },
};
