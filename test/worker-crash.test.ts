import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { startFakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import { pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { spawnWorkerProcess, startApi } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const HEARTBEAT_TIMEOUT_SECONDS = 3;
const ATTEMPT_TIMEOUT_SECONDS = 120;

let provider: Awaited<ReturnType<typeof startFakeOpenAIImagesServer>>;
let ctx: TestContext;
let api: ApiTarget;

before(async () => {
  provider = await startFakeOpenAIImagesServer();
  ctx = await createTestContext({
    OPENAI_API_KEY: provider.apiKey,
    OPENAI_BASE_URL: provider.url,
    DEFAULT_PROVIDER: 'openai',
    PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: String(HEARTBEAT_TIMEOUT_SECONDS),
    PROVIDER_ATTEMPT_TIMEOUT_SECONDS: String(ATTEMPT_TIMEOUT_SECONDS),
  });
  api = await startApi(ctx);
});
after(async () => {
  await ctx.cleanup();
  await provider.close();
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
});
