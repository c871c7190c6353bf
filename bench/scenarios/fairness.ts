import { setTimeout as sleep } from 'node:timers/promises';
import { spawnWorkerProcess } from '../../test/harness/kiln-processes.js';
import type { TestContext } from '../../test/harness/test-context.js';
import { submitMany, submitTimed, terminateWorkflows } from '../lib/jobs.js';
import { workerProcessEnv } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { benchContext, spawnApiProcess } from '../lib/stack.js';

const CALL_MS = 1000;
const SLOTS = 4;
const backlogFor = (quick: boolean) => (quick ? 200 : 1000);
const localBody = (prompt: string) => ({
  kind: 'image',
  provider: 'local',
  prompt,
  params: { size: '256x256' },
});

async function startedAt(ctx: TestContext, id: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await ctx.database.db
      .selectFrom('jobs')
      .select(['created_at', 'started_at'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    if (row.started_at) return { createdAt: row.created_at, startedAt: row.started_at };
    if (Date.now() > deadline) throw new Error(`job ${id} did not start in ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Backlog jobs that started between `from` and `to`, and those not started at all. */
function backlogCounts(ctx: TestContext, ids: string[], from: Date, to: Date) {
  return ctx.database.db
    .selectFrom('jobs')
    .select((eb) => [
      eb.fn
        .countAll<string>()
        .filterWhere((f) => f.and([f('started_at', '>', from), f('started_at', '<', to)]))
        .as('startedBetween'),
      eb.fn.countAll<string>().filterWhere('started_at', 'is', null).as('waiting'),
    ])
    .where('id', 'in', ids)
    .executeTakeFirstOrThrow();
}

/** One user's single job submitted behind another user's backlog, on a provider with a few slots. */
export const fairness: Scenario = {
  name: 'fairness',
  title: 'fairness',
  conditions: (quick) =>
    `user A submits ${backlogFor(quick)} jobs (20 at a time), then user B one job; local provider taking ` +
    `${CALL_MS} ms, ${SLOTS} slots (a slot frees every ${CALL_MS / SLOTS} ms); both users on a plan that does ` +
    'not cap running jobs, so only Temporal fairness stands between them; wait = created_at → started_at; ' +
    '`backlog_starts_before_it` = backlog jobs that started between its submission and its start; ' +
    '1 worker process, 1 API process',
  // "Within one provider slot": no more of the backlog starts ahead of it than the provider has slots,
  // i.e. it takes the next slot that frees (FIFO would put it behind the whole backlog).
  targets: [
    {
      figure: 'backlog_starts_before_it',
      label: `starts within one provider slot (≤ ${SLOTS} backlog starts ahead of it)`,
      op: '<=',
      value: SLOTS,
    },
  ],
  async run(settings: RunSettings) {
    const ctx = await benchContext({
      LOCAL_PROVIDER_DELAY_MS: String(CALL_MS),
      LOCAL_PROVIDER_STEPS: '1',
      PROVIDER_LIMITS: JSON.stringify({ local: { rpm: 600_000, concurrency: SLOTS } }),
      PLANS: JSON.stringify({ bulk: { maxRunning: 5000, weight: 1 } }),
      DEFAULT_PLAN: 'bulk',
      SUBMIT_RATE_PER_MINUTE: '10000000',
      SUBMIT_BURST: '100000',
    });
    try {
      const worker = spawnWorkerProcess(ctx, workerProcessEnv());
      const [api] = await Promise.all([spawnApiProcess(ctx), worker.ready]);
      return await repeat(settings, async (run) => {
        const heavy = { url: api.url, apiKey: (await ctx.createUser()).apiKey };
        const light = { url: api.url, apiKey: (await ctx.createUser()).apiKey };
        const backlog = await submitMany(heavy, backlogFor(settings.quick), 20, (i) =>
          localBody(`backlog ${run} ${i}`),
        );
        // Let the backlog's provider tasks reach the queue ahead of the single job.
        await sleep(1000);
        const single = await submitTimed(light, localBody(`single ${run}`));
        const { createdAt, startedAt: started } = await startedAt(ctx, single.id, 120_000);
        const ids = backlog.map((b) => b.id);
        const counts = await backlogCounts(ctx, ids, createdAt, started);
        await terminateWorkflows(ctx, ids);
        // Leases of calls cut short by the termination would hold the slots for 30 s.
        await ctx.database.db.deleteFrom('provider_slots').execute();
        await sleep(1000);
        return {
          single_job_wait_ms: started.getTime() - createdAt.getTime(),
          backlog_starts_before_it: Number(counts.startedBetween),
          backlog_still_waiting: Number(counts.waiting),
        };
      });
    } finally {
      await ctx.cleanup();
    }
  },
};
