import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Job } from '../src/jobs/job.js';
import { creditsForUsage } from '../src/jobs/token-pricing.js';
import {
  startFakeOpenAIBatchServer,
  type FakeOpenAIBatchServer,
  type FakeOpenAIBatchServerOptions,
} from './fakes/openai-batch-server.js';
import {
  defaultReply,
  promptTokens,
  startFakeOpenAIChatServer,
  type FakeOpenAIChatServer,
} from './fakes/openai-chat-server.js';
import { balanceProblems } from './harness/fault-checks.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/*
 * The batch tier end to end: the API, a worker and a real Temporal, with a fake of OpenAI's Files and
 * Batch APIs in front of the chat fake (which takes the calls of jobs that moved to the standard tier).
 * The price table gives gpt-4o-mini a batch price half its standard one, in large credits per million
 * tokens so that a few tokens cost a few credits.
 */

const MODEL = 'gpt-4o-mini';
const STANDARD = { inputPerMillion: 200_000, outputPerMillion: 600_000 };
const BATCH = { inputPerMillion: 100_000, outputPerMillion: 300_000 };
const PRICES = { [`openai:${MODEL}`]: [{ since: '2026-01-01', ...STANDARD, batch: BATCH }] };

interface BatchStack {
  ctx: TestContext;
  api: ApiTarget;
  batches: FakeOpenAIBatchServer;
  chat: FakeOpenAIChatServer;
  stop(): Promise<void>;
}

async function startBatchStack(options: FakeOpenAIBatchServerOptions): Promise<BatchStack> {
  const chat = await startFakeOpenAIChatServer();
  const batches = await startFakeOpenAIBatchServer({ ...options, apiKey: chat.apiKey, forwardTo: chat.url });
  const ctx = await createTestContext({
    OPENAI_API_KEY: chat.apiKey,
    OPENAI_BASE_URL: batches.url,
    TEXT_TOKEN_PRICES: JSON.stringify(PRICES),
    BATCH_WINDOW_SECONDS: '2',
    BATCH_POLL_SECONDS: '0.3',
    PLANS: JSON.stringify({ free: { maxRunning: 8, weight: 1 } }),
  });
  await startWorker(ctx);
  const api = await startApi(ctx);
  return {
    ctx,
    api: { url: api.url, ...(await ctx.createUser({ credits: 10_000 })) },
    batches,
    chat,
    stop: async () => {
      await ctx.cleanup();
      await batches.close();
      await chat.close();
    },
  };
}

function batchRequest(prompt: string, extra: object = {}) {
  return {
    kind: 'text',
    prompt,
    provider: 'openai',
    model: MODEL,
    tier: 'batch',
    params: { maxTokens: 50 },
    ...extra,
  };
}

async function submitted(api: ApiTarget, body: object): Promise<string> {
  const response = await submit(api, body, randomUUID());
  assert.equal(response.status, 202, JSON.stringify(response.body));
  return String(response.body.id);
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The job's credits as the ledger has them: what it was charged of its reservation. */
function settled(job: Job): number | null | undefined {
  return job.credits?.settled;
}

function batchPriceOf(job: Job): number {
  assert.ok(job.usage, `job ${job.id} has its usage`);
  return creditsForUsage({ since: '2026-01-01', ...BATCH }, job.usage);
}

function linesOf(stack: BatchStack): string[] {
  return stack.batches.filesUploaded.flatMap((file) =>
    file.content
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { custom_id: string }).custom_id),
  );
}

async function eventTypes(stack: BatchStack, jobId: string): Promise<string[]> {
  const rows = await stack.ctx.database.db
    .selectFrom('job_events')
    .select('type')
    .where('job_id', '=', jobId)
    .orderBy('seq')
    .execute();
  return rows.map((row) => row.type);
}

describe('the batch tier', () => {
  let stack: BatchStack;
  before(async () => {
    stack = await startBatchStack({
      lineMs: 300,
      lineBehaviour: (body) =>
        body.messages[0]?.content.startsWith('refuse')
          ? { status: 400, message: 'Invalid max_completion_tokens.' }
          : 'ok',
    });
  });
  after(async () => stack?.stop());

  test('jobs are pooled into one provider batch, each ends with its own text, charged the batch price', async () => {
    const { api, batches } = stack;
    // The create's answer is lost once: the retried activity finds the batch by its metadata.
    batches.dropResponse('create_batch', 1);
    const created = batches.batchesCreated.length;
    const prompts = [1, 2, 3].map((n) => `pooled ${n} ${randomUUID()}`);
    const ids = await Promise.all(prompts.map((prompt) => submitted(api, batchRequest(prompt))));
    const jobs = await Promise.all(ids.map((id) => pollUntilDone(api, id, 60_000)));
    assert.deepEqual(
      jobs.map((job) => job.status),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    assert.equal(batches.batchesCreated.length, created + 1, 'one provider batch for the three');
    assert.equal(stack.chat.requests.length, 0, 'no standard call');
    for (const [index, job] of jobs.entries()) {
      assert.equal(job.tier, 'batch');
      assert.equal(job.usage?.estimated, false);
      assert.equal(settled(job), batchPriceOf(job), 'charged the batch price of its usage');
      const text = await apiFetch(api, `/v1/generations/${job.id}/content`).then((res) => res.text());
      assert.equal(text, stack.chat.replyFor(prompts[index]!));
    }
    assert.deepEqual(await balanceProblems(stack.ctx.database.db), []);
  });

  test("a line the provider refuses fails its job, refunded; the batch's others succeed", async () => {
    const { api } = stack;
    const refused = await submitted(api, batchRequest(`refuse ${randomUUID()}`));
    const fine = await submitted(api, batchRequest(`fine ${randomUUID()}`));
    const [bad, good] = await Promise.all([pollUntilDone(api, refused), pollUntilDone(api, fine)]);
    assert.equal(bad.status, 'failed');
    assert.equal(bad.failure?.code, 'invalid_request');
    assert.equal(settled(bad), 0, 'a refused line is not billed');
    assert.equal(good.status, 'succeeded');
  });

  test('a job canceled before its batch is sealed leaves it: no line, nothing charged', async () => {
    const { api } = stack;
    const id = await submitted(api, batchRequest(`leaves ${randomUUID()}`));
    await until(
      () => getJob(api, id),
      (job) => job.waiting?.reason === 'provider_batch',
      'the batch wait',
    );
    const cancel = await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' });
    assert.ok(cancel.status < 300, `cancel answered ${cancel.status}`);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'canceled');
    assert.equal(settled(job), 0);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.ok(!linesOf(stack).includes(id), 'its line was never uploaded');
  });

  test('a job canceled after its batch was sent ends canceled when the batch settles, charged what its line was billed', async () => {
    const { api, batches } = stack;
    const prompts = [1, 2, 3, 4].map((n) => `late cancel ${n} ${randomUUID()}`);
    const ids = await Promise.all(prompts.map((prompt) => submitted(api, batchRequest(prompt))));
    const last = ids[3]!;
    await until(
      () => getJob(api, last),
      (job) => job.status === 'running',
      'its batch sent',
    );
    await apiFetch(api, `/v1/generations/${last}/cancel`, { method: 'POST' });
    const job = await pollUntilDone(api, last);
    assert.equal(job.status, 'canceled');
    assert.ok(batches.linesRun.includes(last), 'the provider ran its line');
    const prompt = prompts[3]!;
    const billed = {
      inputTokens: promptTokens({ model: MODEL, messages: [{ role: 'user', content: prompt }] }),
      outputTokens: defaultReply(prompt).length,
    };
    assert.equal(settled(job), creditsForUsage({ since: '', ...BATCH }, billed), 'charged its billed line');
    const others = await Promise.all(ids.slice(0, 3).map((id) => pollUntilDone(api, id)));
    assert.deepEqual(
      others.map((other) => other.status),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    assert.deepEqual(await balanceProblems(stack.ctx.database.db), []);
  });

  test('a finish deadline nearer than a batch may take runs the job in the standard tier, or fails it', async () => {
    const { api } = stack;
    const deadline = { finishWithinSeconds: 3600 };
    const calls = stack.chat.requests.length;
    const moved = await pollUntilDone(
      api,
      await submitted(api, batchRequest(`soon ${randomUUID()}`, { deadline })),
    );
    assert.equal(moved.status, 'succeeded');
    assert.equal(moved.tier, 'standard');
    assert.ok((await eventTypes(stack, moved.id)).includes('tier_changed'), 'its move is an event');
    assert.equal(stack.chat.requests.length, calls + 1, 'a call of its own');
    assert.equal(
      settled(moved),
      creditsForUsage({ since: '', ...STANDARD }, moved.usage!),
      'at the standard price',
    );
    const failing = batchRequest(`soon, or not at all ${randomUUID()}`, { deadline, onBatchMiss: 'fail' });
    const failed = await pollUntilDone(api, await submitted(api, failing));
    assert.equal(failed.status, 'failed');
    assert.equal(failed.failure?.code, 'deadline_exceeded');
    assert.equal(settled(failed), 0);
    assert.equal(stack.chat.requests.length, calls + 1, 'no call for the job that failed');
  });

  test('a batch request for a model offered in no batches, or a miss policy without the tier, is refused', async () => {
    const { api } = stack;
    const local = await submit(
      api,
      batchRequest('local', { provider: 'local', model: undefined }),
      randomUUID(),
    );
    assert.equal(local.status, 400);
    assert.match(JSON.stringify(local.body), /"field":"tier"/);
    const stray = await submit(api, { kind: 'text', prompt: 'x', onBatchMiss: 'fail' }, randomUUID());
    assert.equal(stray.status, 400);
    assert.match(JSON.stringify(stray.body), /"field":"onBatchMiss"/);
  });
});

describe('a batch that expires with lines unrun', () => {
  let stack: BatchStack;
  before(async () => {
    stack = await startBatchStack({ lineMs: 1200, expireAfterMs: 1800 });
  });
  after(async () => stack?.stop());

  test('a line it ran succeeds in the batch; one it did not runs in the standard tier, or fails as asked', async () => {
    const { api, batches } = stack;
    const first = await submitted(api, batchRequest(`expiring 1 ${randomUUID()}`));
    const second = await submitted(api, batchRequest(`expiring 2 ${randomUUID()}`));
    const third = await submitted(api, batchRequest(`expiring 3 ${randomUUID()}`, { onBatchMiss: 'fail' }));
    const [ran, moved, failed] = await Promise.all(
      [first, second, third].map((id) => pollUntilDone(api, id, 60_000)),
    );
    const ranFirst = batches.linesRun[0];
    assert.equal(batches.linesRun.length, 1, 'one line ran before the batch expired');
    const byId = new Map([ran, moved, failed].map((job) => [job!.id, job!]));
    const served = byId.get(ranFirst!)!;
    assert.equal(served.status, 'succeeded');
    assert.equal(served.tier, 'batch');
    for (const job of [ran, moved, failed]) {
      if (job!.id === ranFirst) continue;
      if (job!.id === third) {
        assert.equal(job!.status, 'failed');
        assert.equal(job!.failure?.code, 'deadline_exceeded');
        assert.equal(settled(job!), 0);
      } else {
        assert.equal(job!.status, 'succeeded');
        assert.equal(job!.tier, 'standard');
      }
    }
    assert.deepEqual(await balanceProblems(stack.ctx.database.db), []);
  });
});
