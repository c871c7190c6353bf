import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { createKilnClient, type KilnClient } from '../src/client/kiln-client.js';
import { ConfigError, loadConfig } from '../src/config/index.js';
import { NO_TEXT, type TextUpdate } from '../src/events/text-stream.js';
import { FailureCode, isTerminal, type Job } from '../src/jobs/job.js';
import type { GeminiProviderOptions } from '../src/providers/gemini-client.js';
import { createGeminiProvider } from '../src/providers/gemini-provider.js';
import { createGeminiTextProvider } from '../src/providers/gemini-text-provider.js';
import { ProviderError } from '../src/providers/provider-error.js';
import type { ImageProvider, TextProvider } from '../src/providers/provider.js';
import {
  startFakeGeminiServer,
  type FakeGeminiBehaviour,
  type FakeGeminiServer,
} from './fakes/gemini-server.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const IMAGE_MODEL = 'gemini-2.5-flash-image';
const TEXT_MODEL = 'gemini-2.5-flash';
/** Port 1 (tcpmux) is not served on a test machine: connecting is refused. */
const UNREACHABLE = 'http://127.0.0.1:1';

/** What the promise rejected with, which must be a ProviderError; fails the test if it resolved. */
async function providerErrorOf(promise: Promise<unknown>, what: string): Promise<ProviderError> {
  const error = await promise.then(
    () => assert.fail(`${what} succeeded`),
    (rejection: unknown) => rejection,
  );
  assert.ok(error instanceof ProviderError, `${what}: expected a ProviderError, got ${String(error)}`);
  return error;
}

/** Each case: what the fake answers, the code it must be classified as, and whether it is retryable. */
type Case = [FakeGeminiBehaviour, FailureCode, boolean];

/** Failures an image and a text call share: the error answers and a refused prompt. */
const SHARED_CASES: Case[] = [
  [{ kind: 'error', code: 400 }, FailureCode.invalidRequest, false],
  [{ kind: 'error', code: 403 }, FailureCode.authentication, false],
  [{ kind: 'error', code: 500 }, FailureCode.providerUnavailable, true],
  [{ kind: 'error', code: 503 }, FailureCode.providerUnavailable, true],
  [{ kind: 'prompt_blocked' }, FailureCode.contentPolicy, false],
  [{ kind: 'prompt_blocked', reason: 'PROHIBITED_CONTENT' }, FailureCode.contentPolicy, false],
];

describe('the Gemini adapters against the fake Gemini API', () => {
  let gemini: FakeGeminiServer;
  let images: ImageProvider;
  let texts: TextProvider;
  const options = () => ({ apiKey: gemini.apiKey, baseURL: gemini.url, timeoutMs: 5_000 });
  const context = (signal = new AbortController().signal) => ({ signal, onProgress: () => {} });
  const imageInput = { prompt: 'a kiln at dusk', model: IMAGE_MODEL, size: '1024x1024' as const, seed: 3 };
  const textInput = { prompt: 'adapter', model: TEXT_MODEL };
  const generateText = ({ provider = texts, signal = new AbortController().signal, maxTokens = 64 } = {}) => {
    const deltas: string[] = [];
    const input = { ...textInput, maxTokens };
    const result = provider.generateText(input, { signal, onDelta: (delta) => deltas.push(delta) });
    return { deltas, result };
  };
  const imagesWith = (overrides: Partial<GeminiProviderOptions>) =>
    createGeminiProvider({ ...options(), ...overrides });
  const textsWith = (overrides: Partial<GeminiProviderOptions>) =>
    createGeminiTextProvider({ ...options(), models: [TEXT_MODEL], ...overrides });
  const image = (provider: ImageProvider, model = IMAGE_MODEL) =>
    provider.generateImage({ ...imageInput, model }, context());
  const text = (provider: TextProvider) => generateText({ provider }).result;

  before(async () => {
    gemini = await startFakeGeminiServer();
    images = imagesWith({});
    texts = textsWith({});
  });
  after(() => gemini.close());

  test('an image is a 1024x1024 PNG, asked for as an image alone, square, with the seed', async () => {
    const image = await images.generateImage(imageInput, context());
    const png = PNG.sync.read(Buffer.from(image.bytes));
    assert.deepEqual([png.width, png.height, image.contentType], [1024, 1024, 'image/png']);
    assert.ok(image.requestId, 'the responseId is kept');
    const sent = gemini.requests.at(-1);
    assert.deepEqual([sent?.model, sent?.method], [IMAGE_MODEL, 'generateContent']);
    assert.deepEqual(sent?.body.generationConfig, {
      responseModalities: ['IMAGE'],
      imageConfig: { aspectRatio: '1:1' },
      seed: 3,
    });
  });

  test('text arrives delta by delta, adds up to the answer, and maxTokens is maxOutputTokens', async () => {
    const { deltas, result } = generateText();
    const { text, requestId } = await result;
    assert.equal(text, gemini.replyFor('adapter'));
    assert.ok(deltas.length > 3, `${deltas.length} deltas`);
    assert.equal(deltas.join(''), text);
    assert.ok(requestId);
    const sent = gemini.requests.at(-1);
    assert.deepEqual(
      [sent?.method, sent?.body.generationConfig],
      ['streamGenerateContent', { maxOutputTokens: 64 }],
    );
  });

  test("usage is what the stream's last chunk billed, thinking counted as output", async () => {
    const { deltas, result } = generateText();
    const { usage } = await result;
    const billed = gemini.requests.at(-1)?.usage;
    assert.ok(billed, 'the fake billed the answer');
    assert.deepEqual(usage, {
      inputTokens: billed.promptTokenCount,
      outputTokens: billed.candidatesTokenCount,
    });
    assert.equal(billed.candidatesTokenCount, deltas.length, 'the totals, not a first chunk');
    gemini.queueBehaviour({ kind: 'ok', thoughtsTokens: 12 });
    const thought = await text(texts);
    const billedWithThoughts = gemini.requests.at(-1)?.usage;
    assert.equal(billedWithThoughts?.thoughtsTokenCount, 12);
    assert.deepEqual(thought.usage, {
      inputTokens: billedWithThoughts.promptTokenCount,
      outputTokens: billedWithThoughts.candidatesTokenCount + 12,
    });
  });

  test('a quota 429 is rate_limited with the RetryInfo delay, or else Retry-After', async () => {
    const quota = (retry: Partial<Extract<FakeGeminiBehaviour, { kind: 'error' }>>) =>
      ({ kind: 'error', code: 429, ...retry }) as const;
    for (const [behaviour, retryAfterMs] of [
      [quota({ retryDelaySeconds: 13 }), 13_000],
      [quota({ retryDelaySeconds: 13, retryAfterSeconds: 2 }), 13_000],
      [quota({ retryAfterSeconds: 7 }), 7_000],
      [quota({}), undefined],
    ] as const) {
      for (const call of [() => image(images), () => text(texts)]) {
        gemini.queueBehaviour(behaviour);
        const error = await providerErrorOf(call(), JSON.stringify(behaviour));
        assert.deepEqual(
          [error.code, error.retryable, error.retryAfterMs],
          ['rate_limited', true, retryAfterMs],
        );
      }
    }
  });

  test('each failure of an image call is classified once', async () => {
    const cases: Case[] = [
      ...SHARED_CASES,
      [{ kind: 'finish', reason: 'IMAGE_SAFETY' }, FailureCode.contentPolicy, false],
      [{ kind: 'finish', reason: 'PROHIBITED_CONTENT' }, FailureCode.contentPolicy, false],
      [{ kind: 'finish', reason: 'NO_IMAGE' }, FailureCode.invalidOutput, true],
      [{ kind: 'text_only' }, FailureCode.invalidOutput, true],
      [{ kind: 'jpeg' }, FailureCode.invalidOutput, true],
      [{ kind: 'cut', afterTokens: 0 }, FailureCode.providerUnavailable, true],
    ];
    for (const [behaviour, code, retryable] of cases) {
      gemini.queueBehaviour(behaviour);
      const what = JSON.stringify(behaviour);
      const sent = gemini.requests.length;
      const error = await providerErrorOf(image(images), what);
      assert.deepEqual([error.code, error.retryable], [code, retryable], what);
      assert.equal(gemini.requests.length - sent, 1, `${what}: the client retried on its own`);
    }
  });

  test('each failure of a text stream is classified once', async () => {
    const cases: Case[] = [
      ...SHARED_CASES,
      [{ kind: 'finish', reason: 'SAFETY', afterTokens: 2 }, FailureCode.contentPolicy, false],
      [{ kind: 'finish', reason: 'PROHIBITED_CONTENT' }, FailureCode.contentPolicy, false],
      [{ kind: 'finish', reason: 'OTHER', afterTokens: 2 }, FailureCode.invalidOutput, true],
      [{ kind: 'cut', afterTokens: 0 }, FailureCode.providerUnavailable, true],
      [{ kind: 'cut', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      // A clean end of the body before any finishReason: the answer is cut short, not complete.
      [{ kind: 'ends_early', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      [{ kind: 'stream_error', afterTokens: 2 }, FailureCode.providerUnavailable, true],
    ];
    for (const [behaviour, code, retryable] of cases) {
      gemini.queueBehaviour(behaviour);
      const what = JSON.stringify(behaviour);
      const sent = gemini.requests.length;
      const error = await providerErrorOf(text(texts), what);
      assert.deepEqual([error.code, error.retryable], [code, retryable], what);
      assert.equal(gemini.requests.length - sent, 1, `${what}: the client retried or resumed on its own`);
    }
  });

  test('a wrong key, an unknown model and an unreachable API', async () => {
    const cases: [string, () => Promise<unknown>, FailureCode, boolean][] = [
      [
        'wrong key, image',
        () => image(imagesWith({ apiKey: 'AIza-wrong' })),
        FailureCode.authentication,
        false,
      ],
      ['wrong key, text', () => text(textsWith({ apiKey: 'AIza-wrong' })), FailureCode.authentication, false],
      ['unknown model', () => image(images, 'imagen-9'), FailureCode.invalidRequest, false],
      ['unreachable', () => text(textsWith({ baseURL: UNREACHABLE })), FailureCode.providerUnavailable, true],
    ];
    for (const [what, call, code, retryable] of cases) {
      const error = await providerErrorOf(call(), what);
      assert.deepEqual([error.code, error.retryable], [code, retryable], what);
    }
  });

  test('past timeoutMs a call fails as a retryable timeout, waiting for an image or mid-stream', async () => {
    gemini.queueBehaviour({ kind: 'hang' });
    const waiting = await providerErrorOf(image(imagesWith({ timeoutMs: 300 })), 'image');
    gemini.queueBehaviour({ kind: 'ok', delayMs: 200 });
    const streaming = await providerErrorOf(text(textsWith({ timeoutMs: 300 })), 'stream');
    for (const error of [waiting, streaming]) {
      assert.deepEqual([error.code, error.retryable], [FailureCode.timeout, true]);
    }
  });

  test('a token limit reached mid-answer is the answer so far; one spent before any text is final', async () => {
    const { deltas, result } = generateText({ maxTokens: 3 });
    const { text: answer } = await result;
    const full = gemini.replyFor('adapter');
    assert.ok(answer.length > 0 && answer.length < full.length && full.startsWith(answer), answer);
    assert.equal(deltas.length, 3);
    gemini.queueBehaviour({ kind: 'finish', reason: 'MAX_TOKENS' });
    const error = await providerErrorOf(text(texts), 'a limit spent on thinking');
    assert.deepEqual([error.code, error.retryable], [FailureCode.invalidRequest, false]);
  });

  test('an abort closes the request and rejects with its own reason, for an image and a stream', async () => {
    const reason = new Error('job canceled');
    for (const call of [
      (signal: AbortSignal) => images.generateImage(imageInput, context(signal)),
      (signal: AbortSignal) => generateText({ signal }).result,
    ]) {
      gemini.queueBehaviour({ kind: 'hang' });
      const index = gemini.requests.length;
      const controller = new AbortController();
      setTimeout(() => controller.abort(reason), 100);
      await assert.rejects(call(controller.signal), (error) => error === reason);
      await waitFor(() => gemini.answeredAt[index] !== undefined, 'the request to close');
    }
  });
});

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('gemini jobs through the API and a worker', () => {
  let gemini: FakeGeminiServer;
  let ctx: TestContext;
  let api: ApiTarget;
  let client: KilnClient;

  before(async () => {
    gemini = await startFakeGeminiServer();
    ctx = await createTestContext({
      GEMINI_API_KEY: gemini.apiKey,
      GEMINI_BASE_URL: gemini.url,
      DEFAULT_PROVIDER: 'gemini',
      PROVIDER_BACKOFF_INITIAL_MS: '100',
      // These tests are about one job's calls; the shared breaker has its own test.
      BREAKER_FAILURE_THRESHOLD: '1000',
    });
    await startWorker(ctx);
    api = await startApi(ctx);
    client = createKilnClient({ baseUrl: api.url, apiKey: api.apiKey, pollIntervalMs: 100 });
  });
  after(async () => {
    await ctx.cleanup();
    await gemini.close();
  });

  /** Submits a job after queueing `answers`; its id, and the fake's requests that were for it. */
  async function submitAfter(answers: FakeGeminiBehaviour[], body: object) {
    const prompt = `gemini ${randomUUID()}`;
    for (const answer of answers) gemini.queueBehaviour(answer);
    const accepted = await submit(api, { prompt, ...body }, randomUUID());
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    const calls = () => gemini.requests.filter((request) => request.prompt === prompt);
    return { id: String(accepted.body.id), prompt, calls };
  }
  const imageJob = (answers: FakeGeminiBehaviour[] = []) => submitAfter(answers, { kind: 'image' });
  const textJob = (answers: FakeGeminiBehaviour[] = []) => submitAfter(answers, { kind: 'text' });

  test('an image job stores the 1024x1024 PNG Gemini drew', async () => {
    const { id, calls } = await imageJob();
    const job = await pollUntilDone(api, id);
    assert.deepEqual(
      [job.status, job.provider, job.model, job.size],
      ['succeeded', 'gemini', IMAGE_MODEL, '1024x1024'],
    );
    const png = PNG.sync.read(Buffer.from(await (await client.content(id)).arrayBuffer()));
    assert.deepEqual([png.width, png.height], [1024, 1024]);
    assert.equal(calls().length, 1);
  });

  test('a size Gemini cannot make is refused before anything is paid for', async () => {
    const before = gemini.requests.length;
    const refused = await submit(
      api,
      { kind: 'image', prompt: 'small', params: { size: '256x256' } },
      randomUUID(),
    );
    assert.equal(refused.status, 400);
    assert.equal((refused.body as { error: { code: string } }).error.code, 'unsupported_size');
    assert.equal(gemini.requests.length, before);
  });

  test('a text job streams its answer, and the answer is the result', async () => {
    const { id, prompt } = await textJob([{ kind: 'ok', delayMs: 30 }]);
    const pieces: TextUpdate[] = [];
    let job: Job | undefined;
    for await (const event of client.watch(id, { onText: (_, update) => pieces.push(update) })) {
      job = event.job;
    }
    assert.equal(job?.status, 'succeeded');
    assert.ok(pieces.length > 3, `${pieces.length} pieces`);
    assert.equal(await (await client.content(id)).text(), gemini.replyFor(prompt));
  });

  test('a stream cut mid-answer is retried: a reset, then the whole answer from the next call', async () => {
    const { id, prompt, calls } = await textJob([{ kind: 'cut', afterTokens: 4, delayMs: 50 }]);
    let text = NO_TEXT;
    const updates: TextUpdate[] = [];
    for await (const event of client.watch(id, {
      onText: (now, update) => {
        text = now;
        updates.push(update);
      },
    })) {
      if (isTerminal(event.job.status)) assert.equal(event.job.status, 'succeeded');
    }
    assert.ok(
      updates.some((update) => update.type === 'reset' && update.attempt === 2),
      JSON.stringify(updates.map(({ type, attempt }) => [type, attempt])),
    );
    assert.deepEqual(text, { attempt: 2, text: gemini.replyFor(prompt) });
    assert.equal(calls().length, 2);
  });

  test('a quota 429 is retried after the RetryInfo delay, not before', async () => {
    const started = Date.now();
    const { id, calls } = await imageJob([{ kind: 'error', code: 429, retryDelaySeconds: 2 }]);
    const job = await pollUntilDone(api, id);
    assert.equal(job.status, 'succeeded');
    assert.equal(calls().length, 2);
    assert.ok(Date.now() - started >= 2000, 'the retry waited for the RetryInfo delay');
  });

  test('a safety block fails the job content_policy after one call, images and text alike', async () => {
    for (const submitted of [
      await imageJob([{ kind: 'finish', reason: 'IMAGE_SAFETY' }]),
      await textJob([{ kind: 'finish', reason: 'SAFETY', afterTokens: 2 }]),
    ]) {
      const job = await pollUntilDone(api, submitted.id);
      assert.deepEqual(
        [job.status, job.failure?.code, submitted.calls().length],
        ['failed', 'content_policy', 1],
      );
    }
  });

  test('a cancel aborts the request in flight and ends the job canceled', async () => {
    for (const submitted of [await imageJob([{ kind: 'hang' }]), await textJob([{ kind: 'hang' }])]) {
      await waitFor(() => submitted.calls().length === 1, 'the call to reach Gemini', 30_000);
      const index = gemini.requests.lastIndexOf(submitted.calls()[0]!);
      assert.equal(
        (await apiFetch(api, `/v1/generations/${submitted.id}/cancel`, { method: 'POST' })).status,
        202,
      );
      await waitFor(() => gemini.answeredAt[index] !== undefined, 'the request to close', 15_000);
      assert.equal((await pollUntilDone(api, submitted.id)).status, 'canceled');
      assert.equal((await getJob(api, submitted.id)).attempts, 1);
    }
  });
});

describe('Gemini configuration', () => {
  test('GEMINI_API_KEY enables gemini; its models and base URL are checked at start', () => {
    assert.equal(loadConfig({}).providers.gemini, undefined);
    const config = loadConfig({
      GEMINI_API_KEY: 'AIza-test',
      GEMINI_TEXT_MODELS: 'gemini-2.5-pro, gemini-2.5-flash',
    });
    assert.deepEqual(config.providers.gemini?.textModels, ['gemini-2.5-pro', 'gemini-2.5-flash']);
    for (const [env, message] of [
      [{ DEFAULT_PROVIDER: 'gemini' }, /DEFAULT_PROVIDER: gemini needs GEMINI_API_KEY/],
      [{ GEMINI_TEXT_MODELS: ' , ' }, /GEMINI_TEXT_MODELS/],
      [{ GEMINI_BASE_URL: 'localhost:8080' }, /GEMINI_BASE_URL: not an http\(s\) URL/],
    ] as const) {
      assert.throws(
        () => loadConfig(env),
        (error) => error instanceof ConfigError && message.test(error.message),
        JSON.stringify(env),
      );
    }
  });
});
