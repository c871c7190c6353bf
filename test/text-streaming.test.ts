import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ServerMessage } from '../src/api/job-stream.js';
import { SLOW_CONSUMER_CLOSE_CODE } from '../src/api/job-stream.js';
import { createKilnClient } from '../src/client/kiln-client.js';
import { applyTextUpdate, NO_TEXT } from '../src/client/text-updates.js';
import type { StreamedText, TextUpdate } from '../src/events/text-stream.js';
import { FailureCode, isTerminal, type Job } from '../src/jobs/job.js';
import { createOpenAITextProvider } from '../src/providers/openai-text-provider.js';
import { ProviderError } from '../src/providers/provider-error.js';
import { decodePayloads } from '../src/temporal-client.js';
import { startFakeOpenAIChatServer, type FakeOpenAIChatServer } from './fakes/openai-chat-server.js';
import { convertPayloadLists, storedText } from './harness/history-payloads.js';
import { apiFetch, openStream, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { spawnWorkerProcess, startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

/**
 * Replies to prompts starting with `huge` are this many tokens of 5,000 characters: 8 MB, more than the
 * kernel's socket buffers (up to 4 MB here) and the server's 1 MiB limit together.
 */
const HUGE_TOKENS = 1600;

function reply(prompt: string): string[] {
  if (prompt.startsWith('huge')) {
    return Array.from({ length: HUGE_TOKENS }, (_, i) => `${String(i).padStart(4, '0')}${'x'.repeat(4996)}`);
  }
  const words = `Here is a reply to “${prompt}”: the kiln glows 🔥 at 1,200 °C — steady, bright, and slow.`;
  return words.match(/\S+\s*/g) ?? [words];
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function submitText(api: ApiTarget, prompt: string): Promise<string> {
  const accepted = await submit(api, { kind: 'text', prompt }, randomUUID());
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  return String(accepted.body.id);
}

/** The text a run of socket messages tells, and whether a reset came before the end. */
function textOf(messages: readonly ServerMessage[], start: StreamedText = NO_TEXT): StreamedText {
  return messages.reduce(
    (text, message) =>
      message.type === 'text' || message.type === 'reset' ? applyTextUpdate(text, message) : text,
    start,
  );
}

/** Subscribes over a socket and resolves once the job's terminal event arrived. */
async function watchOverSocket(api: ApiTarget, jobId: string, since = 0) {
  const stream = await openStream(api);
  stream.socket.send(JSON.stringify({ type: 'subscribe', id: jobId, since }));
  const done = waitFor(
    () => stream.messages.some((m) => m.type === 'job' && isTerminal(m.job.status)),
    `job ${jobId} to end`,
    60_000,
  );
  return { ...stream, done };
}

const statusOf = (message: ServerMessage) => (message.type === 'job' ? message.job.status : undefined);

/** Every payload of a job's history as text, encrypted ones decoded through the client's codec. */
async function historyText(ctx: TestContext, jobId: string): Promise<string> {
  const history = await ctx.temporal.workflow.getHandle(jobId).fetchHistory();
  const converter = ctx.temporal.options.loadedDataConverter;
  await convertPayloadLists(history, (payloads) => decodePayloads(converter, payloads));
  return storedText(history);
}

describe('text jobs', () => {
  let chat: FakeOpenAIChatServer;
  let ctx: TestContext;
  let api: ApiTarget;

  before(async () => {
    chat = await startFakeOpenAIChatServer({ reply, behaviour: { kind: 'ok', tokenDelayMs: 40 } });
    ctx = await createTestContext({
      OPENAI_API_KEY: chat.apiKey,
      OPENAI_BASE_URL: chat.url,
      DEFAULT_PROVIDER: 'openai',
      PROVIDER_BACKOFF_INITIAL_MS: '200',
      // What a fallback test moves on to: quick, as the fake is.
      LOCAL_PROVIDER_DELAY_MS: '600',
      // Encrypted, as in production: the history search below must decode through the codec.
      PAYLOAD_ENCRYPTION_KEYS: `stream:${randomBytes(32).toString('base64')}`,
    });
    await startWorker(ctx);
    api = await startApi(ctx);
  });
  after(async () => {
    await ctx.cleanup();
    await chat.close();
  });

  test('tokens reach a subscriber while the job runs, the text is the result, and history never holds it', async () => {
    const prompt = `stream ${randomUUID()}`;
    const id = await submitText(api, prompt);
    const { socket, messages, done } = await watchOverSocket(api, id);
    await done;
    socket.close();

    const expected = chat.replyFor(prompt);
    assert.deepEqual(textOf(messages), { attempt: 1, text: expected });
    const storingAt = messages.findIndex((m) => statusOf(m) === 'storing');
    const textsBefore = messages.slice(0, storingAt).filter((m) => m.type === 'text' && m.delta !== '');
    assert.ok(textsBefore.length >= 3, `tokens came in ${textsBefore.length} messages before storing`);

    const content = await apiFetch(api, `/v1/generations/${id}/content`);
    assert.equal(content.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(await content.text(), expected);
    const job = (await (await apiFetch(api, `/v1/generations/${id}`)).json()) as Job;
    assert.equal(job.kind, 'text');
    assert.equal(job.size, null);
    assert.equal(job.result?.byteSize, Buffer.byteLength(expected));
    assert.deepEqual(await (await apiFetch(api, `/v1/generations/${id}/text`)).json(), {
      attempt: 1,
      text: expected,
    });

    const history = await historyText(ctx, id);
    assert.ok(
      history.includes(prompt),
      'the decoded history holds the request, so the search below can fail',
    );
    assert.ok(!history.includes('steady, bright'), 'streamed text passed through workflow history');
  });

  test('a subscriber arriving mid-stream gets the text so far, then each new piece after it', async () => {
    chat.queueBehaviour({ kind: 'ok', tokenDelayMs: 150 });
    const prompt = `late ${randomUUID()}`;
    const sentBefore = chat.tokensSent();
    const id = await submitText(api, prompt);
    const client = createKilnClient({ baseUrl: api.url, apiKey: api.apiKey });
    await waitFor(async () => (await client.text(id)).text.length > 20, 'text to be streamed');
    assert.ok(chat.tokensSent() - sentBefore < reply(prompt).length, 'the stream is still going');

    const updates: TextUpdate[] = [];
    let final = NO_TEXT;
    for await (const event of client.watch(id, {
      onText: (text, update) => {
        updates.push(update);
        final = text;
      },
    })) {
      if (isTerminal(event.job.status)) assert.equal(event.job.status, 'succeeded');
    }
    const [first, ...rest] = updates;
    assert.ok(first?.type === 'text' && first.offset === 0 && first.delta.length > 20, JSON.stringify(first));
    assert.ok(rest.length > 0, 'live pieces followed the text so far');
    let length = first.delta.length;
    for (const update of rest) {
      assert.ok(update.type === 'text' && update.offset === length, `a gap or overlap at ${length}`);
      length += update.delta.length;
    }
    assert.deepEqual(final, { attempt: 1, text: chat.replyFor(prompt) });
  });

  test('a socket that drops mid-stream resumes by seq and ends with the exact text', async () => {
    chat.queueBehaviour({ kind: 'ok', tokenDelayMs: 100 });
    const prompt = `resume ${randomUUID()}`;
    const id = await submitText(api, prompt);
    const first = await openStream(api);
    first.socket.send(JSON.stringify({ type: 'subscribe', id }));
    await waitFor(() => first.messages.filter((m) => m.type === 'text').length >= 3, 'a few pieces');
    first.socket.terminate();
    const seen = [...first.messages];
    const lastSeq = Math.max(...seen.flatMap((m) => (m.type === 'job' ? [m.seq] : [])));

    const second = await watchOverSocket(api, id, lastSeq);
    await second.done;
    second.socket.close();
    const resumedSeqs = second.messages.flatMap((m) => (m.type === 'job' ? [m.seq] : []));
    assert.ok(
      resumedSeqs.every((seq) => seq > lastSeq),
      'no event repeated',
    );
    assert.deepEqual(textOf(second.messages, textOf(seen)), { attempt: 1, text: chat.replyFor(prompt) });
  });

  test('a stream cut mid-way is retried: subscribers see a reset, then the new attempt, never a mix', async () => {
    chat.queueBehaviour({ kind: 'cut', afterTokens: 6, tokenDelayMs: 60 });
    const prompt = `cut ${randomUUID()}`;
    const requestsBefore = chat.requests.length;
    const id = await submitText(api, prompt);
    const { socket, messages, done } = await watchOverSocket(api, id);
    await done;
    socket.close();

    const resetAt = messages.findIndex((m) => m.type === 'reset');
    assert.ok(resetAt > 0, `no reset in ${JSON.stringify(messages.map((m) => m.type))}`);
    const beforeReset = textOf(messages.slice(0, resetAt));
    assert.equal(beforeReset.attempt, 1);
    assert.ok(chat.replyFor(prompt).startsWith(beforeReset.text) && beforeReset.text.length > 0);
    assert.deepEqual(messages[resetAt], { type: 'reset', id, attempt: 2 });
    assert.deepEqual(textOf(messages), { attempt: 2, text: chat.replyFor(prompt) });
    assert.equal(chat.requests.length - requestsBefore, 2);
    const job = await pollUntilDone(api, id);
    assert.equal(job.attempts, 2);
  });

  test('a stream cut after its first tokens moves on to a fallback: the switch is told, then the stream starts again', async () => {
    chat.queueBehaviour({ kind: 'cut', afterTokens: 3, tokenDelayMs: 30 }, 2);
    const prompt = `fallback ${randomUUID()}`;
    const accepted = await submit(
      api,
      { kind: 'text', prompt, fallback: [{ provider: 'local' }] },
      randomUUID(),
    );
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    const id = String(accepted.body.id);
    const { socket, messages, done } = await watchOverSocket(api, id);
    await done;
    socket.close();

    const switchedAt = messages.findIndex((m) => m.type === 'job' && m.event === 'provider_switched');
    assert.ok(switchedAt > 0, `no switch in ${JSON.stringify(messages.map((m) => m.type))}`);
    const switched = messages[switchedAt] as Extract<ServerMessage, { type: 'job' }>;
    assert.deepEqual(switched.job.servedBy.switched, {
      from: { provider: 'openai', model: 'gpt-4o-mini' },
      reason: 'provider_unavailable',
    });
    const fromOpenAI = textOf(messages.slice(0, switchedAt));
    assert.ok(
      fromOpenAI.text.length > 0 && chat.replyFor(prompt).startsWith(fromOpenAI.text),
      'tokens came first',
    );
    const resetAt = messages.findIndex((m, i) => i > switchedAt && m.type === 'reset');
    assert.deepEqual(messages[resetAt], { type: 'reset', id, attempt: 3 });

    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'succeeded');
    assert.equal(job.servedBy.provider, 'local');
    const content = await (await apiFetch(api, `/v1/generations/${id}/content`)).text();
    assert.deepEqual(textOf(messages), { attempt: 3, text: content });
    assert.ok(!content.startsWith(fromOpenAI.text), 'the result is the fallback’s text alone, not a mix');
  });

  test('a slow reader is closed with 4008 rather than buffered, and resumes by seq', async () => {
    const prompt = `huge ${randomUUID()}`;
    chat.queueBehaviour({ kind: 'ok', tokenDelayMs: 0 });
    const id = await submitText(api, prompt);
    const slow = await openStream(api);
    const closed = new Promise<number>((resolve) => slow.socket.once('close', (code) => resolve(code)));
    slow.socket.send(JSON.stringify({ type: 'subscribe', id }));
    await waitFor(() => slow.messages.some((m) => m.type === 'job'), 'the first event');
    // Stops reading until the job is done: the server must give up on this client rather than buffer.
    slow.socket.pause();
    assert.equal((await pollUntilDone(api, id, 120_000)).status, 'succeeded');
    slow.socket.resume();
    assert.equal(await closed, SLOW_CONSUMER_CLOSE_CODE);
    const partial = textOf(slow.messages).text;
    assert.ok(partial.length < chat.replyFor(prompt).length, 'the slow reader got the whole text anyway');

    assert.ok(chat.replyFor(prompt).startsWith(partial), 'what it got is the start of the text');
    // It comes back after the end: the events it missed, then the text as the result.
    const lastSeq = Math.max(...slow.messages.flatMap((m) => (m.type === 'job' ? [m.seq] : [])));
    const resumed = await watchOverSocket(api, id, lastSeq);
    await resumed.done;
    resumed.socket.close();
    assert.ok(resumed.messages.every((m) => m.type !== 'job' || m.seq > lastSeq));
    const content = await apiFetch(api, `/v1/generations/${id}/content`);
    assert.equal(await content.text(), chat.replyFor(prompt));
  });

  test('a text job refuses image parameters, and an image job refuses text ones', async () => {
    const text = await submit(api, { kind: 'text', prompt: 'p', params: { size: '256x256' } }, randomUUID());
    assert.equal(text.status, 400);
    assert.deepEqual((text.body.error as { details: unknown }).details, {
      fields: [{ field: 'params', message: 'not a parameter of text jobs' }],
    });
    const image = await submit(
      api,
      { kind: 'image', prompt: 'p', provider: 'local', params: { maxTokens: 5 } },
      randomUUID(),
    );
    assert.equal(image.status, 400);
    assert.deepEqual((image.body.error as { details: unknown }).details, {
      fields: [{ field: 'params', message: 'not a parameter of image jobs' }],
    });
    const model = await submit(api, { kind: 'text', prompt: 'p', model: 'dall-e-2' }, randomUUID());
    assert.equal(model.status, 400);
    assert.equal((model.body.error as { code: string }).code, 'unknown_model');
    const imageJob = await submit(api, { kind: 'image', prompt: 'p', provider: 'local' }, randomUUID());
    const notText = await apiFetch(api, `/v1/generations/${String(imageJob.body.id)}/text`);
    assert.equal(notText.status, 409);
  });
});

describe('a worker that dies mid-stream', () => {
  let chat: FakeOpenAIChatServer;
  let ctx: TestContext;
  let api: ApiTarget;

  before(async () => {
    chat = await startFakeOpenAIChatServer({ reply, behaviour: { kind: 'ok', tokenDelayMs: 20 } });
    ctx = await createTestContext({
      OPENAI_API_KEY: chat.apiKey,
      OPENAI_BASE_URL: chat.url,
      DEFAULT_PROVIDER: 'openai',
      PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: '3',
    });
    api = await startApi(ctx);
  });
  after(async () => {
    await ctx.cleanup();
    await chat.close();
  });

  test('is replaced, and subscribers see the retried generation as a reset, not as garbled text', async () => {
    chat.queueBehaviour({ kind: 'ok', tokenDelayMs: 400 });
    const doomed = spawnWorkerProcess(ctx);
    await doomed.ready;
    const prompt = `crash ${randomUUID()}`;
    const id = await submitText(api, prompt);
    const { socket, messages, done } = await watchOverSocket(api, id);
    await waitFor(() => textOf(messages).text.length > 10, 'some streamed text');
    doomed.child.kill('SIGKILL');
    const replacement = spawnWorkerProcess(ctx);
    await replacement.ready;
    await done;
    socket.close();

    const resetAt = messages.findIndex((m) => m.type === 'reset');
    assert.ok(resetAt > 0, `no reset in ${JSON.stringify(messages.map((m) => m.type))}`);
    assert.equal(textOf(messages.slice(0, resetAt)).attempt, 1);
    assert.deepEqual(textOf(messages), { attempt: 2, text: chat.replyFor(prompt) });
    const lastEvent = messages.findLast((m) => m.type === 'job');
    assert.equal(lastEvent && statusOf(lastEvent), 'succeeded');
    assert.equal(chat.requests.length, 2);
  });
});

describe('the OpenAI text adapter', () => {
  let chat: FakeOpenAIChatServer;
  const input = { prompt: 'adapter', model: 'gpt-4o-mini', maxTokens: 64 };

  before(async () => {
    chat = await startFakeOpenAIChatServer({ reply });
  });
  after(() => chat.close());

  const provider = () =>
    createOpenAITextProvider({
      apiKey: chat.apiKey,
      baseURL: chat.url,
      timeoutMs: 10_000,
      models: ['gpt-4o-mini'],
    });
  const run = (target = provider()) => {
    const deltas: string[] = [];
    const result = target.generateText(input, {
      signal: new AbortController().signal,
      onDelta: (d) => deltas.push(d),
    });
    return { deltas, result };
  };

  test('hands over every delta in order, and they add up to the returned text', async () => {
    const { deltas, result } = run();
    const { text } = await result;
    assert.equal(text, chat.replyFor('adapter'));
    assert.equal(deltas.join(''), text);
    assert.equal(chat.requests.at(-1)?.max_completion_tokens, 64);
  });

  test('asks for usage and returns what the last chunk, one with no choices, billed', async () => {
    const { deltas, result } = run();
    const { text, usage } = await result;
    const index = chat.requests.length - 1;
    assert.deepEqual(chat.requests[index]?.stream_options, { include_usage: true });
    const billed = chat.usage[index];
    assert.ok(billed, 'the fake sent a usage chunk');
    assert.deepEqual(usage, { inputTokens: billed.prompt_tokens, outputTokens: billed.completion_tokens });
    assert.equal(billed.completion_tokens, deltas.length, 'a token per content chunk');
    assert.equal(deltas.join(''), text, 'the usage chunk adds no text');
  });

  test('classifies each failure once', async () => {
    const cases: [Parameters<FakeOpenAIChatServer['queueBehaviour']>[0], string, boolean][] = [
      [{ kind: 'cut', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      // A clean end of the body before any finish_reason: the reply is cut short, not complete.
      [{ kind: 'ends_early', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      [{ kind: 'stream_error', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      [{ kind: 'content_filter' }, FailureCode.contentPolicy, false],
      [{ kind: 'rate_limited', retryAfterSeconds: 2 }, FailureCode.rateLimited, true],
    ];
    for (const [behaviour, code, retryable] of cases) {
      chat.queueBehaviour(behaviour);
      const error = await run().result.then(
        () => assert.fail(`${behaviour.kind} succeeded`),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ProviderError, `${behaviour.kind}: ${String(error)}`);
      assert.deepEqual([error.code, error.retryable], [code, retryable], behaviour.kind);
    }
    const wrongKey = createOpenAITextProvider({
      apiKey: 'sk-wrong',
      baseURL: chat.url,
      timeoutMs: 10_000,
      models: ['m'],
    });
    const error = await run(wrongKey).result.catch((e: unknown) => e);
    assert.ok(error instanceof ProviderError && error.code === FailureCode.authentication);
  });
});
