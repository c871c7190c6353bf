import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { markPurged } from '../src/db/retention-repository.js';
import { ensureWebhookSecret } from '../src/db/webhook-secret-repository.js';
import { cacheFingerprint, requestFingerprint } from '../src/jobs/job-identity.js';
import type { GenerationRequest, Job } from '../src/jobs/job.js';
import { metricsRegistry } from '../src/observability/metrics.js';
import { resultKeyFor } from '../src/storage/job-object-keys.js';
import { startWebhookReceiver, type FakeWebhookReceiver } from './fakes/webhook-receiver.js';
import { balanceProblems, jobLedgerProblems } from './harness/fault-checks.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

/*
 * The result cache end to end: the API, a worker and a real Temporal, with the fake OpenAI server whose
 * `requests` count the provider calls. Jobs cost 5 credits; one the cache serves costs 1.
 */

const COST = 5;
const CACHE_PRICE = 1;

let stack: OpenAIStack;
let receiver: FakeWebhookReceiver;

before(async () => {
  receiver = await startWebhookReceiver();
  stack = await startOpenAIStack({
    WEBHOOK_ALLOW_PRIVATE: 'true',
    JOB_COSTS: JSON.stringify({ openai: COST }),
    RESULT_CACHE_PRICE: String(CACHE_PRICE),
    PLANS: JSON.stringify({ free: { maxRunning: 8, weight: 1 } }),
    PROVIDER_BACKOFF_INITIAL_MS: '200',
    PROVIDER_BACKOFF_MAX_MS: '400',
  });
  stack.provider.setBehaviour({ kind: 'ok', delayMs: 1500 });
});
after(async () => {
  await stack?.stop();
  await receiver?.close();
});

async function newUser(): Promise<ApiTarget & { userId: string }> {
  return { url: stack.api.url, ...(await stack.ctx.createUser({ credits: 100 })) };
}

function requestFor(prompt: string, extra: object = {}) {
  return { kind: 'image', prompt, provider: 'openai', model: 'dall-e-2', cache: 'reuse', ...extra };
}

async function submitted(api: ApiTarget, body: object): Promise<string> {
  const response = await submit(api, body, randomUUID());
  assert.equal(response.status, 202, JSON.stringify(response.body));
  return String(response.body.id);
}

async function doneAll(api: ApiTarget, ids: string[]): Promise<Job[]> {
  return Promise.all(ids.map((id) => pollUntilDone(api, id, 60_000)));
}

/** Resolves once the provider has received `count` requests for `prompt`. */
async function providerCalled(prompt: string, count = 1): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (stack.provider.countRequests(prompt) < count) {
    if (Date.now() > deadline) throw new Error(`the provider never got ${count} requests for ${prompt}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitFor(done: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('not done in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function ledgerIsExact(jobs: Job[]): Promise<void> {
  const { db } = stack.ctx.database;
  assert.deepEqual(await jobLedgerProblems(db, jobs, undefined, CACHE_PRICE), []);
  assert.deepEqual(await balanceProblems(db), []);
}

async function callsSaved(outcome: string): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric('kiln_cache_calls_saved_total')?.get();
  return metric?.values.filter((v) => v.labels.outcome === outcome).reduce((sum, v) => sum + v.value, 0) ?? 0;
}

async function statusEvents(jobId: string): Promise<unknown[]> {
  const rows = await stack.ctx.database.db
    .selectFrom('job_events')
    .select('data')
    .where('job_id', '=', jobId)
    .where('type', '=', 'status')
    .orderBy('seq')
    .execute();
  return rows.map((row) => (row.data as { status: string }).status);
}

describe('identical requests are made once', () => {
  test('concurrent duplicates make one provider call; each job ends with the result, its events, the cache price', async () => {
    const api = await newUser();
    const prompt = `duplicates ${randomUUID()}`;
    const joinedBefore = await callsSaved('joined');
    receiver.setSecret((await ensureWebhookSecret(stack.ctx.database.db, api.userId)).secret);
    const hooks = [1, 2, 3].map(() => randomUUID());
    const ids = await Promise.all(
      hooks.map((hook) =>
        submitted(
          api,
          requestFor(prompt, { webhook: { url: receiver.endpoint(hook), events: ['succeeded'] } }),
        ),
      ),
    );
    const jobs = await doneAll(api, ids);
    assert.deepEqual(
      jobs.map((job) => job.status),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    assert.equal(stack.provider.countRequests(prompt), 1, 'one provider call');
    const outcomes = jobs.map((job) => job.cacheOutcome).sort();
    assert.deepEqual(outcomes, ['joined', 'joined', null]);
    assert.equal(new Set(jobs.map((job) => job.result?.sha256)).size, 1, 'the same result');
    for (const job of jobs) {
      assert.equal(job.servedBy.provider, 'openai');
      const content = await apiFetch(api, `/v1/generations/${job.id}/content`);
      assert.equal(content.status, 200);
      assert.deepEqual(await statusEvents(job.id), ['queued', 'running', 'storing', 'succeeded']);
      assert.ok(await stack.ctx.store.stat(resultKeyFor(job.id)), 'each job has its own result object');
    }
    assert.equal((await callsSaved('joined')) - joinedBefore, 2);
    // Each job's own webhook says it succeeded, and how.
    await waitFor(() => hooks.every((hook) => receiver.received(hook).length > 0));
    for (const [index, hook] of hooks.entries()) {
      const [delivery] = receiver.received(hook);
      assert.equal(delivery?.verified, true);
      assert.equal(delivery?.payload?.data.id, ids[index]);
      assert.equal(delivery?.payload?.data.cacheOutcome, jobs[index]!.cacheOutcome);
    }
    await ledgerIsExact(jobs);
  });

  test('an identical request after one succeeded is served from its result at once, without a call', async () => {
    const api = await newUser();
    const prompt = `reuse ${randomUUID()}`;
    const [first] = await doneAll(api, [await submitted(api, requestFor(prompt))]);
    const [again] = await doneAll(api, [await submitted(api, requestFor(`  ${prompt}  `))]);
    assert.equal(again!.status, 'succeeded');
    assert.equal(again!.cacheOutcome, 'reused');
    assert.equal(again!.attempts, 0);
    assert.equal(again!.result?.sha256, first!.result?.sha256);
    assert.equal(stack.provider.countRequests(prompt), 1);
    // Without `cache: "reuse"` (and a plan that does not reuse), the same request calls the provider.
    const [own] = await doneAll(api, [await submitted(api, requestFor(prompt, { cache: 'off' }))]);
    assert.equal(own!.cacheOutcome, null);
    assert.equal(stack.provider.countRequests(prompt), 2);
    await ledgerIsExact([first!, again!, own!]);
  });

  test("at user scope, another user's identical request is not served by this user's job", async () => {
    const [alice, bob] = [await newUser(), await newUser()];
    const prompt = `users ${randomUUID()}`;
    const [mine] = await doneAll(alice, [await submitted(alice, requestFor(prompt))]);
    const [theirs] = await doneAll(bob, [await submitted(bob, requestFor(prompt))]);
    assert.equal(theirs!.cacheOutcome, null);
    assert.equal(stack.provider.countRequests(prompt), 2);
    await ledgerIsExact([mine!, theirs!]);
  });

  test('a purged result is not reused: the next identical request calls the provider', async () => {
    const api = await newUser();
    const prompt = `purged ${randomUUID()}`;
    const [first] = await doneAll(api, [await submitted(api, requestFor(prompt))]);
    await stack.ctx.store.delete(resultKeyFor(first!.id));
    await markPurged(stack.ctx.database.db, [first!.id]);
    const [next] = await doneAll(api, [await submitted(api, requestFor(prompt))]);
    assert.equal(next!.status, 'succeeded');
    assert.equal(next!.cacheOutcome, null);
    assert.equal(stack.provider.countRequests(prompt), 2);
    // And the job that called again serves the one after it.
    const [third] = await doneAll(api, [await submitted(api, requestFor(prompt))]);
    assert.equal(third!.cacheOutcome, 'reused');
    assert.equal(stack.provider.countRequests(prompt), 2);
  });

  test('a canceled leader strands no follower: one of them calls, the other joins it', async () => {
    const api = await newUser();
    const prompt = `canceled leader ${randomUUID()}`;
    stack.provider.queueBehaviour({ kind: 'hang' }, 1);
    const leader = await submitted(api, requestFor(prompt));
    await providerCalled(prompt);
    const followers = await Promise.all([1, 2].map(() => submitted(api, requestFor(prompt))));
    // While the leader's call runs, each follower says whom it waits on.
    for (const id of followers) {
      const deadline = Date.now() + 10_000;
      let job = await getJob(api, id);
      // The row is read before the workflow is asked why it waits: the two may tell moments apart.
      while ((job.waiting?.reason !== 'identical_job' || !job.cacheOutcome) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        job = await getJob(api, id);
      }
      assert.equal(job.status, 'queued');
      assert.equal(job.waiting?.reason, 'identical_job');
      assert.equal(job.cacheOutcome, 'joined');
    }
    const canceled = await apiFetch(api, `/v1/generations/${leader}/cancel`, { method: 'POST' });
    assert.equal(canceled.status, 202);
    const [ended, ...served] = await doneAll(api, [leader, ...followers]);
    assert.equal(ended!.status, 'canceled');
    assert.deepEqual(
      served.map((job) => job.status),
      ['succeeded', 'succeeded'],
    );
    assert.deepEqual(served.map((job) => job.cacheOutcome).sort(), ['joined', null]);
    assert.equal(stack.provider.countRequests(prompt), 2, 'the hung call, then one more');
    await ledgerIsExact([ended!, ...served]);
  });

  test("a leader refused for the request's own fault fails its followers the same way, without another call", async () => {
    const api = await newUser();
    const prompt = `refused ${randomUUID()}`;
    stack.provider.queueBehaviour({ kind: 'content_policy', delayMs: 1500 }, 1);
    const leader = await submitted(api, requestFor(prompt));
    await providerCalled(prompt);
    const follower = await submitted(api, requestFor(prompt));
    const jobs = await doneAll(api, [leader, follower]);
    assert.deepEqual(
      jobs.map((job) => [job.status, job.failure?.code]),
      [
        ['failed', 'content_policy'],
        ['failed', 'content_policy'],
      ],
    );
    assert.equal(jobs[1]!.cacheOutcome, 'joined');
    assert.equal(stack.provider.countRequests(prompt), 1);
    await ledgerIsExact(jobs);
  });

  test('a leader that fails strands no follower: it takes over and calls itself', async () => {
    const api = await newUser();
    const prompt = `failed leader ${randomUUID()}`;
    stack.provider.queueBehaviour({ kind: 'hang' }, 1);
    // The leader's finish deadline fails it mid-call; its deadline is no part of what the request asks.
    const leader = await submitted(api, requestFor(prompt, { deadline: { finishWithinSeconds: 3 } }));
    await providerCalled(prompt);
    const follower = await submitted(api, requestFor(prompt));
    const [failed, served] = await doneAll(api, [leader, follower]);
    assert.equal(failed!.status, 'failed');
    assert.equal(failed!.failure?.code, 'deadline_exceeded');
    assert.equal(served!.status, 'succeeded');
    assert.equal(served!.cacheOutcome, null);
    assert.equal(stack.provider.countRequests(prompt), 2);
    await ledgerIsExact([failed!, served!]);
  });
});

describe('at deployment scope', () => {
  test("another user's identical request is served by the result this user's job made, each charged their own", async () => {
    const shared = await startOpenAIStack({
      JOB_COSTS: JSON.stringify({ openai: COST }),
      RESULT_CACHE_SCOPE: 'deployment',
    });
    try {
      const users = await Promise.all(
        [1, 2].map(async () => ({ url: shared.api.url, ...(await shared.ctx.createUser({ credits: 100 })) })),
      );
      const prompt = `deployment ${randomUUID()}`;
      const first = await pollUntilDone(users[0]!, await submittedTo(users[0]!, prompt));
      const second = await pollUntilDone(users[1]!, await submittedTo(users[1]!, prompt));
      assert.equal(second.status, 'succeeded');
      assert.equal(second.cacheOutcome, 'reused');
      assert.equal(second.result?.sha256, first.result?.sha256);
      assert.equal(shared.provider.countRequests(prompt), 1);
      const { db } = shared.ctx.database;
      assert.deepEqual(await jobLedgerProblems(db, [first, second], undefined, 0), []);
      assert.deepEqual(await balanceProblems(db), []);
    } finally {
      await shared.stop();
    }
  });
});

async function submittedTo(api: ApiTarget, prompt: string): Promise<string> {
  return submitted(api, requestFor(prompt));
}

describe('what names a request for the cache', () => {
  const request: GenerationRequest = {
    kind: 'image',
    prompt: 'Caf\u00e9 at dusk',
    provider: 'openai',
    model: 'dall-e-2',
    size: '256x256',
    maxTokens: null,
  };

  test('its delivery is no part of it, and the same text typed two ways is one prompt', () => {
    const delivered = {
      ...request,
      prompt: 'Cafe\u0301 at dusk',
      deadline: { finishWithinSeconds: 30 },
      webhook: { url: 'https://example.com/hook', events: ['succeeded' as const] },
      cache: 'reuse' as const,
    };
    assert.equal(cacheFingerprint(delivered), cacheFingerprint(request));
    assert.notEqual(cacheFingerprint({ ...request, size: '512x512' }), cacheFingerprint(request));
    assert.notEqual(cacheFingerprint({ ...request, fallback: false }), cacheFingerprint(request));
  });

  test('the idempotency fingerprint of a request that says nothing of cache is the one it had', () => {
    // The value requestFingerprint gave this request before `cache` existed (at a8c50e5).
    const before = '3705ffb6f182fcfad7103d211ecfaaa76320fb0ffcf88a2045094c23c02437af';
    assert.equal(requestFingerprint(request), before);
    assert.notEqual(requestFingerprint({ ...request, cache: 'reuse' }), before);
  });
});
