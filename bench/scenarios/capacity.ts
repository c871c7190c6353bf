import { setTimeout as sleep } from 'node:timers/promises';
import { cpuMsPer, stackMeter } from '../lib/cpu.js';
import { submitMany } from '../lib/jobs.js';
import { openaiBody, startOpenAIBench, type OpenAIBench } from '../lib/openai-setup.js';
import { repeat, type Figures, type RunSettings, type Scenario } from '../lib/scenario.js';
import { percentile } from '../lib/stats.js';

const USERS = 10;
const jobsFor = (quick: boolean) => (quick ? 150 : 300);

async function completionTimes(bench: OpenAIBench, ids: string[]): Promise<number[]> {
  const rows = await bench.ctx.database.db
    .selectFrom('jobs')
    .select(['completed_at'])
    .where('id', 'in', ids)
    .where('status', '=', 'succeeded')
    .execute();
  return rows.map((row) => row.completed_at!.getTime()).sort((a, b) => a - b);
}

async function unfinished(bench: OpenAIBench, ids: string[]): Promise<number> {
  const { count } = await bench.ctx.database.db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('id', 'in', ids)
    .where('status', 'not in', ['succeeded', 'failed', 'canceled', 'expired'])
    .executeTakeFirstOrThrow();
  return Number(count);
}

/**
 * A backlog big enough to keep every part busy: jobs go in as fast as the API takes them and the
 * completion rate between the 20th and the 80th percentile completion is what the stack sustains
 * once saturated.
 */
async function saturate(bench: OpenAIBench, settings: RunSettings, run: number): Promise<Figures> {
  const jobs = jobsFor(settings.quick);
  const meter = stackMeter({ worker: bench.workers[0]?.child.pid, api: bench.api.child.pid });
  const cpuBefore = await meter.read();
  const startedAt = Date.now();
  const submitted = await submitMany(bench.users[0]!, jobs, 50, (i) => openaiBody(`capacity ${run} ${i}`));
  const submitSeconds = (Date.now() - startedAt) / 1000;
  const ids = submitted.map((s) => s.id);
  const giveUpAt = Date.now() + 300_000;
  while ((await unfinished(bench, ids)) > 0 && Date.now() < giveUpAt) await sleep(500);
  const cpuAfter = await meter.read();
  const done = await completionTimes(bench, ids);
  const from = percentile(done, 20);
  const to = percentile(done, 80);
  const steadyJobs = done.filter((at) => at >= from && at <= to).length;
  return {
    completed_jobs_per_s: (steadyJobs - 1) / ((to - from) / 1000),
    overall_jobs_per_s: done.length / ((done.at(-1)! - startedAt) / 1000),
    submitted_per_s: jobs / submitSeconds,
    not_succeeded: jobs - done.length,
    ...cpuMsPer(cpuBefore, cpuAfter, jobs, 'job'),
  };
}

/** Sustained completed jobs/s with a zero-latency provider, with the stack saturated by a backlog. */
export const capacity: Scenario = {
  name: 'capacity',
  title: 'capacity',
  conditions: (quick) =>
    `${jobsFor(quick)} jobs submitted by 50 concurrent clients as fast as the API takes them, OpenAI fake ` +
    'answering at once; figure = completions per second between the 20th and 80th percentile completion ' +
    '(saturated: the backlog never empties before the 80th); CPU ms per job per process over the whole run; ' +
    `${USERS} users; 1 worker process, 1 API process, all on the same 2 cores`,
  targets: [{ figure: 'completed_jobs_per_s', label: '≥ 100 jobs/s', op: '>=', value: 100 }],
  async run(settings: RunSettings) {
    const bench = await startOpenAIBench({
      env: { PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 6_000_000, concurrency: 200 } }) },
      provider: { behaviour: { kind: 'ok', delayMs: 0 } },
      users: USERS,
    });
    try {
      // Warm-up: the first jobs compile the hot paths of every process; they are not measured.
      await submitMany(bench.users[0]!, 50, 10, (i) => openaiBody(`capacity warm-up ${i}`));
      const warmUpUntil = Date.now() + 60_000;
      while (
        (await bench.ctx.database.db.selectFrom('jobs').select('id').where('status', '=', 'queued').execute())
          .length > 0 &&
        Date.now() < warmUpUntil
      )
        await sleep(500);
      return await repeat(settings, (run) => saturate(bench, settings, run));
    } finally {
      await bench.stop();
    }
  },
};
