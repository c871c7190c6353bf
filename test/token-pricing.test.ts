import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/index.js';
import type { Job } from '../src/jobs/job.js';
import {
  creditsForUsage,
  estimatedTokens,
  promptTokenBound,
  tokenPriceOf,
  worstCaseCredits,
} from '../src/jobs/token-pricing.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { startFakeOpenAIChatServer, type FakeOpenAIChatServer } from './fakes/openai-chat-server.js';
import { balanceProblems, ledgerEntriesOf } from './harness/fault-checks.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/*
 * Text priced by the tokens it used, end to end: the API, a worker and a real Temporal, with the fake
 * OpenAI chat server reporting usage as OpenAI does. The table has a price that is over, the one in
 * force, and one not yet in force: a job is priced by the one in force at its submission.
 */
const IN_FORCE = { since: '2026-01-01', inputPerMillion: 30_000, outputPerMillion: 60_000 };
const PRICES = {
  'openai:gpt-4o-mini': [
    { since: '2025-01-01', inputPerMillion: 1_000_000, outputPerMillion: 1_000_000 },
    IN_FORCE,
    { since: '2099-01-01', inputPerMillion: 5, outputPerMillion: 5 },
  ],
};
const MAX_TOKENS = 200;

describe('token prices', () => {
  test('the price in force on a day is the latest that began by then; an unpriced model has none', () => {
    const table = PRICES;
    assert.deepEqual(
      tokenPriceOf(table, 'openai', 'gpt-4o-mini', new Date('2026-12-07T12:00:00Z')),
      IN_FORCE,
    );
    assert.equal(
      tokenPriceOf(table, 'openai', 'gpt-4o-mini', new Date('2025-06-30T23:59:59Z'))?.since,
      '2025-01-01',
    );
    assert.equal(tokenPriceOf(table, 'openai', 'gpt-4o-mini', new Date('2024-12-31T00:00:00Z')), undefined);
    assert.equal(tokenPriceOf(table, 'openai', 'gpt-4o', new Date()), undefined);
    assert.equal(tokenPriceOf(table, 'constructor', 'x', new Date()), undefined);
  });

  test('credits are counted in whole micro-credits and rounded up once, so the figure is exact', () => {
    // 7 × 0.03 + 13 × 0.06 = 0.99 → 1; 1 more output token → 1.05 → 2.
    assert.equal(creditsForUsage(IN_FORCE, { inputTokens: 7, outputTokens: 13 }), 1);
    assert.equal(creditsForUsage(IN_FORCE, { inputTokens: 7, outputTokens: 14 }), 2);
    assert.equal(creditsForUsage(IN_FORCE, { inputTokens: 0, outputTokens: 0 }), 0);
    const big = { inputPerMillion: 2_500_000, outputPerMillion: 10_000_000, since: '2026-01-01' };
    assert.equal(creditsForUsage(big, { inputTokens: 1_000_001, outputTokens: 16_384 }), 2_500_003 + 163_840);
  });

  test('a prompt is bounded by its bytes (a token is at least one) and the chat format around it', () => {
    assert.equal(promptTokenBound('kiln'), 4 + 16);
    assert.equal(promptTokenBound('🔥 é'), 4 + 1 + 2 + 16);
    assert.equal(estimatedTokens('abcdefgh'), 2);
    assert.equal(estimatedTokens('abcdefghi'), 3);
    const pricing = { ...IN_FORCE, promptTokens: promptTokenBound('kiln') };
    assert.equal(worstCaseCredits(pricing, 1000), Math.ceil((20 * 30_000 + 1000 * 60_000) / 1_000_000));
  });
});

describe('TEXT_TOKEN_PRICES is checked at start', () => {
  test('a price for a model this deployment does not offer is refused, by name', () => {
    const config = loadConfig({
      OPENAI_API_KEY: 'sk-test',
      TEXT_TOKEN_PRICES: JSON.stringify({ 'openai:gpt-nope': [IN_FORCE] }),
    });
    assert.throws(
      () => configuredProviders(config),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === 'TEXT_TOKEN_PRICES: openai:gpt-nope is no configured text provider:model',
    );
  });

  test('a price without its day, or with a fraction of a credit, is refused with the variable named', () => {
    for (const price of [
      { inputPerMillion: 1, outputPerMillion: 1 },
      { ...IN_FORCE, inputPerMillion: 0.5 },
    ]) {
      assert.throws(
        () => loadConfig({ TEXT_TOKEN_PRICES: JSON.stringify({ 'openai:gpt-4o-mini': [price] }) }),
        (error: unknown) => error instanceof ConfigError && error.message.includes('TEXT_TOKEN_PRICES'),
      );
    }
  });
});

describe('text priced by the tokens it used', () => {
  let chat: FakeOpenAIChatServer;
  let ctx: TestContext;
  let api: ApiTarget;

  before(async () => {
    chat = await startFakeOpenAIChatServer({ behaviour: { kind: 'ok', tokenDelayMs: 20 } });
    ctx = await createTestContext({
      OPENAI_API_KEY: chat.apiKey,
      OPENAI_BASE_URL: chat.url,
      DEFAULT_PROVIDER: 'openai',
      TEXT_TOKEN_PRICES: JSON.stringify(PRICES),
      PROVIDER_BACKOFF_INITIAL_MS: '100',
      PROVIDER_BACKOFF_MAX_MS: '200',
      PROVIDER_MAX_CALLS: '2',
    });
    await startWorker(ctx);
    api = await startApi(ctx);
  });
  after(async () => {
    await ctx.cleanup();
    await chat.close();
  });

  async function submitText(prompt: string): Promise<string> {
    const body = { kind: 'text', prompt, params: { maxTokens: MAX_TOKENS } };
    const accepted = await submit(api, body, randomUUID());
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    return String(accepted.body.id);
  }

  const reservedFor = (prompt: string) =>
    worstCaseCredits({ ...IN_FORCE, promptTokens: promptTokenBound(prompt) }, MAX_TOKENS);

  /** What a job that ended without a result is charged for the text its last call streamed. */
  const streamedCharge = (prompt: string, text: string) =>
    creditsForUsage(IN_FORCE, { inputTokens: estimatedTokens(prompt), outputTokens: estimatedTokens(text) });

  async function streamedText(id: string): Promise<string> {
    const body = (await (await apiFetch(api, `/v1/generations/${id}/text`)).json()) as { text: string };
    return body.text;
  }

  test('a job reserves its worst case and is charged the usage OpenAI reported, the rest refunded at once', async () => {
    const prompt = `priced ${randomUUID()}`;
    const calls = chat.requests.length;
    const id = await submitText(prompt);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'succeeded');

    assert.equal(chat.requests.length, calls + 1);
    const billed = chat.usage[calls];
    assert.ok(billed, 'the fake reported usage: the adapter asked for it');
    const usage = { inputTokens: billed.prompt_tokens, outputTokens: billed.completion_tokens };
    const reserved = reservedFor(prompt);
    const settled = creditsForUsage(IN_FORCE, usage);
    assert.ok(settled > 0 && settled < reserved, `charged ${settled} of ${reserved}`);

    const shown = await getJob(api, id);
    assert.deepEqual(shown.usage, { ...usage, estimated: false });
    assert.deepEqual(shown.credits, { reserved, settled, refunded: reserved - settled });
    assert.deepEqual(await ledgerEntriesOf(ctx.database.db, id), [
      `reserve:${-reserved}`,
      `settle:${reserved - settled}`,
    ]);
    const listed = (await (await apiFetch(api, '/v1/generations?kind=text')).json()) as { data: Job[] };
    assert.deepEqual(
      listed.data.find((each) => each.id === id),
      shown,
      'the listing shows what GET shows',
    );
    assert.deepEqual(await balanceProblems(ctx.database.db), []);
  });

  test('/v1/me adds up what ended jobs were charged and given back, and what unfinished ones hold', async () => {
    const before = (await (await apiFetch(api, '/v1/me')).json()) as { credits: Record<string, number> };
    chat.queueBehaviour({ kind: 'ok', tokenDelayMs: 20 });
    const prompt = `me ${randomUUID()}`;
    const job = await pollUntilDone(api, await submitText(prompt));
    const { credits } = (await (await apiFetch(api, '/v1/me')).json()) as { credits: Record<string, number> };
    const own = (await getJob(api, job.id)).credits;
    assert.ok(own?.settled !== undefined && own.settled !== null && own.refunded !== null);
    assert.deepEqual(credits, {
      balance: before.credits.balance! - own.settled,
      reserved: 0,
      settled: before.credits.settled! + own.settled,
      refunded: before.credits.refunded! + own.refunded,
    });
  });

  test('a canceled stream is charged what it had written, the rest refunded', async () => {
    chat.queueBehaviour({ kind: 'ok', tokenDelayMs: 300 });
    const prompt = `cancel ${randomUUID()}`;
    const id = await submitText(prompt);
    let before = '';
    for (const deadline = Date.now() + 30_000; before.length < 12;) {
      assert.ok(Date.now() < deadline, 'tokens streamed before the cancel');
      await new Promise((resolve) => setTimeout(resolve, 50));
      before = await streamedText(id);
    }
    assert.equal((await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' })).status, 202);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'canceled');

    const { credits } = await getJob(api, id);
    const reserved = reservedFor(prompt);
    assert.ok(credits && credits.settled !== null, 'the cancel settled the job');
    // What was streamed when the end was written lies between what was seen before the cancel and the end.
    const least = streamedCharge(prompt, before);
    const most = streamedCharge(prompt, await streamedText(id));
    assert.ok(least > 0, 'the text seen before the cancel costs something: the check can fail');
    assert.ok(
      credits.settled >= least && credits.settled <= most,
      `charged ${credits.settled}, between ${least} and ${most}`,
    );
    assert.deepEqual(credits, { reserved, settled: credits.settled, refunded: reserved - credits.settled });
    assert.equal(job.usage, null, 'a job without a result has no usage');
    assert.deepEqual(await balanceProblems(ctx.database.db), []);
  });

  test('a stream refused by the content filter after two tokens fails, charged for those two', async () => {
    chat.queueBehaviour({ kind: 'content_filter' });
    const prompt = `filtered ${randomUUID()}`;
    const id = await submitText(prompt);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'failed');
    assert.equal(job.failure?.code, 'content_policy');
    const text = await streamedText(id);
    assert.equal(text, (chat.replyFor(prompt).match(/\S+\s*/g) ?? []).slice(0, 2).join(''));
    const settled = streamedCharge(prompt, text);
    const reserved = reservedFor(prompt);
    assert.deepEqual((await getJob(api, id)).credits, { reserved, settled, refunded: reserved - settled });
    assert.deepEqual(await ledgerEntriesOf(ctx.database.db, id), [
      `reserve:${-reserved}`,
      `settle:${reserved - settled}`,
    ]);
  });

  test('a job whose calls streamed nothing fails refunded in full', async () => {
    chat.queueBehaviour({ kind: 'ends_early', afterTokens: 0 }, 2);
    const prompt = `nothing ${randomUUID()}`;
    const id = await submitText(prompt);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'failed');
    const reserved = reservedFor(prompt);
    assert.deepEqual((await getJob(api, id)).credits, { reserved, settled: 0, refunded: reserved });
    assert.deepEqual(await ledgerEntriesOf(ctx.database.db, id), [
      `reserve:${-reserved}`,
      `refund:${reserved}`,
    ]);
  });

  test('the providers list gives a usage-priced model its token prices in force, and no per-job price', async () => {
    const list = (await (await apiFetch(api, '/v1/providers')).json()) as {
      data: {
        name: string;
        kind: string;
        models: { name: string; prices: unknown[]; tokenPrice: unknown }[];
      }[];
    };
    const openaiText = list.data.find((provider) => provider.name === 'openai' && provider.kind === 'text');
    const models = new Map(openaiText?.models.map((model) => [model.name, model]));
    assert.deepEqual(models.get('gpt-4o-mini'), { name: 'gpt-4o-mini', prices: [], tokenPrice: IN_FORCE });
    assert.equal(models.get('gpt-4o')?.tokenPrice, null);
    assert.equal(models.get('gpt-4o')?.prices.length, 1);
  });
});
