import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, afterEach, before, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { jobIdFor } from '../src/jobs/job-identity.js';
import { costOf } from '../src/credits/job-cost.js';
import { findJob } from '../src/db/job-repository.js';
import { createUser, issueApiKey } from '../src/db/user-repository.js';
import type { FakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import { balanceProblems, jobLedgerProblems, ledgerEntriesOf } from './harness/fault-checks.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';
import type { TestContext } from './harness/test-context.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** `local` jobs cost the default, 1; `openai` jobs 3, or 5 for dall-e-2 at 512x512. */
const COSTS = { openai: 3, 'openai:dall-e-2:512x512': 5 };

interface Me {
  id: string;
  name: string;
  plan: string;
  credits: { balance: number; reserved: number; settled: number; refunded: number };
  jobs: { queued: number; running: number };
}

test('a job costs the most specific price configured, else the default', () => {
  const costs = { byKey: { openai: 3, 'openai:dall-e-2': 4, 'openai:dall-e-2:512x512': 5 }, fallback: 1 };
  const cost = (provider: string, model: string, size: '256x256' | '512x512') =>
    costOf(costs, { provider, model, size });
  assert.equal(cost('openai', 'dall-e-2', '512x512'), 5);
  assert.equal(cost('openai', 'dall-e-2', '256x256'), 4);
  assert.equal(cost('openai', 'dall-e-3', '256x256'), 3);
  assert.equal(cost('local', 'kiln-sketch-1', '256x256'), 1);
  assert.equal(cost('constructor', 'toString', '256x256'), 1, 'prototype names price nothing');
});

describe('credits: reserved at submit, settled on success, refunded otherwise', () => {
  let provider: FakeOpenAIImagesServer;
  let ctx: TestContext;
  let stack: OpenAIStack;
  let url: string;
  const jobs = new Set<string>();

  before(async () => {
    stack = await startOpenAIStack({
      JOB_COSTS: JSON.stringify(COSTS),
      JOB_COST_DEFAULT: '1',
      // The expiry test opens the circuit with one failure; no other test here makes one.
      BREAKER_FAILURE_THRESHOLD: '1',
      BREAKER_COOLDOWN_SECONDS: '120',
      // Submission rate limits are not what these tests are about.
      SUBMIT_BURST: '1000',
      SUBMIT_RATE_PER_MINUTE: '100000',
    });
    ({ provider, ctx } = stack);
    url = stack.api.url;
  });
  after(() => stack.stop());

  // After every test: no balance is negative or off its ledger, and every job has the entries its status
  // calls for (an open reservation while it runs, closed once when it ends).
  afterEach(async () => {
    const rows = await Promise.all([...jobs].map((id) => findJob(ctx.database.db, id)));
    assert.deepEqual(await balanceProblems(ctx.database.db), []);
    assert.deepEqual(
      await jobLedgerProblems(
        ctx.database.db,
        rows.filter((row) => row !== undefined),
      ),
      [],
    );
  });

  async function userWith(credits: number, plan?: string): Promise<ApiTarget & { userId: string }> {
    const user = await ctx.createUser({ credits, plan });
    return { url, ...user };
  }

  async function submitJob(api: ApiTarget, body: object, key = randomUUID()) {
    const response = await submit(api, { kind: 'image', prompt: `credits ${randomUUID()}`, ...body }, key);
    if (response.status === 202) jobs.add(String(response.body.id));
    return response;
  }

  async function me(api: ApiTarget): Promise<Me> {
    const response = await apiFetch(api, '/v1/me');
    assert.equal(response.status, 200);
    return (await response.json()) as Me;
  }

  const entriesOf = (jobId: string) => ledgerEntriesOf(ctx.database.db, jobId);

  const openai = (size = '256x256') => ({ provider: 'openai', model: 'dall-e-2', params: { size } });

  test('too few credits: 402 insufficient_credits, no job row, no workflow, nothing taken', async () => {
    const api = await userWith(2);
    const key = randomUUID();
    const refused = await submitJob(api, openai('512x512'), key);
    assert.equal(refused.status, 402);
    assert.deepEqual(refused.body.error, {
      code: 'insufficient_credits',
      message: 'the job costs 5 credits; the balance is 2',
      details: { cost: 5, balance: 2 },
    });
    const id = jobIdFor(api.userId, key);
    assert.equal(await findJob(ctx.database.db, id), undefined);
    await assert.rejects(ctx.temporal.workflow.getHandle(id).describe(), WorkflowNotFoundError);
    assert.deepEqual((await me(api)).credits, { balance: 2, reserved: 0, settled: 0, refunded: 0 });
  });

  test('success settles the reservation: the cost is spent once', async () => {
    const api = await userWith(10);
    const id = String((await submitJob(api, openai())).body.id);
    assert.equal((await pollUntilDone(api, id)).status, 'succeeded');
    assert.deepEqual(await entriesOf(id), ['reserve:-3', 'settle:0']);
    assert.deepEqual((await me(api)).credits, { balance: 7, reserved: 0, settled: 3, refunded: 0 });
  });

  test('a provider failure refunds exactly what was reserved', async () => {
    const api = await userWith(10);
    provider.queueBehaviour({ kind: 'content_policy' });
    const id = String((await submitJob(api, openai('512x512'))).body.id);
    assert.equal((await pollUntilDone(api, id)).status, 'failed');
    assert.deepEqual(await entriesOf(id), ['reserve:-5', 'refund:5']);
    assert.deepEqual((await me(api)).credits, { balance: 10, reserved: 0, settled: 0, refunded: 5 });
  });

  test('a replayed idempotency key reserves nothing more, concurrent or later', async () => {
    const api = await userWith(10);
    const key = randomUUID();
    const body = { prompt: `replayed ${key}`, params: { size: '256x256' } };
    const [first, second] = await Promise.all([submitJob(api, body, key), submitJob(api, body, key)]);
    assert.deepEqual([first.status, second.status], [202, 202]);
    const id = String(first.body.id);
    assert.equal((await pollUntilDone(api, id)).status, 'succeeded');
    assert.equal((await submitJob(api, body, key)).headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await entriesOf(id), ['reserve:-1', 'settle:0']);
    assert.deepEqual((await me(api)).credits, { balance: 9, reserved: 0, settled: 1, refunded: 0 });
  });

  test('concurrent submits never overdraw: balance 10, cost 1, 30 at once → 10 accepted', async () => {
    const api = await userWith(10);
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => submitJob(api, { params: { size: '256x256' } })),
    );
    const statuses = answers.map((answer) => answer.status);
    assert.equal(statuses.filter((status) => status === 202).length, 10);
    assert.equal(statuses.filter((status) => status === 402).length, 20);
    assert.equal((await me(api)).credits.balance, 0);
    const accepted = answers
      .filter((answer) => answer.status === 202)
      .map((answer) => String(answer.body.id));
    const done = await Promise.all(accepted.map((id) => pollUntilDone(api, id)));
    assert.ok(done.every((job) => job.status === 'succeeded'));
    assert.deepEqual((await me(api)).credits, { balance: 0, reserved: 0, settled: 10, refunded: 0 });
  });

  test('/v1/me shows plan, balance, reservation and running jobs; cancel refunds', async () => {
    const api = await userWith(10, 'pro');
    provider.queueBehaviour({ kind: 'hang' });
    const id = String((await submitJob(api, openai())).body.id);
    await waitFor(async () => (await getJob(api, id)).status === 'running');
    const user = await me(api);
    assert.deepEqual(user, {
      id: api.userId,
      name: user.name,
      plan: 'pro',
      credits: { balance: 7, reserved: 3, settled: 0, refunded: 0 },
      jobs: { queued: 0, running: 1 },
    });
    assert.equal((await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' })).status, 202);
    assert.equal((await pollUntilDone(api, id)).status, 'canceled');
    assert.deepEqual(await entriesOf(id), ['reserve:-3', 'refund:3']);
    const after = await me(api);
    assert.deepEqual(
      [after.credits, after.jobs],
      [
        { balance: 10, reserved: 0, settled: 0, refunded: 3 },
        { queued: 0, running: 0 },
      ],
    );
  });

  test('/v1/me without a key is a 401 in the error shape', async () => {
    const response = await apiFetch({ url, apiKey: '' }, '/v1/me', {}, null);
    assert.equal(response.status, 401);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'unauthorized');
  });

  test('the users CLI creates on the default plan, grants, changes plans and lists balances', async () => {
    const name = `cli-${randomUUID().slice(0, 8)}`;
    assert.match(await users('create', name), /API key: kiln_/);
    const user = await ctx.database.db
      .selectFrom('users')
      .select(['id', 'plan', 'credits'])
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    assert.deepEqual([user.plan, user.credits], ['free', 0]);
    // Each command is a process start (seconds with tsx): the independent ones run together.
    const [granted, moved] = await Promise.all([
      users('grant', name, '25'),
      users('plan', name, 'pro'),
      assert.rejects(users('grant', name, '-3'), /positive integer/),
      assert.rejects(users('grant', name, '2.5'), /positive integer/),
      assert.rejects(users('plan', name, 'gold'), /plan must be one of free, pro/),
    ]);
    assert.match(granted, /balance 25$/m);
    assert.match(moved, /is on plan pro/);
    assert.match(await users('list'), new RegExp(`\\t${name}\\tpro\\t25$`, 'm'));
    const grants = await ctx.database.db
      .selectFrom('credit_ledger')
      .select('amount')
      .where('user_id', '=', user.id)
      .orderBy('id')
      .execute();
    assert.deepEqual(
      grants.map((grant) => grant.amount),
      [25],
    );
  });

  test('the users CLI revokes every live key of a user and says how many', async () => {
    /** What /v1/me answers each key. */
    const statuses = (keys: string[]) =>
      Promise.all(keys.map(async (apiKey) => (await apiFetch({ url, apiKey }, '/v1/me')).status));
    // Each command is a process start: the two users' commands run side by side.
    await Promise.all(
      [1, 2].map(async (count) => {
        const name = `cli-${randomUUID().slice(0, 8)}`;
        const { id } = await createUser(ctx.database.db, name);
        const keys = await Promise.all(Array.from({ length: count }, () => issueApiKey(ctx.database.db, id)));
        assert.deepEqual(await statuses(keys), new Array<number>(count).fill(200));
        const revoked = `revoked ${count} API ${count === 1 ? 'key' : 'keys'} of ${name}`;
        assert.equal((await users('revoke', name)).trim(), revoked);
        assert.deepEqual(await statuses(keys), new Array<number>(count).fill(401));
        assert.equal((await users('revoke', name)).trim(), `${name} had no active API key`);
      }),
    );
  });

  // Last: it leaves the openai circuit open.
  test('an expired job is refunded; /v1/me counts it queued until then', async () => {
    const api = await userWith(20);
    // One 5xx opens the circuit; the job that got it ends at its finish deadline, refunded.
    provider.queueBehaviour({ kind: 'server_error', status: 503 });
    const failing = String(
      (await submitJob(api, { ...openai(), deadline: { finishWithinSeconds: 4 } })).body.id,
    );
    await waitFor(async () => (await getJob(api, failing)).attempts === 1);
    const hurried = String(
      (await submitJob(api, { ...openai(), deadline: { startWithinSeconds: 1 } })).body.id,
    );
    const waiting = await me(api);
    assert.deepEqual(
      [waiting.credits, waiting.jobs],
      [
        { balance: 14, reserved: 6, settled: 0, refunded: 0 },
        { queued: 1, running: 1 },
      ],
    );
    assert.equal((await pollUntilDone(api, hurried, 30_000)).status, 'expired');
    assert.equal((await pollUntilDone(api, failing, 30_000)).status, 'failed');
    assert.deepEqual(await entriesOf(hurried), ['reserve:-3', 'refund:3']);
    assert.deepEqual(await entriesOf(failing), ['reserve:-3', 'refund:3']);
    assert.deepEqual((await me(api)).credits, { balance: 20, reserved: 0, settled: 0, refunded: 6 });
  });

  /** `npm run users -- …` against this context's database; rejects with its stderr on failure. */
  async function users(...args: string[]): Promise<string> {
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', 'src/cli/users.ts', ...args],
        { cwd: REPO_ROOT, env: { ...process.env, ...ctx.env } },
      );
      return stdout;
    } catch (error) {
      throw new Error((error as { stderr?: string }).stderr ?? String(error));
    }
  }
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
