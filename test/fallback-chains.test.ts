import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { PNG } from 'pngjs';
import { ConfigError, loadConfig } from '../src/config/index.js';
import type { Job } from '../src/jobs/job.js';
import { metricsRegistry } from '../src/observability/metrics.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { startWebhookReceiver, type FakeWebhookReceiver } from './fakes/webhook-receiver.js';
import { balanceProblems, jobLedgerProblems, ledgerEntriesOf } from './harness/fault-checks.js';
import { apiFetch, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

/*
 * Fallback chains end to end: the API, a worker and a real Temporal, with the fake OpenAI server as the
 * provider jobs are submitted for and the local provider as its configured fallback.
 */

const COSTS = { openai: 5, local: 2 };
const OPENAI_256 = { provider: 'openai', model: 'dall-e-2', params: { size: '256x256' } };
const CHAINS = {
  'openai:dall-e-2': [{ provider: 'local', model: 'kiln-sketch-1', sizes: { '256x256': '512x512' } }],
};

let stack: OpenAIStack;
let receiver: FakeWebhookReceiver;

before(async () => {
  receiver = await startWebhookReceiver();
  stack = await startOpenAIStack({
    FALLBACK_CHAINS: JSON.stringify(CHAINS),
    FALLBACK_AFTER_FAILED_CALLS: '2',
    JOB_COSTS: JSON.stringify(COSTS),
    PROVIDER_BACKOFF_INITIAL_MS: '200',
    PROVIDER_BACKOFF_MAX_MS: '400',
    LOCAL_PROVIDER_DELAY_MS: '300',
    WEBHOOK_ALLOW_PRIVATE: 'true',
    // One slot: a test fills it to see that a job with somewhere else to go does not wait for it.
    PROVIDER_LIMITS: JSON.stringify({ openai: { rpm: 600, concurrency: 1 } }),
  });
});
after(async () => {
  await stack?.stop();
  await receiver?.close();
});

async function userWith(credits: number): Promise<ApiTarget> {
  return { url: stack.api.url, ...(await stack.ctx.createUser({ credits })) };
}

async function submitted(api: ApiTarget, body: object): Promise<string> {
  const response = await submit(
    api,
    { kind: 'image', prompt: `fallback ${randomUUID()}`, ...body },
    randomUUID(),
  );
  assert.equal(response.status, 202, JSON.stringify(response.body));
  return String(response.body.id);
}

async function eventTypes(jobId: string): Promise<string[]> {
  const events = await stack.ctx.database.db
    .selectFrom('job_events')
    .select('type')
    .where('job_id', '=', jobId)
    .orderBy('seq')
    .execute();
  return events.map((event) => event.type);
}

async function pngSize(api: ApiTarget, jobId: string): Promise<string> {
  const response = await apiFetch(api, `/v1/generations/${jobId}/content`);
  assert.equal(response.status, 200);
  const png = PNG.sync.read(Buffer.from(await response.arrayBuffer()));
  return `${png.width}x${png.height}`;
}

async function switchesCounted(reason: string): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric('kiln_provider_switches_total')?.get();
  const labels = { from_provider: 'openai', to_provider: 'local', reason };
  const match = metric?.values.find((value) =>
    Object.entries(labels).every(([name, label]) => value.labels[name] === label),
  );
  return match?.value ?? 0;
}

describe('a provider down: jobs move on to its configured fallback', () => {
  test('served by the fallback at its mapped size, told as an event and a webhook, charged its price', async () => {
    stack.provider.setBehaviour({ kind: 'server_error', status: 503 });
    const api = await userWith(20);
    const countedBefore = await switchesCounted('provider_unavailable');
    const id = await submitted(api, {
      ...OPENAI_256,
      webhook: { url: receiver.endpoint('switches'), events: ['provider_switched', 'succeeded'] },
    });
    const job = await pollUntilDone(api, id, 60_000);
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(job.servedBy, {
      provider: 'local',
      model: 'kiln-sketch-1',
      size: '512x512',
      entry: 1,
      switched: { from: { provider: 'openai', model: 'dall-e-2' }, reason: 'provider_unavailable' },
    });
    assert.equal(job.provider, 'openai', 'the job still says what it was submitted for');
    assert.equal(await pngSize(api, id), '512x512');
    assert.equal(stack.provider.requests.length >= 2, true, 'the dead provider was tried first');

    const types = await eventTypes(id);
    assert.equal(types.filter((type) => type === 'provider_switched').length, 1, types.join(' '));
    assert.ok(
      types.indexOf('provider_switched') < types.lastIndexOf('status'),
      'the switch came before the end',
    );

    // Reserved at the dearer openai price, settled at local's: 3 of the 5 credits come back.
    assert.deepEqual(await ledgerEntriesOf(stack.ctx.database.db, id), ['reserve:-5', 'settle:3']);
    const me = (await (await apiFetch(api, '/v1/me')).json()) as { credits: { balance: number } };
    assert.equal(me.credits.balance, 18);
    assert.deepEqual(await jobLedgerProblems(stack.ctx.database.db, [job], stack.ctx.config.costs), []);
    assert.deepEqual(await balanceProblems(stack.ctx.database.db), []);

    await waitFor(() => receiver.received('switches').length >= 2);
    const told = receiver
      .received('switches')
      .map((hook) => `${hook.payload?.type} ${hook.payload?.data.status}`);
    assert.deepEqual(told, ['job.provider_switched running', 'job.status succeeded']);
    assert.equal(await switchesCounted('provider_unavailable'), countedBefore + 1);
  });

  test("a request's own list replaces the configured chain, with its own parameters", async () => {
    stack.provider.setBehaviour({ kind: 'server_error', status: 503 });
    const api = await userWith(20);
    const id = await submitted(api, { ...OPENAI_256, fallback: [{ provider: 'local', size: '1024x1024' }] });
    const job = await pollUntilDone(api, id, 60_000);
    assert.equal(job.status, 'succeeded');
    assert.equal(job.servedBy.size, '1024x1024');
    assert.equal(await pngSize(api, id), '1024x1024');
  });

  test('`fallback: false` keeps the job on its provider, which it waits for until its deadline', async () => {
    stack.provider.setBehaviour({ kind: 'server_error', status: 503 });
    const api = await userWith(20);
    const id = await submitted(api, {
      ...OPENAI_256,
      fallback: false,
      deadline: { finishWithinSeconds: 3 },
    });
    const job: Job = await pollUntilDone(api, id, 60_000);
    assert.equal(job.status, 'failed');
    assert.equal(job.servedBy.entry, 0);
    assert.equal(job.servedBy.provider, 'openai');
    assert.ok(!(await eventTypes(id)).includes('provider_switched'));
    assert.deepEqual(await ledgerEntriesOf(stack.ctx.database.db, id), ['reserve:-5', 'refund:5']);
  });

  test('a request naming a fallback this deployment cannot call is refused, field by field', async () => {
    const api = await userWith(20);
    const cases = [
      { fallback: [{ provider: 'nope' }], field: 'fallback[0].provider', code: 'unknown_provider' },
      { fallback: [{ provider: 'local', model: 'nope' }], field: 'fallback[0].model', code: 'unknown_model' },
    ];
    for (const { fallback, field, code } of cases) {
      const response = await submit(api, { kind: 'image', prompt: 'refused', fallback }, randomUUID());
      assert.equal(response.status, 400, JSON.stringify(response.body));
      const error = response.body.error as { code: string; details: { field: string } };
      assert.equal(error.code, code);
      assert.equal(error.details.field, field);
    }
    const textParam = await submit(
      api,
      { kind: 'image', prompt: 'refused', fallback: [{ provider: 'local', maxTokens: 5 }] },
      randomUUID(),
    );
    assert.equal(textParam.status, 400);
  });
});

describe('an open circuit', () => {
  test('moves a job with a fallback on at once, without waiting for (or spending) the dead provider’s slot', async () => {
    const { db } = stack.ctx.database;
    const until = sql<Date>`now() + interval '60 seconds'`;
    await db
      .insertInto('provider_slots')
      .values({ job_id: 'phantom', limit_key: 'openai', expires_at: until })
      .execute();
    await db
      .insertInto('provider_circuits')
      .values({ provider: 'openai', state: 'open', consecutive_failures: 5, open_until: until })
      .onConflict((oc) => oc.column('provider').doUpdateSet({ state: 'open', open_until: until }))
      .execute();
    try {
      const api = await userWith(20);
      const callsBefore = stack.provider.requests.length;
      const id = await submitted(api, OPENAI_256);
      const job = await pollUntilDone(api, id, 60_000);
      assert.equal(job.status, 'succeeded');
      assert.equal(job.servedBy.switched?.reason, 'circuit_open');
      assert.equal(stack.provider.requests.length, callsBefore, 'nothing was sent to the dead provider');
      const waits = await db
        .selectFrom('job_events')
        .select('data')
        .where('job_id', '=', id)
        .where('type', '=', 'waiting')
        .execute();
      assert.deepEqual(
        waits.map(({ data }) => (data as Job).waiting?.reason),
        [],
        'the job never waited for the slot the phantom holds',
      );
    } finally {
      await db.deleteFrom('provider_slots').where('job_id', '=', 'phantom').execute();
      await db.deleteFrom('provider_circuits').where('provider', '=', 'openai').execute();
    }
  });
});

describe('FALLBACK_CHAINS is checked at start', () => {
  const base = { OPENAI_API_KEY: 'sk-test' };
  const cases = [
    { chains: { 'nope:model': [{ provider: 'local', model: 'kiln-sketch-1' }] }, says: 'nope:model is no' },
    {
      chains: { 'openai:dall-e-2': [{ provider: 'fal', model: 'fal-ai/flux/dev' }] },
      says: 'falls back on fal:fal-ai/flux/dev, no configured image model',
    },
    {
      chains: { 'openai:dall-e-2': [{ provider: 'local', model: 'kiln-verse-1' }] },
      says: 'no configured image model',
    },
    {
      chains: {
        'openai:dall-e-2': [{ provider: 'local', model: 'kiln-sketch-1', sizes: { '256x256': '300x300' } }],
      },
      says: 'makes no 300x300 images',
    },
  ];
  for (const { chains, says } of cases) {
    test(`refused: ${says}`, () => {
      const config = loadConfig({ ...base, FALLBACK_CHAINS: JSON.stringify(chains) });
      assert.throws(
        () => configuredProviders(config),
        (error: unknown) =>
          error instanceof ConfigError &&
          /^FALLBACK_CHAINS: /.test(error.message) &&
          error.message.includes(says),
      );
    });
  }

  test('a chain of configured models is taken', () => {
    const config = loadConfig({ ...base, FALLBACK_CHAINS: JSON.stringify(CHAINS) });
    assert.ok(configuredProviders(config).names('image').includes('local'));
  });
});

async function waitFor(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
