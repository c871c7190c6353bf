import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { createKilnClient } from '../src/client/kiln-client.js';
import { jobEventsAfter } from '../src/db/job-event-repository.js';
import { findJob } from '../src/db/job-repository.js';
import type { JobEvent } from '../src/events/job-event.js';
import { startApi, startWorker, spawnWorkerProcess } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

let ctx: TestContext;

before(async () => {
  ctx = await createTestContext({
    LOCAL_PROVIDER_DELAY_MS: '2500',
    LOCAL_PROVIDER_STEPS: '5',
    // Two calls at a time fleet-wide: with eight jobs, one worker alone cannot take them all.
    PROVIDER_LIMITS: JSON.stringify({ local: { rpm: 6000, concurrency: 2 } }),
  });
});
after(() => ctx.cleanup());

const body = {
  kind: 'image' as const,
  prompt: 'a kiln on many machines',
  params: { size: '256x256' as const },
};

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

async function recordedSeqs(jobId: string): Promise<number[]> {
  return (await jobEventsAfter(ctx.database.db, jobId, 0)).map((event) => event.seq);
}

/** Which worker processes (Temporal identities, `pid@host`) ran the job's provider call. */
async function providerCallWorkers(jobId: string): Promise<string[]> {
  const history = await ctx.temporal.workflow.getHandle(jobId).fetchHistory();
  const scheduled = new Map<string, string>();
  const workers: string[] = [];
  for (const event of history.events ?? []) {
    const type = event.activityTaskScheduledEventAttributes?.activityType?.name;
    if (type) scheduled.set(String(event.eventId), type);
    const started = event.activityTaskStartedEventAttributes;
    if (started && scheduled.get(String(started.scheduledEventId)) === 'callProvider') {
      workers.push(started.identity ?? '');
    }
  }
  return workers;
}

describe('two workers and two APIs on one machine', () => {
  test('jobs spread across both workers; a client on API #1 sees every event of jobs submitted on API #2', async () => {
    const workers = [spawnWorkerProcess(ctx), spawnWorkerProcess(ctx)];
    await Promise.all(workers.map((worker) => worker.ready));
    const [first, second] = [await startApi(ctx), await startApi(ctx)];
    const viaSecond = createKilnClient({ baseUrl: second.url, apiKey: ctx.apiKey });
    const viaFirst = createKilnClient({ baseUrl: first.url, apiKey: ctx.apiKey });
    const ids = await Promise.all(Array.from({ length: 8 }, async () => (await viaSecond.submit(body)).id));
    const watched = await Promise.all(ids.map((id) => collect(viaFirst.watch(id))));
    for (const [i, events] of watched.entries()) {
      assert.equal(events.at(-1)?.job.status, 'succeeded');
      assert.deepEqual(
        events.map((event) => event.seq),
        await recordedSeqs(ids[i]!),
      );
    }
    const pids = new Set(workers.map((worker) => String(worker.child.pid)));
    const ran = (await Promise.all(ids.map(providerCallWorkers))).flat();
    const byPid = new Set(ran.map((identity) => identity.split('@')[0]));
    assert.deepEqual(byPid, pids, `provider calls ran on ${[...byPid].join(', ')}`);
    await Promise.all(workers.map((worker) => worker.stop()));
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM: the worker stops polling, finishes its provider call, and exits 0', async () => {
    const api = await startApi(ctx);
    const client = createKilnClient({ baseUrl: api.url, apiKey: ctx.apiKey });
    const worker = spawnWorkerProcess(ctx);
    await worker.ready;
    const { id } = await client.submit(body);
    for await (const event of client.watch(id)) if (event.job.status === 'running') break;
    const exited = new Promise<number | null>((resolve) => worker.child.once('exit', resolve));
    worker.child.kill('SIGTERM');
    // Submitted after the SIGTERM: the stopping worker must not take it.
    const { id: late } = await client.submit(body);
    assert.equal(await exited, 0);
    assert.equal((await findJob(ctx.database.db, late))?.status, 'queued');
    // The rest of both jobs (storing, the job table) goes to the next worker.
    await startWorker(ctx);
    for (const job of [id, late]) {
      assert.equal((await collect(client.watch(job))).at(-1)?.job.status, 'succeeded');
    }
    assert.equal(
      (await findJob(ctx.database.db, id))?.attempts,
      1,
      'the call in flight finished, not retried',
    );
    assert.deepEqual(await providerCallWorkers(id), [`${worker.child.pid}@${hostname()}`]);
  });

  test('an API closing ends sockets with 1001 and event streams cleanly; clients resume by seq', async () => {
    await startWorker(ctx);
    const api = await startApi(ctx);
    const port = Number(new URL(api.url).port);
    const client = createKilnClient({ baseUrl: api.url, apiKey: ctx.apiKey, pollIntervalMs: 200 });
    const { id } = await client.submit(body);
    const socket = new WebSocket(`${api.url.replace(/^http/, 'ws')}/v1/stream`, {
      headers: { Authorization: `Bearer ${ctx.apiKey}` },
    });
    const socketClosed = new Promise<number>((resolve) => socket.once('close', resolve));
    await new Promise((resolve) => socket.once('open', resolve));
    const events: JobEvent[] = [];
    let closeApi: (closed: Promise<void>) => void = () => undefined;
    // Resolved with close()'s own promise, so awaiting it waits for the close to finish.
    const apiClosed = new Promise<void>((resolve) => (closeApi = resolve));
    const watching = (async () => {
      for await (const event of client.watch(id)) {
        events.push(event);
        if (event.job.status === 'running' && events.length === 2) closeApi(api.close());
      }
    })();
    // close() resolves only once the event stream it serves has ended: nothing holds the API open.
    await apiClosed;
    assert.equal(await socketClosed, 1001);
    assert.equal((await findJob(ctx.database.db, id))?.status, 'running', 'closed mid-job');
    // The same address comes back, as a restarted process would.
    await startApi(ctx, { port });
    await watching;
    assert.equal(events.at(-1)?.job.status, 'succeeded');
    assert.deepEqual(
      events.map((event) => event.seq),
      await recordedSeqs(id),
    );
  });
});
