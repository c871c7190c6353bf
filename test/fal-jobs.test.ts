import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PNG } from 'pngjs';
import { findJob } from '../src/db/job-repository.js';
import type { Job } from '../src/jobs/job.js';
import { startFakeFalServer, type FakeFalServer } from './fakes/fal-queue-server.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { spawnWorkerProcess, startApi, type WorkerProcess } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const RUNNING_MS = 300;

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}

describe('fal jobs through the API, the workflow and a worker process', () => {
  let fal: FakeFalServer;
  let ctx: TestContext;
  let api: ApiTarget;
  let worker: WorkerProcess;

  before(async () => {
    fal = await startFakeFalServer();
    ctx = await createTestContext({
      FAL_KEY: fal.apiKey,
      FAL_BASE_URL: fal.url,
      FAL_POLL_INTERVAL_MS: '100',
      FAL_IMAGE_URLS_ALLOW_PRIVATE: 'true',
      PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: '3',
    });
    api = await startApi(ctx);
    worker = spawnWorkerProcess(ctx);
    await worker.ready;
  });
  beforeEach(() => fal.setTiming({ queuedMs: 0, runningMs: RUNNING_MS, ahead: 0 }));
  after(async () => {
    await ctx.cleanup();
    await fal.close();
  });

  const submitJob = async (size = '512x512') => {
    const body = { kind: 'image', prompt: `fal ${randomUUID()}`, provider: 'fal', params: { size } };
    const accepted = await submit(api, body, randomUUID());
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    return String(accepted.body.id);
  };
  const taskIdOf = async (id: string) => (await findJob(ctx.database.db, id))?.provider_task_id ?? undefined;

  test('a job waits in fal’s queue, its position told as the job’s wait, and ends with the PNG', async () => {
    fal.setTiming({ queuedMs: 600, ahead: 3 });
    const submits = fal.submits();
    const job = await pollUntilDone(api, await submitJob());
    assert.deepEqual([job.status, job.model, job.attempts], ['succeeded', 'fal-ai/flux/schnell', 1]);
    assert.equal(fal.submits(), submits + 1);
    const content = await apiFetch(api, `/v1/generations/${job.id}/content`);
    const png = PNG.sync.read(Buffer.from(await content.arrayBuffer()));
    assert.deepEqual([png.width, png.height], [512, 512]);
    const logged = worker
      .output()
      .split('\n')
      .filter((line) => line.includes(job.id) && line.includes("waiting in the provider's queue"));
    assert.ok(
      logged.some((line) => line.includes('"queuePosition":3')),
      logged.join('\n'),
    );
    assert.equal(await taskIdOf(job.id), undefined, 'the request id is cleared once done');

    // Each position fal gave is a `waiting` event of the running job; the task's start ends the wait.
    const events = await ctx.database.db
      .selectFrom('job_events')
      .select(['type', 'data'])
      .where('job_id', '=', job.id)
      .orderBy('seq')
      .execute();
    const told = events.map(({ type, data }) => {
      const { status, waiting } = data as Job;
      return `${type} ${status} ${waiting ? `${waiting.reason}:${waiting.position}` : '-'}`;
    });
    const waits = told.filter((line) => line.startsWith('waiting'));
    assert.ok(waits.length >= 1, told.join('\n'));
    assert.equal(waits[0], 'waiting running provider_queue:3', told.join('\n'));
    assert.ok(told.at(-1)?.endsWith(' -'), 'the job waits for nothing once it ended');
    const lastWait = told.lastIndexOf(waits.at(-1)!);
    assert.ok(told[lastWait + 1]?.endsWith(' -'), `the next change ends the wait: ${told.join('\n')}`);
  });

  test('a submission replayed while fal queues the request is told fal’s position', async () => {
    fal.setTiming({ queuedMs: 4000, ahead: 5 });
    const body = {
      kind: 'image',
      prompt: `fal ${randomUUID()}`,
      provider: 'fal',
      params: { size: '512x512' },
    };
    const key = randomUUID();
    const first = await submit(api, body, key);
    const id = String(first.body.id);
    await waitFor(async () => (await findJob(ctx.database.db, id))?.waiting?.reason === 'provider_queue');
    const seen = (await getJob(api, id)).queue;
    assert.ok(seen && seen.queuePosition >= 1 && seen.queuePosition <= 5, `GET: ${JSON.stringify(seen)}`);
    const replayed = await submit(api, body, key);
    assert.equal(replayed.status, 202);
    const position = Number(replayed.body.queuePosition);
    assert.ok(position >= 1 && position <= 5, `queuePosition ${position}`);
    assert.ok(Number(replayed.body.estimatedWaitSeconds) > 0);
    assert.equal((await pollUntilDone(api, id)).status, 'succeeded');
  });

  test('the model’s refusal fails the job content_policy after one paid request', async () => {
    fal.queueBehaviour('content_policy');
    const submits = fal.submits();
    const job = await pollUntilDone(api, await submitJob());
    assert.deepEqual([job.status, job.failure?.code], ['failed', 'content_policy']);
    assert.match(job.failure?.message ?? '', /flagged by a content checker/);
    assert.equal(fal.submits(), submits + 1);
  });

  test('canceling the job cancels its request at fal', async () => {
    fal.setTiming({ runningMs: 20_000 });
    const id = await submitJob();
    await waitFor(async () => (await taskIdOf(id)) !== undefined);
    const requestId = await taskIdOf(id);
    const cancels = fal.cancels();
    assert.equal((await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' })).status, 202);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'canceled');
    assert.equal(fal.cancels(), cancels + 1);
    assert.equal(fal.requests().find((request) => request.id === requestId)?.canceled, true);
  });

  test('a worker killed while fal runs the request is replaced, and its successor polls that same request', async () => {
    fal.setTiming({ runningMs: 8_000 });
    const submits = fal.submits();
    const id = await submitJob();
    // Killed only once the request id is durable: the window resuming exists for.
    await waitFor(async () => (await taskIdOf(id)) !== undefined);
    const requestId = await taskIdOf(id);
    const polls = fal.polls();
    await waitFor(() => fal.polls() > polls + 2);

    worker.child.kill('SIGKILL');
    worker = spawnWorkerProcess(ctx);
    await worker.ready;

    const job = await pollUntilDone(api, id, 60_000);
    assert.deepEqual([job.status, job.attempts], ['succeeded', 1]);
    assert.equal(
      fal.submits(),
      submits + 1,
      'the retried attempt resumed the request instead of paying again',
    );
    assert.equal(fal.requests().find((request) => request.id === requestId)?.state, 'COMPLETED');
  });
});
