import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../src/jobs/job.js';
import { providerAuthFailures } from '../src/observability/metrics.js';
import type { FakeImagesBehaviour, FakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import {
  apiFetch,
  getJob,
  openStream,
  pollUntilDone,
  submit,
  type ApiTarget,
} from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

const MAX_CALLS = 4;
const MAX_INVALID_OUTPUTS = 2;

describe('provider failures are classified once and retried by their class', () => {
  let provider: FakeOpenAIImagesServer;
  let api: ApiTarget;
  let stack: OpenAIStack;

  before(async () => {
    stack = await startOpenAIStack({
      DEFAULT_PROVIDER: 'openai',
      PROVIDER_MAX_CALLS: String(MAX_CALLS),
      PROVIDER_MAX_INVALID_OUTPUTS: String(MAX_INVALID_OUTPUTS),
      PROVIDER_BACKOFF_INITIAL_MS: '100',
      PROVIDER_BACKOFF_MAX_MS: '400',
      // These tests are about one job's retries; the shared breaker has its own test.
      BREAKER_FAILURE_THRESHOLD: '1000',
    });
    ({ provider, api } = stack);
  });
  after(() => stack.stop());

  /** Runs one job whose first provider answers are `answers`, then whatever the fake does by default. */
  async function jobAfter(
    answers: FakeImagesBehaviour[],
    extra: object = {},
  ): Promise<{ job: Job; calls: number[] }> {
    const prompt = `failures ${randomUUID()}`;
    for (const answer of answers) provider.queueBehaviour(answer);
    const body = { kind: 'image', prompt, model: 'dall-e-2', params: { size: '256x256' }, ...extra };
    const accepted = await submit(api, body, randomUUID());
    assert.equal(accepted.status, 202);
    const job = await pollUntilDone(api, String(accepted.body.id));
    const calls = provider.requests.flatMap((r, i) => (r.prompt === prompt ? [i] : []));
    return { job, calls };
  }

  test('a content-policy refusal fails at once with a stable code and is not retried', async () => {
    const { job, calls } = await jobAfter([{ kind: 'content_policy' }]);
    assert.equal(job.status, 'failed');
    assert.equal(job.failure?.code, 'content_policy');
    assert.equal(calls.length, 1);
  });

  test('an invalid request is not retried', async () => {
    const { job, calls } = await jobAfter([{ kind: 'bad_request' }]);
    assert.deepEqual([job.status, job.failure?.code, calls.length], ['failed', 'invalid_request', 1]);
  });

  test('5xx and connection resets are retried with backoff until the provider answers', async () => {
    const { job, calls } = await jobAfter([
      { kind: 'server_error' },
      { kind: 'reset' },
      { kind: 'server_error', status: 503 },
    ]);
    assert.equal(job.status, 'succeeded');
    assert.equal(calls.length, 4);
    assert.equal(job.attempts, 4);
  });

  test('a provider failing every call fails the job after the configured number of calls', async () => {
    const failures = Array.from({ length: MAX_CALLS }, () => ({ kind: 'server_error' }) as const);
    const { job, calls } = await jobAfter(failures);
    assert.equal(job.status, 'failed');
    assert.equal(job.failure?.code, 'provider_unavailable');
    assert.equal(calls.length, MAX_CALLS);
  });

  test("a 429 is retried after the provider's Retry-After, not before", async () => {
    const started = Date.now();
    const { job, calls } = await jobAfter([{ kind: 'rate_limited', retryAfterSeconds: 2 }]);
    assert.equal(job.status, 'succeeded');
    assert.equal(calls.length, 2);
    assert.ok(Date.now() - started >= 2000, 'the retry waited for Retry-After');
  });

  test('an output of the wrong size is regenerated a bounded number of times, then fails invalid_output', async () => {
    const bad = Array.from({ length: MAX_INVALID_OUTPUTS + 1 }, () => ({ kind: 'wrong_size' }) as const);
    const { job, calls } = await jobAfter(bad);
    assert.equal(job.status, 'failed');
    assert.equal(job.failure?.code, 'invalid_output');
    assert.equal(calls.length, MAX_INVALID_OUTPUTS + 1);
    assert.equal(job.result, null);
  });

  test('one bad output then a good one succeeds', async () => {
    const { job, calls } = await jobAfter([{ kind: 'wrong_size' }]);
    assert.deepEqual([job.status, calls.length], ['succeeded', 2]);
  });

  test('a job past its finish deadline is canceled at the provider and fails deadline_exceeded', async () => {
    const { job, calls } = await jobAfter([{ kind: 'hang' }], { deadline: { finishWithinSeconds: 2 } });
    assert.equal(job.status, 'failed');
    assert.equal(job.failure?.code, 'deadline_exceeded');
    assert.equal(calls.length, 1);
    assert.equal(provider.openRequests(), 0, 'the hanging provider request was aborted');
  });

  test('cancel aborts the in-flight provider request and ends the job canceled; a finished job gets 409', async () => {
    const prompt = `cancel ${randomUUID()}`;
    provider.queueBehaviour({ kind: 'hang' });
    const body = { kind: 'image', prompt, model: 'dall-e-2', params: { size: '256x256' } };
    const id = String((await submit(api, body, randomUUID())).body.id);
    await waitFor(async () => (await getJob(api, id)).status === 'running');
    const canceled = await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' });
    assert.equal(canceled.status, 202);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'canceled');
    assert.equal(provider.openRequests(), 0, 'the provider request was aborted');
    const again = await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' });
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'job_finished');
  });

  test('cancel over the socket works the same way', async () => {
    provider.queueBehaviour({ kind: 'hang' });
    const body = {
      kind: 'image',
      prompt: `ws cancel ${randomUUID()}`,
      model: 'dall-e-2',
      params: { size: '256x256' },
    };
    const id = String((await submit(api, body, randomUUID())).body.id);
    await waitFor(async () => (await getJob(api, id)).status === 'running');
    const { socket, messages } = await openStream(api);
    socket.send(JSON.stringify({ type: 'cancel', id }));
    await waitFor(async () => Promise.resolve(messages.length > 0));
    assert.deepEqual(messages[0], { type: 'canceling', id });
    assert.equal((await pollUntilDone(api, id)).status, 'canceled');
    socket.send(JSON.stringify({ type: 'cancel', id }));
    await waitFor(async () => Promise.resolve(messages.length > 1));
    socket.close();
    assert.equal(messages[1]?.type === 'error' && messages[1].error.code, 'job_finished');
  });
});

describe('a provider that rejects our credentials', () => {
  test('fails the job at once with code authentication, counted for the operator', async () => {
    // The fake checks the bearer key, and this deployment's key is not the one it expects.
    const stack = await startOpenAIStack({ OPENAI_API_KEY: 'sk-revoked', DEFAULT_PROVIDER: 'openai' });
    const { provider, api } = stack;
    try {
      const before = await authFailuresCounted();
      const body = {
        kind: 'image',
        prompt: `auth ${randomUUID()}`,
        model: 'dall-e-2',
        params: { size: '256x256' },
      };
      const job = await pollUntilDone(api, String((await submit(api, body, randomUUID())).body.id));
      assert.deepEqual(
        [job.status, job.failure?.code, provider.requests.length],
        ['failed', 'authentication', 1],
      );
      assert.equal(await authFailuresCounted(), before + 1);
    } finally {
      await stack.stop();
    }
  });
});

async function authFailuresCounted(): Promise<number> {
  const metric = await providerAuthFailures.get();
  return metric.values.find((value) => value.labels.provider === 'openai')?.value ?? 0;
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
