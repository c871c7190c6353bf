import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { StuckJobList } from '../src/api/admin-routes.js';
import { startApiServer } from '../src/api/api-server.js';
import type { ProviderState } from '../src/use-cases/provider-states.js';
import { loadConfig } from '../src/config/index.js';
import { jobEventsAfter } from '../src/db/job-event-repository.js';
import type { Job } from '../src/jobs/job.js';
import { createLogger } from '../src/logger.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { KILN_PROVIDER, KILN_STATUS, KILN_USER } from '../src/workflows/search-attributes.js';
import { assertErrorShape } from './harness/error-shape.js';
import { balanceProblems } from './harness/fault-checks.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

const ADMIN_KEY = randomBytes(32).toString('base64url');
const COST = 3;
const CREDITS = 100;
/** Visibility is eventually consistent: how long a workflow may take to show up in a list query. */
const VISIBILITY_BOUND_MS = 20_000;

let stack: OpenAIStack;

before(async () => {
  stack = await startOpenAIStack({
    ADMIN_API_KEY: ADMIN_KEY,
    JOB_COSTS: JSON.stringify({ openai: COST }),
    PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 600, concurrency: 4 } }),
    // Two failed calls fail a job, and open the breaker for a second.
    PROVIDER_MAX_CALLS: '2',
    PROVIDER_BACKOFF_INITIAL_MS: '100',
    PROVIDER_BACKOFF_MAX_MS: '200',
    BREAKER_FAILURE_THRESHOLD: '2',
    BREAKER_COOLDOWN_SECONDS: '1',
  });
});
after(() => stack.stop());

const admin = (path: string, init: RequestInit = {}, key: string | null = ADMIN_KEY) =>
  apiFetch(stack.api, `/v1/admin${path}`, init, key);
const post = { method: 'POST' };

async function userApi(): Promise<ApiTarget & { userId: string }> {
  return { url: stack.api.url, ...(await stack.ctx.createUser({ credits: CREDITS })) };
}

async function submitOpenAI(api: ApiTarget, prompt = `operator ${randomUUID()}`): Promise<string> {
  const body = { kind: 'image', prompt, provider: 'openai', model: 'dall-e-2', params: { size: '256x256' } };
  const answer = await submit(api, body, randomUUID());
  assert.equal(answer.status, 202, JSON.stringify(answer.body));
  return String(answer.body.id);
}

/** Polls `read` until `done` holds; the bound only turns a hang into a failure with the last value. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, boundMs = 20_000) {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    assert.ok(Date.now() < deadline, `not reached: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Runs matching a visibility query, as `workflowId:STATUS`. */
async function listed(query: string): Promise<string[]> {
  const runs: string[] = [];
  for await (const run of stack.ctx.temporal.workflow.list({ query })) {
    runs.push(`${run.workflowId}:${run.status.name}`);
  }
  return runs.sort();
}

/** A failed job's row is written before its run closes (the run still hands its user's slot on). */
async function runFailed(id: string): Promise<void> {
  const handle = stack.ctx.temporal.workflow.getHandle(id);
  await eventually(
    async () => (await handle.describe()).status.name,
    (status) => status === 'FAILED',
  );
}

async function providerState(name: string): Promise<ProviderState> {
  const response = await admin('/providers');
  assert.equal(response.status, 200);
  const { data } = (await response.json()) as { data: ProviderState[] };
  const found = data.find((state) => state.provider === name);
  assert.ok(found, `no ${name} in ${JSON.stringify(data)}`);
  return found;
}

async function ledgerOf(jobId: string): Promise<string[]> {
  const rows = await stack.ctx.database.db
    .selectFrom('credit_ledger')
    .select(['kind', 'amount', 'run'])
    .where('job_id', '=', jobId)
    .orderBy('id')
    .execute();
  return rows.map((row) => `${row.kind}:${row.amount}:run${row.run}`);
}

describe('Temporal UI search: search attributes and summary', () => {
  test('jobs are found by KilnUser, KilnProvider and KilnStatus; the summary names no prompt', async () => {
    const api = await userApi();
    const prompt = `a secret prompt ${randomUUID()}`;
    const id = await submitOpenAI(api, prompt);
    assert.equal((await pollUntilDone(api, id)).status, 'succeeded');

    const description = await stack.ctx.temporal.workflow.getHandle(id).describe();
    assert.equal(description.typedSearchAttributes.get(KILN_USER), api.userId);
    assert.equal(description.typedSearchAttributes.get(KILN_PROVIDER), 'openai');
    const summary = await description.staticSummary();
    assert.equal(summary, `image · openai/dall-e-2 · 256x256 · user ${api.userId}`);
    assert.ok(!summary.includes('secret'), 'the summary carries no prompt');
    // The status attribute is written by the workflow when the job ends: a closed run shows the last one.
    await eventually(
      async () => (await stack.ctx.temporal.workflow.getHandle(id).describe()).typedSearchAttributes,
      (attributes) => attributes.get(KILN_STATUS) === 'succeeded',
    );

    const byUser = `KilnUser = "${api.userId}"`;
    await eventually(
      () => listed(byUser),
      (runs) => runs.join() === `${id}:COMPLETED`,
      VISIBILITY_BOUND_MS,
    );
    const succeeded = `${byUser} AND KilnProvider = "openai" AND KilnStatus = "succeeded"`;
    await eventually(
      () => listed(succeeded),
      (runs) => runs.length === 1,
      VISIBILITY_BOUND_MS,
    );
    assert.deepEqual(await listed(`${byUser} AND KilnStatus = "failed"`), []);
  });
});

describe('operator API', () => {
  test('refused without the admin key (401), with a wrong one (401) or a user key (403)', async () => {
    const { apiKey } = await userApi();
    const none = await admin('/providers', {}, null);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal(assertErrorShape(await none.json()).code, 'unauthorized');
    const wrong = await admin('/providers', {}, `${ADMIN_KEY.slice(0, -1)}x`);
    assert.equal(wrong.status, 401);
    assert.equal(assertErrorShape(await wrong.json()).code, 'unauthorized');
    const user = await admin('/jobs/stuck', {}, apiKey);
    assert.equal(user.status, 403);
    assert.equal(assertErrorShape(await user.json()).code, 'forbidden');
    // …and the admin key is no user key.
    assert.equal((await apiFetch(stack.api, '/v1/me', {}, ADMIN_KEY)).status, 401);
  });

  test('without ADMIN_API_KEY the operator API does not exist; a short key stops the start', async () => {
    const { ctx } = stack;
    const server = await startApiServer({
      config: { ...ctx.config, adminApiKey: undefined },
      database: ctx.database,
      temporal: ctx.temporal,
      store: ctx.store,
      providers: configuredProviders(ctx.config),
      logger: createLogger('silent', 'test-api'),
    });
    try {
      const response = await fetch(`${server.url}/v1/admin/providers`, {
        headers: { Authorization: `Bearer ${ADMIN_KEY}` },
      });
      assert.equal(response.status, 404);
      assert.equal(assertErrorShape(await response.json()).code, 'not_found');
    } finally {
      await server.close();
    }
    assert.throws(() => loadConfig({ ...ctx.env, ADMIN_API_KEY: 'short' }), /ADMIN_API_KEY/);
  });

  test('a job hanging at the provider is listed as stuck, then canceled by the operator', async () => {
    const api = await userApi();
    stack.provider.queueBehaviour({ kind: 'hang' });
    const id = await submitOpenAI(api);
    await eventually(
      () => getJob(api, id),
      (job) => job.status === 'running',
    );
    const stuck = await eventually(
      async () => (await (await admin('/jobs/stuck?status=running&idleSeconds=1')).json()) as StuckJobList,
      (list) => list.data.some((entry) => entry.job.id === id),
    );
    const entry = stuck.data.find((listedJob) => listedJob.job.id === id);
    assert.deepEqual([entry?.userId, entry?.workflowId], [api.userId, id]);
    assert.ok((entry?.idleSeconds ?? 0) >= 1);
    const queued = (await (await admin('/jobs/stuck?status=queued&idleSeconds=0')).json()) as StuckJobList;
    assert.ok(!queued.data.some((listedJob) => listedJob.job.id === id), 'a running job is not queued');
    const fresh = (await (await admin('/jobs/stuck?idleSeconds=3600')).json()) as StuckJobList;
    assert.deepEqual(fresh, { data: [], hasMore: false });
    const bad = await admin('/jobs/stuck?idleSeconds=-1');
    assert.equal(bad.status, 400);
    assert.equal(assertErrorShape(await bad.json()).code, 'invalid_request');

    const canceling = await admin(`/jobs/${id}/cancel`, post);
    assert.equal(canceling.status, 202);
    assert.equal(((await canceling.json()) as Job).id, id);
    assert.equal((await pollUntilDone(api, id)).status, 'canceled');
    const again = await admin(`/jobs/${id}/cancel`, post);
    assert.equal(again.status, 409);
    assert.equal(assertErrorShape(await again.json()).code, 'job_finished');
    assert.deepEqual(await ledgerOf(id), [`reserve:-${COST}:run1`, `refund:${COST}:run1`]);
    assert.equal((await admin('/jobs/job_0123456789abcdef0123456789abcdef/cancel', post)).status, 404);
  });

  test('a job failed by the provider is retried once it recovers: same id, seq unbroken, ledger balanced', async () => {
    const api = await userApi();
    stack.provider.setBehaviour({ kind: 'server_error', status: 503 });
    const id = await submitOpenAI(api);
    const failed = await pollUntilDone(api, id);
    assert.equal(failed.failure?.code, 'provider_unavailable');
    await runFailed(id);

    const outage = await providerState('openai');
    assert.equal(outage.breaker.state, 'open');
    assert.equal(outage.breaker.consecutiveFailures, 2);
    assert.deepEqual(outage.limits, [
      {
        key: 'openai',
        rpm: 600,
        dispatchesPerSecond: 10,
        slots: { inUse: 0, capacity: 4 },
        pausedUntil: null,
      },
    ]);

    stack.provider.setBehaviour({ kind: 'ok' });
    const retried = await admin(`/jobs/${id}/retry`, post);
    assert.equal(retried.status, 202);
    const requeued = (await retried.json()) as Job;
    assert.deepEqual([requeued.id, requeued.status, requeued.failure], [id, 'queued', null]);
    assert.equal(requeued.version, failed.version + 1);
    const twice = await admin(`/jobs/${id}/retry`, post);
    assert.equal(twice.status, 409);
    assert.equal(assertErrorShape(await twice.json()).code, 'job_not_failed');

    const done = await pollUntilDone(api, id);
    assert.equal(done.status, 'succeeded');
    const events = await jobEventsAfter(stack.ctx.database.db, id, 0);
    assert.deepEqual(
      events.map((event) => event.seq),
      events.map((_, index) => index + 1),
      'seq has no gap',
    );
    assert.equal(events.at(-1)?.seq, done.version);
    const statuses = events
      .filter((event) => event.type === 'status')
      .map((event) => event.job.status)
      .filter((status, index, all) => status !== all[index - 1]);
    assert.deepEqual(statuses, ['queued', 'running', 'failed', 'queued', 'running', 'storing', 'succeeded']);

    assert.deepEqual(await ledgerOf(id), [
      `reserve:-${COST}:run1`,
      `refund:${COST}:run1`,
      `reserve:-${COST}:run2`,
      'settle:0:run2',
    ]);
    const me = (await (await apiFetch(api, '/v1/me')).json()) as { credits: unknown };
    // Both runs count: the first refunded whole, the second settled.
    assert.deepEqual(me.credits, { balance: CREDITS - COST, reserved: 0, settled: COST, refunded: COST });
    assert.deepEqual(await balanceProblems(stack.ctx.database.db), []);

    // Both runs are kept under the one workflow id, each with the status it ended in.
    const runs = `WorkflowId = "${id}"`;
    await eventually(
      () => listed(runs),
      (found) => found.join() === `${id}:COMPLETED,${id}:FAILED`,
      VISIBILITY_BOUND_MS,
    );
    const failedRuns = `KilnUser = "${api.userId}" AND KilnStatus = "failed"`;
    await eventually(
      () => listed(failedRuns),
      (found) => found.join() === `${id}:FAILED`,
      VISIBILITY_BOUND_MS,
    );
    const recovered = await providerState('openai');
    assert.deepEqual([recovered.breaker.state, recovered.breaker.consecutiveFailures], ['closed', 0]);

    const notFailed = await admin(`/jobs/${id}/retry`, post);
    assert.equal(notFailed.status, 409);
    assert.deepEqual(assertErrorShape(await notFailed.json()).details, { status: 'succeeded' });
  });

  test('a retry the user cannot pay for, or whose run Temporal forgot, changes nothing', async () => {
    const { ctx } = stack;
    const poor = { url: stack.api.url, ...(await ctx.createUser({ credits: COST })) };
    stack.provider.queueBehaviour({ kind: 'content_policy' });
    const id = await submitOpenAI(poor);
    const failed = await pollUntilDone(poor, id);
    assert.equal(failed.status, 'failed');
    await runFailed(id);
    // The refunded credits go to another job, which holds them while it hangs.
    stack.provider.queueBehaviour({ kind: 'hang' });
    const holder = await submitOpenAI(poor);
    const unpaid = await admin(`/jobs/${id}/retry`, post);
    assert.equal(unpaid.status, 402);
    assert.deepEqual(assertErrorShape(await unpaid.json()).details, { cost: COST, balance: 0 });
    assert.deepEqual(await getJob(poor, id), failed);
    assert.equal((await admin(`/jobs/${holder}/cancel`, post)).status, 202);
    assert.equal((await pollUntilDone(poor, holder)).status, 'canceled');

    await ctx.temporal.workflowService.deleteWorkflowExecution({
      namespace: ctx.temporal.options.namespace,
      workflowExecution: { workflowId: id },
    });
    await eventually(
      () =>
        ctx.temporal.workflow
          .getHandle(id)
          .describe()
          .then(
            () => 'still there',
            (error: unknown) => (error instanceof WorkflowNotFoundError ? 'gone' : String(error)),
          ),
      (state) => state === 'gone',
      // Deletion runs as a background task of the server: seconds, not milliseconds.
      60_000,
    );
    const forgotten = await admin(`/jobs/${id}/retry`, post);
    assert.equal(forgotten.status, 409);
    assert.equal(assertErrorShape(await forgotten.json()).code, 'history_unavailable');
    assert.deepEqual(await getJob(poor, id), failed);
    assert.deepEqual(await ledgerOf(id), [`reserve:-${COST}:run1`, `refund:${COST}:run1`]);
    assert.equal((await admin('/jobs/job_nope/retry', post)).status, 404);
  });
});
