import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { FakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import { pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

const JOBS = 10;
const OUTAGE_MS = 60_000;
const THRESHOLD = 3;
const COOLDOWN_SECONDS = 10;

let provider: FakeOpenAIImagesServer;
let api: ApiTarget;
let stack: OpenAIStack;

before(async () => {
  stack = await startOpenAIStack({
    DEFAULT_PROVIDER: 'openai',
    BREAKER_FAILURE_THRESHOLD: String(THRESHOLD),
    BREAKER_COOLDOWN_SECONDS: String(COOLDOWN_SECONDS),
    PROVIDER_BACKOFF_INITIAL_MS: '500',
    PROVIDER_BACKOFF_MAX_MS: '2000',
    PROVIDER_RETRY_BUDGET_SECONDS: '300',
  });
  ({ provider, api } = stack);
});
after(() => stack.stop());

const body = (prompt: string, extra: object = {}) => ({
  kind: 'image',
  prompt,
  model: 'dall-e-2',
  params: { size: '256x256' },
  ...extra,
});

test('a 60 s provider outage costs a handful of calls, and every job succeeds after recovery', async () => {
  provider.setBehaviour({ kind: 'server_error', status: 503 });
  const outageStartedAt = Date.now();
  const ids = await Promise.all(
    Array.from({ length: JOBS }, async (_, i) =>
      String((await submit(api, body(`outage ${i}`), randomUUID())).body.id),
    ),
  );

  // While the circuit is open, a job that had to start soon expires without ever reaching the provider.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const hurriedPrompt = `hurried ${randomUUID()}`;
  const hurried = await submit(
    api,
    body(hurriedPrompt, { deadline: { startWithinSeconds: 2 } }),
    randomUUID(),
  );
  const expired = await pollUntilDone(api, String(hurried.body.id), 30_000);
  assert.equal(expired.status, 'expired');
  assert.equal(expired.attempts, 0);
  assert.equal(provider.countRequests(hurriedPrompt), 0, 'nothing was sent to the provider');

  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (Date.now() - outageStartedAt)));
  const callsDuringOutage = provider.requests.length;
  provider.setBehaviour({ kind: 'ok' });

  const jobs = await Promise.all(ids.map((id) => pollUntilDone(api, id, 120_000)));
  assert.deepEqual(
    jobs.map((job) => job.status),
    ids.map(() => 'succeeded'),
  );
  // Without the breaker each job would retry on its own: JOBS × PROVIDER_MAX_CALLS calls, and failures.
  // With it: the first wave (all jobs were in flight before the first failure came back), then one
  // probe per cool-down.
  const allowed = JOBS + Math.ceil(OUTAGE_MS / 1000 / COOLDOWN_SECONDS) + 2;
  assert.ok(callsDuringOutage <= allowed, `${callsDuringOutage} calls during the outage, allowed ${allowed}`);
  assert.ok(callsDuringOutage >= THRESHOLD, 'the breaker opened on real failures');
  console.log(`outage of ${OUTAGE_MS} ms with ${JOBS} jobs: ${callsDuringOutage} provider calls`);
});
