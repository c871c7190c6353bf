import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { findJob } from '../src/db/job-repository.js';
import { startFakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import { startFakeReplicateServer } from './fakes/replicate-server.js';
import { pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { spawnWorkerProcess, startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const HEARTBEAT_TIMEOUT_SECONDS = 3;
const ATTEMPT_TIMEOUT_SECONDS = 120;

let provider: Awaited<ReturnType<typeof startFakeOpenAIImagesServer>>;
let replicate: Awaited<ReturnType<typeof startFakeReplicateServer>>;
let ctx: TestContext;
let api: ApiTarget;

before(async () => {
  provider = await startFakeOpenAIImagesServer();
  replicate = await startFakeReplicateServer();
  ctx = await createTestContext({
    OPENAI_API_KEY: provider.apiKey,
    OPENAI_BASE_URL: provider.url,
    REPLICATE_API_TOKEN: replicate.apiToken,
    REPLICATE_BASE_URL: replicate.url,
    REPLICATE_POLL_INTERVAL_MS: '200',
    DEFAULT_PROVIDER: 'openai',
    PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: String(HEARTBEAT_TIMEOUT_SECONDS),
    PROVIDER_ATTEMPT_TIMEOUT_SECONDS: String(ATTEMPT_TIMEOUT_SECONDS),
  });
  api = await startApi(ctx);
});
after(async () => {
  await ctx.cleanup();
  await provider.close();
  await replicate.close();
});

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a worker killed during the provider call is replaced and the job still succeeds', async () => {
  // The first call outlives the worker; the retry answers at once.
  provider.queueBehaviour({ kind: 'ok', delayMs: 60_000 });
  const first = spawnWorkerProcess(ctx);
  await first.ready;

  const accepted = await submit(
    api,
    { kind: 'image', prompt: `crash ${randomUUID()}`, model: 'dall-e-2', params: { size: '256x256' } },
    randomUUID(),
  );
  assert.equal(accepted.status, 202);
  await waitFor(() => provider.requests.length === 1, 30_000);

  first.child.kill('SIGKILL');
  const killedAt = Date.now();
  const second = spawnWorkerProcess(ctx);
  await second.ready;

  const job = await pollUntilDone(api, String(accepted.body.id), 60_000);
  const retriedAfterMs = Date.now() - killedAt;
  assert.equal(job.status, 'succeeded');
  assert.equal(job.attempts, 2);
  assert.equal(provider.requests.length, 2, 'one lost call, one retry');
  // Without heartbeats the retry would wait for the 120 s attempt timeout; the 3 s heartbeat timeout
  // (plus the 1 s retry interval and a worker start) is what brings it back this soon.
  assert.ok(
    retriedAfterMs < (ATTEMPT_TIMEOUT_SECONDS / 4) * 1000,
    `retried ${retriedAfterMs} ms after the kill: the heartbeat timeout did not decide`,
  );
  await second.stop();
});

test('a worker killed while polling a submitted task resumes it: one submit, one paid generation', async () => {
  replicate.setDurationMs(8000);
  const first = spawnWorkerProcess(ctx);
  await first.ready;
  const body = {
    kind: 'image',
    prompt: `resume ${randomUUID()}`,
    provider: 'replicate',
    params: { size: '256x256' },
  };
  const accepted = await submit(api, body, randomUUID());
  const id = String(accepted.body.id);
  // Killed only once the task id is durable: that is the window the resume logic exists for.
  await waitForAsync(async () => Boolean((await findJob(ctx.database.db, id))?.provider_task_id), 30_000);
  await waitFor(() => replicate.polls() > 2, 30_000);

  first.child.kill('SIGKILL');
  const second = spawnWorkerProcess(ctx);
  await second.ready;

  const job = await pollUntilDone(api, id, 60_000);
  assert.equal(job.status, 'succeeded');
  assert.equal(replicate.submits(), 1, 'the retried attempt resumed the task instead of submitting again');
  assert.equal(job.attempts, 1);
  assert.equal(
    (await findJob(ctx.database.db, id))?.provider_task_id,
    null,
    'the task id is cleared once done',
  );
  await second.stop();
});

async function waitForAsync(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a poll that fails while the task runs is followed by a resume of that task, not a second submit', async () => {
  replicate.setDurationMs(3000);
  const worker = spawnWorkerProcess(ctx);
  await worker.ready;
  const body = {
    kind: 'image',
    prompt: `poll ${randomUUID()}`,
    provider: 'replicate',
    params: { size: '256x256' },
  };
  const submitsBefore = replicate.submits();
  const accepted = await submit(api, body, randomUUID());
  const id = String(accepted.body.id);
  await waitForAsync(async () => Boolean((await findJob(ctx.database.db, id))?.provider_task_id), 30_000);
  // The call fails on the poll (provider_unavailable, retryable); the prediction itself runs on.
  replicate.failPolls(1);

  const job = await pollUntilDone(api, id, 60_000);
  assert.equal(job.status, 'succeeded');
  assert.equal(replicate.submits() - submitsBefore, 1, 'the next call resumed the running prediction');
  await worker.stop();
});
