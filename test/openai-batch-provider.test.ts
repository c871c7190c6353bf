import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ENDED_BATCH_STATES,
  type BatchLine,
  type BatchLineOutcome,
  type ProviderBatch,
  type ProviderBatchState,
  type TextBatchProvider,
} from '../src/providers/batch-provider.js';
import { createOpenAIBatchProvider } from '../src/providers/openai-batch-provider.js';
import { createOpenAITextProvider } from '../src/providers/openai-text-provider.js';
import { ProviderError } from '../src/providers/provider-error.js';
import {
  startFakeOpenAIBatchServer,
  type FakeOpenAIBatchServerOptions,
} from './fakes/openai-batch-server.js';
import { startFakeOpenAIChatServer } from './fakes/openai-chat-server.js';

const MODEL = 'gpt-4o-mini';

function linesFor(prompts: readonly string[]): BatchLine[] {
  return prompts.map((prompt, index) => ({ jobId: `job-${index}`, prompt, model: MODEL, maxTokens: 200 }));
}

/**
 * Lines 0 and 1 run at once; the rest wait a minute each, so a batch can be caught part done. Expiry
 * and cancelling take a second in these tests: room for a loaded machine between two requests.
 */
const twoThenStall = (index: number) => (index < 2 ? 0 : 60_000);

describe('the OpenAI batch adapter against the fake Files and Batch APIs', () => {
  const fakes: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((fake) => fake.close()));
  });

  async function start(options: FakeOpenAIBatchServerOptions = {}) {
    const fake = await startFakeOpenAIBatchServer(options);
    fakes.push(fake);
    const provider = createOpenAIBatchProvider({ apiKey: fake.apiKey, baseURL: fake.url, timeoutMs: 5000 });
    return { fake, provider };
  }

  async function waitFor(
    provider: TextBatchProvider,
    id: string,
    done: (batch: ProviderBatch) => boolean,
  ): Promise<ProviderBatch> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const batch = await provider.retrieveBatch(id);
      if (done(batch)) return batch;
      assert.ok(Date.now() < deadline, `batch ${id} still ${batch.state}`);
      await sleep(20);
    }
  }

  const ended = (batch: ProviderBatch) => ENDED_BATCH_STATES.includes(batch.state);
  const inState = (state: ProviderBatchState) => (batch: ProviderBatch) => batch.state === state;

  /** Uploads `prompts`, makes their batch, and waits until `until` says of it. */
  async function submit(
    provider: TextBatchProvider,
    prompts: readonly string[],
    until: (batch: ProviderBatch) => boolean = ended,
  ) {
    const batchId = randomUUID();
    const fileId = await provider.uploadLines(batchId, linesFor(prompts));
    const created = await provider.findOrCreateBatch(batchId, fileId);
    return { batchId, fileId, batch: await waitFor(provider, created.id, until) };
  }

  async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
    const error: unknown = await promise.then(
      () => assert.fail('expected a ProviderError'),
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof ProviderError, String(error));
    return error;
  }

  test('an upload repeated, even after its reply was lost, leaves one file in the JSONL format', async () => {
    const { fake, provider } = await start();
    const lines = linesFor(['a kiln', 'a glaze']);
    fake.dropResponse('upload');
    const lost = await rejection(provider.uploadLines('b1', lines));
    assert.equal(lost.code, 'provider_unavailable');
    assert.equal(lost.retryable, true);
    const first = await provider.uploadLines('b1', lines);
    assert.equal(await provider.uploadLines('b1', lines), first);
    assert.equal(fake.filesUploaded.length, 1);
    const [file] = fake.filesUploaded;
    assert.equal(file?.filename, 'kiln-batch-b1.jsonl');
    assert.equal(file?.purpose, 'batch');
    assert.deepEqual(JSON.parse(file?.content.split('\n')[0] ?? ''), {
      custom_id: 'job-0',
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: MODEL, messages: [{ role: 'user', content: 'a kiln' }], max_completion_tokens: 200 },
    });
  });

  test('a batch is created once: a repeat, or a retry after a lost reply, finds it by its metadata', async () => {
    const { fake, provider } = await start();
    const fileId = await provider.uploadLines('paid-once', linesFor(['one']));
    fake.dropResponse('create_batch');
    assert.equal((await rejection(provider.findOrCreateBatch('paid-once', fileId))).retryable, true);
    const found = await provider.findOrCreateBatch('paid-once', fileId);
    assert.equal((await provider.findOrCreateBatch('paid-once', fileId)).id, found.id);
    assert.equal(fake.batchesCreated.length, 1);
    assert.deepEqual(fake.batchesCreated[0], {
      input_file_id: fileId,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { kiln_batch_id: 'paid-once' },
    });
  });

  test('the guard finds its batch past the first page of the list', async () => {
    const { fake, provider } = await start();
    const fileId = await provider.uploadLines('old', linesFor(['one']));
    const old = await provider.findOrCreateBatch('old', fileId);
    for (let i = 0; i < 100; i++) await provider.findOrCreateBatch(`newer-${i}`, fileId);
    assert.equal((await provider.findOrCreateBatch('old', fileId)).id, old.id);
    assert.equal(fake.batchesCreated.length, 101);
  });

  test('a completed batch: each line classified as a call with the same answer would be', async () => {
    const { fake, provider } = await start({
      reply: (prompt) => (prompt === 'empty' ? [] : ['fired ', 'clay']),
      lineBehaviour: (body) => {
        const prompt = body.messages[0]?.content;
        if (prompt === 'bad') return { status: 400, message: 'Invalid max tokens.' };
        if (prompt === 'unsafe') return { status: 400, code: 'content_policy_violation', message: 'No.' };
        if (prompt === 'busy') return { status: 429, code: 'rate_limit_exceeded', message: 'Slow down.' };
        if (prompt === 'broken') return { status: 500, message: 'The server had an error.' };
        return prompt === 'filtered' ? 'content_filter' : 'ok';
      },
    });
    const prompts = ['two words here', 'bad', 'unsafe', 'busy', 'broken', 'filtered', 'empty'];
    const { batch } = await submit(provider, prompts);
    assert.equal(batch.state, 'completed');
    assert.deepEqual(batch.counts, { total: 7, completed: 3, failed: 4 });
    const outcomes = await provider.readOutcomes(batch, [...prompts.map((_, i) => `job-${i}`), 'job-absent']);
    const [ok, ...rest] = outcomes;
    assert.equal(ok?.outcome, 'succeeded');
    assert.ok(ok?.outcome === 'succeeded' && ok.requestId?.startsWith('req_'));
    assert.deepEqual(
      { text: ok.text, usage: ok.usage },
      // Three words of prompt plus the chat format's seven, and one token per reply piece.
      { text: 'fired clay', usage: { inputTokens: 10, outputTokens: 2 } },
    );
    const summary = (outcome: BatchLineOutcome) =>
      outcome.outcome === 'failed' ? `${outcome.code}:${outcome.retryable}` : `${outcome.outcome}`;
    assert.deepEqual(rest.map(summary), [
      'invalid_request:false',
      'content_policy:false',
      'rate_limited:true',
      'provider_unavailable:true',
      'content_policy:false',
      'invalid_output:true',
      'unrun',
    ]);
    assert.deepEqual(fake.linesRun, ['job-0', 'job-5', 'job-6']);
  });

  test('an expired batch: the lines it ran are results, the rest unrun and unbilled', async () => {
    const { fake, provider } = await start({ lineMs: twoThenStall, expireAfterMs: 1000 });
    const { batch } = await submit(provider, ['a', 'b', 'c', 'd']);
    assert.equal(batch.state, 'expired');
    assert.ok(batch.expiresAt !== null && Date.parse(batch.expiresAt) > Date.now() - 5000);
    const outcomes = await provider.readOutcomes(batch, ['job-0', 'job-1', 'job-2', 'job-3']);
    assert.deepEqual(
      outcomes.map((o) => (o.outcome === 'unrun' ? o.reason : o.outcome)),
      ['succeeded', 'succeeded', 'expired', 'expired'],
    );
    assert.deepEqual(fake.linesRun, ['job-0', 'job-1']);
  });

  test('a cancelled batch: not read before it ends, cancelled again harmlessly, unrun lines say cancelled', async () => {
    const { fake, provider } = await start({ lineMs: twoThenStall, cancelMs: 1000 });
    const twoDone = (batch: ProviderBatch) => batch.counts.completed === 2;
    const { batch: running } = await submit(provider, ['a', 'b', 'c'], twoDone);
    assert.equal((await rejection(provider.readOutcomes(running, ['job-0']))).code, 'internal');
    assert.equal((await provider.cancelBatch(running.id)).state, 'cancelling');
    assert.equal((await provider.cancelBatch(running.id)).state, 'cancelling');
    const cancelled = await waitFor(provider, running.id, inState('cancelled'));
    assert.equal((await provider.cancelBatch(running.id)).state, 'cancelled');
    const outcomes = await provider.readOutcomes(cancelled, ['job-0', 'job-1', 'job-2']);
    assert.deepEqual(
      outcomes.map((o) => (o.outcome === 'unrun' ? o.reason : o.outcome)),
      ['succeeded', 'succeeded', 'cancelled'],
    );
    assert.deepEqual(fake.linesRun, ['job-0', 'job-1']);
  });

  test('cancelling a batch that already completed returns it as it ended', async () => {
    const { provider } = await start();
    const { batch } = await submit(provider, ['a']);
    assert.equal((await provider.cancelBatch(batch.id)).state, 'completed');
  });

  test('a refused batch fails whole, says why, and runs nothing', async () => {
    const message = 'Enqueued token limit reached for gpt-4o-mini.';
    const { fake, provider } = await start({ refuseWith: { code: 'token_limit_exceeded', message } });
    const { batch } = await submit(provider, ['a', 'b']);
    assert.equal(batch.state, 'failed');
    assert.equal(batch.refusal, message);
    const outcomes = await provider.readOutcomes(batch, ['job-0', 'job-1']);
    assert.ok(outcomes.every((outcome) => outcome.outcome === 'unrun'));
    assert.deepEqual(fake.linesRun, []);
  });

  test('a file that names one job twice is refused as OpenAI refuses it, line by line', async () => {
    const { provider } = await start();
    const twice: BatchLine[] = ['a', 'b'].map((prompt) => ({
      jobId: 'job-same',
      prompt,
      model: MODEL,
      maxTokens: 9,
    }));
    const fileId = await provider.uploadLines('twice', twice);
    const created = await provider.findOrCreateBatch('twice', fileId);
    const batch = await waitFor(provider, created.id, ended);
    assert.equal(batch.state, 'failed');
    assert.equal(batch.refusal, "The custom_id 'job-same' is used more than once.");
  });

  test('a wrong key is an authentication failure, never retried', async () => {
    const { fake } = await start();
    const provider = createOpenAIBatchProvider({ apiKey: 'sk-wrong', baseURL: fake.url, timeoutMs: 5000 });
    const failure = await rejection(provider.uploadLines('b', linesFor(['a'])));
    assert.equal(failure.code, 'authentication');
    assert.equal(failure.retryable, false);
    assert.equal(fake.filesUploaded.length, 0);
  });

  test('other paths are forwarded, so one base URL serves batch and streamed calls', async () => {
    const chat = await startFakeOpenAIChatServer();
    fakes.push(chat);
    const { fake } = await start({ apiKey: chat.apiKey, forwardTo: chat.url });
    const text = createOpenAITextProvider({
      apiKey: fake.apiKey,
      baseURL: fake.url,
      timeoutMs: 5000,
      models: [MODEL],
    });
    const deltas: string[] = [];
    const context = { signal: new AbortController().signal, onDelta: (delta: string) => deltas.push(delta) };
    const reply = await text.generateText({ prompt: 'through the proxy', model: MODEL }, context);
    assert.equal(reply.text, chat.replyFor('through the proxy'));
    assert.equal(deltas.join(''), reply.text);
    assert.equal(chat.requests.length, 1);
  });

  test('with nothing to forward to, another path is a 404', async () => {
    const { fake } = await start();
    const reply = await fetch(`${fake.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(reply.status, 404);
  });
});
