import { startFakeOpenAIImagesServer } from '../../test/fakes/openai-images-server.js';
import { cpuMsPer } from '../lib/cpu.js';
import {
  postMany,
  START_CONTENDER,
  taken,
  type Contender,
  type DesignName,
  type Posted,
} from '../lib/contenders.js';
import { atRate } from '../lib/jobs.js';
import { QUEUE_ONLY_ENV } from '../lib/openai-setup.js';
import { interleave, type Figures, type RunSettings, type Scenario } from '../lib/scenario.js';
import { latencyFigures } from '../lib/stats.js';

/** Kiln users the submissions are spread over, as many clients' would be. */
const USERS = 200;
const LIGHT_RATE = 20;
const HEAVY_RATE = 100;
const lightSecondsFor = (quick: boolean) => (quick ? 4 : 15);
const heavySecondsFor = (quick: boolean) => (quick ? 4 : 10);

/** `rate` POSTs a second for `seconds`, each counted once answered: latency without a client-side queue. */
async function openLoop(contender: Contender, rate: number, seconds: number, label: string) {
  const pending: Promise<Posted>[] = [];
  await atRate(rate, seconds, (i) => pending.push(contender.post(`${label} ${i}`, i)));
  return Promise.all(pending);
}

function latencies(posted: Posted[]): number[] {
  return posted.filter(taken).map((p) => p.answeredAt - p.sentAt);
}

/** Taken POSTs a second, from the first sent to the last answered: below the offered rate if the design falls behind. */
function achievedPerSecond(posted: Posted[]): number {
  const first = Math.min(...posted.map((p) => p.sentAt));
  const last = Math.max(...posted.map((p) => p.answeredAt));
  return posted.filter(taken).length / ((last - first) / 1000);
}

/** The two open loops on one design, CPU per submit read over the lighter one (below saturation). */
async function measure(contender: Contender, quick: boolean, label: string): Promise<Figures> {
  const warmUp = await postMany(contender, 100, 20, (i) => `${label} warm-up ${i}`);
  const before = await contender.meter.read();
  const light = await openLoop(contender, LIGHT_RATE, lightSecondsFor(quick), `${label} light`);
  const cpu = cpuMsPer(before, await contender.meter.read(), light.length, 'submit');
  const heavy = await openLoop(contender, HEAVY_RATE, heavySecondsFor(quick), `${label} heavy`);
  await contender.discard([...warmUp, ...light, ...heavy]);
  return {
    ...latencyFigures(`submit${LIGHT_RATE}`, latencies(light), [50, 99]),
    ...cpu,
    ...latencyFigures(`submit${HEAVY_RATE}`, latencies(heavy), [50, 99]),
    [`submit${HEAVY_RATE}_achieved_per_s`]: achievedPerSecond(heavy),
    refused_posts: [...light, ...heavy].filter((p) => !taken(p)).length,
  };
}

/**
 * One round of one design on a stack of its own (Kiln: a fresh database and task queue; `bare`: a
 * fresh task queue). No worker runs, so workflows only queue and the submit path alone is measured; a
 * round that started behind earlier rounds' queued jobs would not repeat the measurement.
 */
async function measureOnFreshStack(design: DesignName, quick: boolean, round: number): Promise<Figures> {
  // `direct` has no submit apart from its call: this fake answers at once, so its figure is the floor.
  const fake = await startFakeOpenAIImagesServer({ behaviour: { kind: 'ok', delayMs: 0 } });
  const contender = await START_CONTENDER[design]({
    fake,
    worker: false,
    watch: false,
    users: USERS,
    kilnEnv: QUEUE_ONLY_ENV,
  });
  try {
    return await measure(contender, quick, `submit ${design} ${round}`);
  } finally {
    await contender.stop();
    await fake.close();
  }
}

/** POST latency at 20/s and at 100/s, open loop, and CPU per submission: vs `bare`. */
export const submitUnderLoad: Scenario = {
  name: 'submit',
  title: 'submit under load',
  conditions: (quick) =>
    `each round, Kiln, \`bare\` and \`direct\` in turn, each on a fresh stack: an open loop of ${LIGHT_RATE} ` +
    `POSTs/s for ${lightSecondsFor(quick)} s, then ${HEAVY_RATE}/s for ${heavySecondsFor(quick)} s (Kiln over ` +
    `${USERS} users); latency = request sent → answer parsed, at the client; achieved = POSTs taken per ` +
    'second from the first sent to the last answered; CPU ms per submit over the first loop (whole stack ' +
    '= the sum of the processes); no worker runs, so the workflows only queue (terminated after the ' +
    'round); `direct` has no submit of its own, so its figure is the whole call to a fake answering at once',
  targets: [
    { figure: `ratio.submit${LIGHT_RATE}_p50_ms`, label: 'Kiln ÷ bare ≤ 1.3', op: '<=', value: 1.3 },
    { figure: `ratio.submit${LIGHT_RATE}_p99_ms`, label: 'Kiln ÷ bare ≤ 1.5', op: '<=', value: 1.5 },
    {
      figure: `ratio.submit${HEAVY_RATE}_achieved_per_s`,
      label: 'Kiln ÷ bare ≥ 0.95',
      op: '>=',
      value: 0.95,
    },
    { figure: `kiln.submit${HEAVY_RATE}_p99_ms`, label: 'Kiln ≤ 250 ms', op: '<=', value: 250 },
    { figure: 'ratio.cpu_ms_per_submit', label: 'Kiln ÷ bare ≤ 1.3', op: '<=', value: 1.3 },
  ],
  ratioRows: [
    { label: `submit at ${LIGHT_RATE}/s, open loop, p50 (ms)`, figure: `submit${LIGHT_RATE}_p50_ms` },
    { label: `submit at ${LIGHT_RATE}/s, open loop, p99 (ms)`, figure: `submit${LIGHT_RATE}_p99_ms` },
    {
      label: `submit at ${HEAVY_RATE}/s, open loop: achieved rate (/s)`,
      figure: `submit${HEAVY_RATE}_achieved_per_s`,
    },
    { label: `submit at ${HEAVY_RATE}/s, open loop, p99 (ms)`, figure: `submit${HEAVY_RATE}_p99_ms` },
    { label: 'CPU ms per submit, whole stack', figure: 'cpu_ms_per_submit' },
    { label: '… Temporal dev server', figure: 'cpu_ms_per_submit_temporal' },
    { label: '… PostgreSQL', figure: 'cpu_ms_per_submit_postgres' },
    { label: '… API', figure: 'cpu_ms_per_submit_api' },
  ],
  run: (settings: RunSettings) =>
    interleave(settings, (design, round) => measureOnFreshStack(design, settings.quick, round)),
};
