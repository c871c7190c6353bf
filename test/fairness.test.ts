import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { TERMINAL_STATUSES } from '../src/jobs/job.js';
import { submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const JOB_MS = 400;
const PROVIDER_SLOTS = 4;

let ctx: TestContext;
let api: ApiTarget;

before(async () => {
  ctx = await createTestContext({
    LOCAL_PROVIDER_DELAY_MS: String(JOB_MS),
    LOCAL_PROVIDER_STEPS: '1',
    PROVIDER_LIMITS: JSON.stringify({ local: { rpm: 60_000, concurrency: PROVIDER_SLOTS } }),
    PLANS: JSON.stringify({
      free: { maxRunning: 2, weight: 1 },
      // A plan whose running cap does not bind: only Temporal's fairness stands between users.
      bulk: { maxRunning: 1000, weight: 1 },
      pro: { maxRunning: 1000, weight: 4 },
    }),
    SUBMIT_RATE_PER_MINUTE: '1000000',
    SUBMIT_BURST: '10000',
  });
  await startWorker(ctx);
  api = await startApi(ctx);
});
after(() => ctx.cleanup());

const body = (prompt: string) => ({ kind: 'image', prompt, params: { size: '256x256' } });

async function submitAs(apiKey: string, count: number, label: string): Promise<string[]> {
  const ids: string[] = [];
  // A few at a time, in order: submission order is what admission must keep.
  for (let i = 0; i < count; i += 8) {
    const batch = Array.from({ length: Math.min(8, count - i) }, async (_, j) => {
      const reply = await submit({ url: api.url, apiKey }, body(`${label} ${i + j}`), randomUUID());
      assert.equal(reply.status, 202, JSON.stringify(reply.body));
      return String(reply.body.id);
    });
    ids.push(...(await Promise.all(batch)));
  }
  return ids;
}

interface Timing {
  id: string;
  userId: string;
  status: string;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
}

async function timings(ids: string[]): Promise<Timing[]> {
  const rows = await ctx.database.db
    .selectFrom('jobs')
    .select(['id', 'user_id', 'status', 'created_at', 'started_at', 'completed_at'])
    .where('id', 'in', ids)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((row) => ({
    id: row.id,
    userId: row.user_id,
    status: row.status,
    createdAt: row.created_at,
    startedAt: row.started_at,
    completedAt: row.completed_at,
  }));
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const allEnded = (ids: string[]) => async () =>
  (await timings(ids)).every((job) => TERMINAL_STATUSES.includes(job.status as never));

describe('per-user running slots', () => {
  test('a free user runs at most 2 jobs at once; the rest start in submission order', async () => {
    const user = await ctx.createUser({ plan: 'free' });
    const ids = await submitAs(user.apiKey, 8, 'slots');
    let peak = 0;
    await waitUntil(async () => {
      const jobs = await timings(ids);
      peak = Math.max(peak, jobs.filter((job) => ['running', 'storing'].includes(job.status)).length);
      return jobs.every((job) => job.status === 'succeeded');
    }, 60_000);
    assert.ok(peak <= 2, `peak of ${peak} running`);
    const jobs = await timings(ids);
    const startOrder = [...jobs].sort((a, b) => a.startedAt!.getTime() - b.startedAt!.getTime());
    // Two start together, so compare pairs: the n-th pair started are the n-th pair submitted.
    const pairs = (list: Timing[]) =>
      Array.from({ length: list.length / 2 }, (_, i) => new Set([list[2 * i]!.id, list[2 * i + 1]!.id]));
    assert.deepEqual(pairs(startOrder), pairs(jobs));
  });
});

describe('sharing a busy provider', () => {
  test("one user's backlog of 200 does not stall another user's single job", async () => {
    const heavy = await ctx.createUser({ plan: 'bulk' });
    const light = await ctx.createUser({ plan: 'bulk' });
    const backlog = await submitAs(heavy.apiKey, 200, 'backlog');
    const [single] = await submitAs(light.apiKey, 1, 'single');
    await waitUntil(async () => (await timings([single!]))[0]!.startedAt !== null, 60_000);
    const [job] = await timings([single!]);
    const waitMs = job!.startedAt!.getTime() - job!.createdAt.getTime();
    const stillQueued = (await timings(backlog)).filter((row) => row.startedAt === null).length;
    console.log(`single job started after ${waitMs} ms, ${stillQueued} of the backlog still waiting`);
    assert.ok(stillQueued > 50, 'the backlog was still there when the single job started');
    // FIFO would put it behind the whole backlog (~20 s at 4 slots x 400 ms); one slot frees every 100 ms.
    assert.ok(waitMs < 5000, `the single job waited ${waitMs} ms`);
    await waitUntil(allEnded([...backlog, single!]), 120_000);
  });

  test('a pro user gets the larger share; a free user is slowed, not starved', async () => {
    const pro = await ctx.createUser({ plan: 'pro' });
    const bulk = await ctx.createUser({ plan: 'bulk' });
    const [proIds, bulkIds] = await Promise.all([
      submitAs(pro.apiKey, 40, 'pro'),
      submitAs(bulk.apiKey, 40, 'bulk'),
    ]);
    await waitUntil(allEnded([...proIds, ...bulkIds]), 120_000);
    const jobs = await timings([...proIds, ...bulkIds]);
    // While both backlogs are there: the first 40 jobs to start.
    const firstStarted = [...jobs]
      .sort((a, b) => a.startedAt!.getTime() - b.startedAt!.getTime())
      .slice(0, 40);
    const proShare = firstStarted.filter((job) => job.userId === pro.userId).length;
    console.log(`first 40 starts: ${proShare} pro (weight 4), ${40 - proShare} bulk (weight 1)`);
    assert.ok(proShare >= 24, `pro got ${proShare} of the first 40`);
    assert.ok(40 - proShare >= 3, 'the lower tier still progressed');
  });
});
