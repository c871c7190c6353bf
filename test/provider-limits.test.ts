import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { releaseProviderSlot, takeProviderSlot } from '../src/db/provider-capacity-repository.js';
import { TERMINAL_STATUSES, type JobStatus } from '../src/jobs/job.js';
import { submit } from './harness/job-watcher.js';
import { spawnWorkerProcess, startWorker } from './harness/kiln-processes.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const body = (prompt: string) => ({ kind: 'image', prompt, model: 'dall-e-2', params: { size: '256x256' } });

async function submitMany(stack: OpenAIStack, count: number, label: string): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const reply = await submit(stack.api, body(`${label} ${i}`), randomUUID());
      assert.equal(reply.status, 202, JSON.stringify(reply.body));
      return String(reply.body.id);
    }),
  );
}

/** Waits on the job table itself: polling a few dozen jobs over HTTP would load the machine more than Kiln. */
async function waitForAll(
  stack: OpenAIStack,
  ids: string[],
  timeoutMs: number,
): Promise<Map<string, JobStatus>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await stack.ctx.database.db
      .selectFrom('jobs')
      .select(['id', 'status'])
      .where('id', 'in', ids)
      .execute();
    if (rows.every((row) => TERMINAL_STATUSES.includes(row.status))) {
      return new Map(rows.map((row) => [row.id, row.status]));
    }
    if (Date.now() > deadline) throw new Error('jobs still unfinished');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function assertAllSucceeded(statuses: Map<string, JobStatus>) {
  const notSucceeded = [...statuses.values()].filter((status) => status !== 'succeeded');
  assert.deepEqual(notSucceeded, [], 'no job fails because of the limit');
}

describe('a provider limited to R requests per minute', () => {
  const RPM = 120;
  const BURST = 4;
  const JOBS = 40;
  let stack: OpenAIStack;
  after(() => stack.stop());

  test('a burst finishes in close to jobs ÷ R, with two workers, and the provider answers at most one 429', async () => {
    stack = await startOpenAIStack(
      {
        DEFAULT_PROVIDER: 'openai',
        PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: RPM, concurrency: 8 } }),
      },
      // Like real providers, the bucket holds a couple of seconds' worth of requests.
      { requestLimit: { perMinute: RPM, burst: BURST } },
    );
    stack.provider.setBehaviour({ kind: 'ok', delayMs: 200 });
    // A second worker polls the same provider queue: the pace is shared through Postgres, not each worker's.
    await startWorker(stack.ctx);
    const startedAt = Date.now();
    const ids = await submitMany(stack, JOBS, 'burst');
    const statuses = await waitForAll(stack, ids, 120_000);
    const elapsedMs = Date.now() - startedAt;
    const idealMs = (JOBS / RPM) * 60_000;
    const calls = stack.provider.countRequests();
    const refused = stack.provider.rateLimitedResponses();
    console.log(
      `burst: ${JOBS} jobs in ${elapsedMs} ms (ideal ${idealMs}), ${refused}/${calls} answered 429`,
    );
    assertAllSucceeded(statuses);
    // Unpaced, most of these calls would be refused. Paced, a 429 needs the time from a call's turn to
    // the provider to vary by over 2¾ intervals (1.4 s: the bucket's three spare calls less the quarter
    // interval a turn may be late). A loaded machine can stall that long once; the pause the 429 sets
    // lets the bucket refill, so one stall costs one 429.
    assert.ok(refused <= 1, `${refused} of ${calls} calls got 429`);
    assert.ok(elapsedMs < idealMs * 1.5 + 5000, `took ${elapsedMs} ms, ideal ${idealMs} ms`);
    // The bucket's burst aside, nothing can beat the provider's rate: a check that the fake enforces it.
    assert.ok(elapsedMs > ((JOBS - BURST) / RPM) * 60_000 * 0.9);
  });
});

/** The `pid@host` of each worker that started a provider call of these jobs, from their histories. */
async function callingWorkers(stack: OpenAIStack, ids: string[]): Promise<Set<string>> {
  const identities = new Set<string>();
  for (const id of ids) {
    const events = (await stack.ctx.temporal.workflow.getHandle(id).fetchHistory()).events ?? [];
    const calls = new Set(
      events
        .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'callProvider')
        .map((event) => String(event.eventId)),
    );
    for (const event of events) {
      const started = event.activityTaskStartedEventAttributes;
      if (started && calls.has(String(started.scheduledEventId))) identities.add(started.identity ?? '');
    }
  }
  return identities;
}

describe('a provider paced across worker processes', () => {
  const RPM = 60;
  const INTERVAL_MS = 60_000 / RPM;
  const JOBS = 12;
  let stack: OpenAIStack;
  after(() => stack.stop());

  test('calls from two processes reach the provider about one interval apart, never in a burst', async () => {
    // No request limit at the fake: it sees Kiln's own spacing, and refuses nothing.
    stack = await startOpenAIStack({
      DEFAULT_PROVIDER: 'openai',
      PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: RPM, concurrency: 8 } }),
    });
    stack.provider.setBehaviour({ kind: 'ok', delayMs: 200 });
    // A worker in a process of its own shares nothing with the first but the database.
    const other = spawnWorkerProcess(stack.ctx);
    await other.ready;
    const ids = await submitMany(stack, JOBS, 'spaced');
    assertAllSucceeded(await waitForAll(stack, ids, 60_000));
    const arrivals = [...stack.provider.arrivals].sort((a, b) => a - b);
    const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]!);
    console.log(`spaced: interval ${INTERVAL_MS} ms, gaps ${gaps.join(' ')} ms`);
    assert.equal(arrivals.length, JOBS, 'one call a job');
    assert.equal((await callingWorkers(stack, ids)).size, 2, 'both workers made calls');
    // Turns are at least ¾ of an interval apart (a late turn keeps the schedule, and the next one comes
    // sooner); the other quarter allows for the time from a turn to the provider, which varies with load.
    const short = gaps.filter((gap) => gap < INTERVAL_MS / 2);
    assert.deepEqual(short, [], 'no two calls less than half an interval apart');
  });
});

describe('a provider out of quota', () => {
  let stack: OpenAIStack;
  after(() => stack.stop());

  test('one 429 with Retry-After pauses the provider for every job at once', async () => {
    stack = await startOpenAIStack({
      DEFAULT_PROVIDER: 'openai',
      PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 6000, concurrency: 2 } }),
    });
    const PAUSE_MS = 3000;
    stack.provider.exhaustQuota(PAUSE_MS);
    const quotaBackAt = Date.now() + PAUSE_MS;
    const ids = await submitMany(stack, 8, 'paused');
    const statuses = await waitForAll(stack, ids, 60_000);
    assertAllSucceeded(statuses);
    // Only calls already in flight when the first 429 came back can meet one: at most the two slots.
    assert.ok(stack.provider.rateLimitedResponses() <= 2, `${stack.provider.rateLimitedResponses()} 429s`);
    const firstRefusalAt = stack.provider.arrivals[0]!;
    const duringPause = stack.provider.arrivals.filter(
      (at) => at > firstRefusalAt + 500 && at < quotaBackAt - 100,
    );
    assert.deepEqual(duringPause, [], 'no call reached the provider while it was paused');
  });
});

describe('a provider whose quota is smaller than configured', () => {
  let stack: OpenAIStack;
  after(() => stack.stop());

  test('Kiln paces to the remaining-requests headers instead of meeting 429s', async () => {
    stack = await startOpenAIStack(
      {
        DEFAULT_PROVIDER: 'openai',
        // The configuration promises far more than the account has: only the headers tell the truth.
        PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 6000, concurrency: 1 } }),
      },
      { requestLimit: { perMinute: 60, burst: 2 } },
    );
    const JOBS = 8;
    const startedAt = Date.now();
    const ids = await submitMany(stack, JOBS, 'paced');
    assertAllSucceeded(await waitForAll(stack, ids, 60_000));
    const elapsedMs = Date.now() - startedAt;
    console.log(`paced: ${JOBS} jobs in ${elapsedMs} ms, ${stack.provider.rateLimitedResponses()} 429s`);
    assert.equal(stack.provider.rateLimitedResponses(), 0);
    // 60/min with a bucket of 2: after the first two, one call a second.
    assert.ok(elapsedMs >= (JOBS - 2) * 1000 * 0.9, `took only ${elapsedMs} ms`);
  });
});

describe('a provider with a concurrency cap', () => {
  let stack: OpenAIStack;
  after(() => stack.stop());

  test('holds across workers: two workers together never exceed the cap', async () => {
    const CAP = 2;
    stack = await startOpenAIStack({
      DEFAULT_PROVIDER: 'openai',
      PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 6000, concurrency: CAP } }),
    });
    await startWorker(stack.ctx);
    stack.provider.setBehaviour({ kind: 'ok', delayMs: 700 });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, stack.provider.openRequests())), 10);
    try {
      const ids = await submitMany(stack, 8, 'capped');
      assertAllSucceeded(await waitForAll(stack, ids, 60_000));
    } finally {
      clearInterval(sampler);
    }
    assert.equal(peak, CAP, `peak of ${peak} calls in flight`);
  });
});

describe('a provider slot that comes free', () => {
  let ctx: TestContext;
  before(async () => {
    ctx = await createTestContext();
  });
  after(() => ctx.cleanup());

  /** A one-slot key's take for `jobId`, unpaced. */
  const askOf = (limitKey: string) => (jobId: string) =>
    takeProviderSlot(ctx.database.db, { limitKey, jobId, capacity: 1, intervalMs: 0, leaseMs: 30_000 });

  test('goes to the call that has waited longest, not to the first to ask after it came free', async () => {
    const ask = askOf('fifo');
    assert.deepEqual(await ask('holder'), { taken: true });
    assert.equal((await ask('first waiter')).taken, false);
    assert.equal((await ask('second waiter')).taken, false);
    await releaseProviderSlot(ctx.database.db, 'holder');
    assert.equal((await ask('second waiter')).taken, false, 'the later waiter asked first, and waits on');
    assert.equal((await ask('newcomer')).taken, false, 'a call just arrived waits behind both');
    assert.deepEqual(await ask('first waiter'), { taken: true });
    await releaseProviderSlot(ctx.database.db, 'first waiter');
    assert.deepEqual(await ask('second waiter'), { taken: true });
  });

  test('a waiter that stopped asking holds no one back once it lapsed', async () => {
    const ask = askOf('lapse');
    assert.deepEqual(await ask('holder'), { taken: true });
    assert.equal((await ask('gone')).taken, false);
    await releaseProviderSlot(ctx.database.db, 'holder');
    assert.equal((await ask('later')).taken, false, 'the waiter is still in its place');
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.deepEqual(await ask('later'), { taken: true });
  });
});
