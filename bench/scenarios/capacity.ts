import { cpuMsPer } from '../lib/cpu.js';
import { DESIGNS, postMany, taken, type Contender } from '../lib/contenders.js';
import { startContenders } from '../lib/contender-set.js';
import { interleave, type Figures, type RunSettings, type Scenario } from '../lib/scenario.js';
import { percentile } from '../lib/stats.js';

const USERS = 10;
const CLIENTS = 50;
const jobsFor = (quick: boolean) => (quick ? 150 : 300);

/**
 * A backlog big enough to keep every part busy: jobs go in as fast as the design takes them, and the
 * completion rate between the 20th and the 80th percentile end is what the stack sustains saturated.
 */
async function saturate(contender: Contender, jobs: number, label: string): Promise<Figures> {
  const before = await contender.meter.read();
  const posted = await postMany(contender, jobs, CLIENTS, (i) => `${label} ${i}`);
  await contender.settle(posted, 300_000);
  const after = await contender.meter.read();
  const ends = (await contender.endTimes(posted)).sort((a, b) => a - b);
  const from = percentile(ends, 20);
  const to = percentile(ends, 80);
  const steady = ends.filter((at) => at >= from && at <= to).length;
  return {
    jobs_per_s: (steady - 1) / ((to - from) / 1000),
    not_ended: jobs - ends.length,
    refused_posts: posted.filter((p) => !taken(p)).length,
    ...cpuMsPer(before, after, jobs, 'job'),
    history_events_per_job: await contender.historyEventsPerJob(posted),
  };
}

/** Completed jobs/s with a zero-latency provider, CPU per job by process, and history length: vs `bare`. */
export const capacity: Scenario = {
  name: 'capacity',
  title: 'capacity',
  conditions: (quick) =>
    `each round, Kiln, \`bare\` and \`direct\` in turn: ${jobsFor(quick)} jobs posted by ${CLIENTS} concurrent ` +
    'clients as fast as the design takes them (Kiln over ' +
    `${USERS} users), OpenAI fake answering at once; jobs/s = ends per second between the 20th and 80th ` +
    'percentile end (Temporal close times; `direct`: its answers); CPU ms per job per process over the ' +
    'whole run (whole stack = the sum: Temporal dev server, worker, PostgreSQL, MinIO, API; the bench ' +
    'process, which holds the clients and the fake, left out); history events = median of 10 finished ' +
    'histories; one API and one worker process per design, all on the same cores',
  targets: [
    { figure: 'ratio.jobs_per_s', label: 'Kiln ÷ bare ≥ 0.8', op: '>=', value: 0.8 },
    { figure: 'ratio.cpu_ms_per_job', label: 'Kiln ÷ bare ≤ 1.5', op: '<=', value: 1.5 },
    { figure: 'ratio.history_events_per_job', label: 'Kiln ÷ bare ≤ 1.4', op: '<=', value: 1.4 },
  ],
  ratioRows: [
    { label: 'capacity, completed jobs/s, 0 ms provider', figure: 'jobs_per_s' },
    { label: 'CPU ms per job, whole stack', figure: 'cpu_ms_per_job' },
    { label: '… Temporal dev server', figure: 'cpu_ms_per_job_temporal' },
    { label: '… worker', figure: 'cpu_ms_per_job_worker' },
    { label: '… PostgreSQL', figure: 'cpu_ms_per_job_postgres' },
    { label: '… MinIO (object store)', figure: 'cpu_ms_per_job_storage' },
    { label: '… API', figure: 'cpu_ms_per_job_api' },
    { label: 'history events per job', figure: 'history_events_per_job' },
  ],
  async run(settings: RunSettings) {
    const set = await startContenders(
      { kind: 'ok', delayMs: 0 },
      {
        worker: true,
        watch: false,
        users: USERS,
        kilnEnv: { PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 6_000_000, concurrency: 200 } }) },
      },
    );
    try {
      // Warm-up: the first jobs compile the hot paths of every process; they are not measured.
      for (const design of DESIGNS) {
        const contender = set.of(design);
        await contender.settle(await postMany(contender, 50, 10, (i) => `warm-up ${design} ${i}`), 120_000);
      }
      return await interleave(settings, (design, round) =>
        saturate(set.of(design), jobsFor(settings.quick), `capacity ${design} ${round}`),
      );
    } finally {
      await set.stop();
    }
  },
};
