import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { PNG } from 'pngjs';
import { IMAGE_SIZES, imageDimensions, type ImageSize } from '../src/jobs/job.js';
import { classifyOpenAIError } from '../src/providers/classify-openai-error.js';
import {
  durationMs,
  nextRequestInMs,
  quotaFrom,
  retryAfterMsFrom,
} from '../src/providers/rate-limit-headers.js';
import { createLocalProvider } from '../src/providers/local-provider.js';
import { createLocalTextProvider } from '../src/providers/local-text-provider.js';
import { createOpenAIProvider } from '../src/providers/openai-provider.js';
import { renderPromptPng } from '../src/providers/png-renderer.js';
import { ProviderError } from '../src/providers/provider-error.js';
import type { ImageGenerationInput, ImageProvider } from '../src/providers/provider.js';
import { createProviderRegistry } from '../src/providers/provider-registry.js';
import { type FakeOpenAIImagesServer, startFakeOpenAIImagesServer } from './fakes/openai-images-server.js';

/** Calls the provider and records every progress report. */
async function generate(
  provider: ImageProvider,
  input: ImageGenerationInput,
  signal = new AbortController().signal,
) {
  const progress: number[] = [];
  const image = await provider.generateImage(input, {
    signal,
    onProgress: (percent) => progress.push(percent),
  });
  return { image, progress };
}

function decodedSize(bytes: Uint8Array): [number, number] {
  const png = PNG.sync.read(Buffer.from(bytes));
  return [png.width, png.height];
}

/** Resolves with what the promise rejected with; fails the test if it resolved. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

async function providerErrorOf(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await rejectionOf(promise);
  assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
  return error;
}

describe('png renderer', () => {
  test('the same prompt, seed and size give identical bytes; a different prompt or seed does not', () => {
    const picture = { prompt: 'a red fox in snow', seed: 7, width: 256, height: 256 };
    const bytes = renderPromptPng(picture);
    assert.deepEqual(renderPromptPng(picture), bytes);
    assert.notDeepEqual(renderPromptPng({ ...picture, prompt: 'a blue fox in snow' }), bytes);
    assert.notDeepEqual(renderPromptPng({ ...picture, seed: 8 }), bytes);
  });

  test('renders 1024x1024 well under a second', () => {
    const started = performance.now();
    const bytes = renderPromptPng({ prompt: 'timing', seed: 0, width: 1024, height: 1024 });
    assert.ok(performance.now() - started < 1000);
    assert.deepEqual(decodedSize(bytes), [1024, 1024]);
  });
});

describe('local provider', () => {
  const input = (size: ImageSize = '256x256'): ImageGenerationInput => ({
    prompt: 'a kiln at dawn',
    model: 'kiln-sketch-1',
    size,
    seed: 3,
  });

  test('is deterministic for the same input', async () => {
    const provider = createLocalProvider({ delayMs: 0, steps: 1 });
    const first = await generate(provider, input());
    const second = await generate(provider, input());
    assert.deepEqual(second.image.bytes, first.image.bytes);
    assert.equal(first.image.contentType, 'image/png');
  });

  test('renders every supported size exactly', async () => {
    const provider = createLocalProvider({ delayMs: 0, steps: 1 });
    for (const size of IMAGE_SIZES) {
      const { width, height } = imageDimensions(size);
      const { image } = await generate(provider, input(size));
      assert.deepEqual(decodedSize(image.bytes), [width, height], size);
    }
  });

  test('takes its delay and reports progress once per step, rising to 100', async () => {
    const provider = createLocalProvider({ delayMs: 120, steps: 4 });
    const started = Date.now();
    const { progress } = await generate(provider, input());
    assert.ok(Date.now() - started >= 100, 'the delay was honoured');
    assert.deepEqual(progress, [25, 50, 75, 100]);
  });

  test('an abort rejects promptly with the signal reason, not a ProviderError', async () => {
    const provider = createLocalProvider({ delayMs: 10_000, steps: 10 });
    const controller = new AbortController();
    const reason = new Error('job canceled');
    const started = Date.now();
    setTimeout(() => controller.abort(reason), 50);
    const error = await rejectionOf(generate(provider, input(), controller.signal));
    assert.equal(error, reason);
    assert.ok(Date.now() - started < 1000, 'rejected promptly');
  });
});

describe('local text provider', () => {
  const provider = createLocalTextProvider({ delayMs: 0, steps: 1 });
  const write = (prompt: string, maxTokens?: number) =>
    provider.generateText(
      { prompt, model: 'kiln-verse-1', maxTokens },
      { signal: new AbortController().signal, onDelta: () => {} },
    );

  test('reports the usage it counts itself: a word of the prompt or of the text is a token', async () => {
    const { text, usage } = await write('  a kiln\tat dusk ');
    assert.deepEqual(usage, { inputTokens: 4, outputTokens: text.split(' ').length });
    assert.deepEqual((await write('glaze', 3)).usage, { inputTokens: 1, outputTokens: 3 });
    assert.equal((await write('')).usage?.inputTokens, 1, 'a prompt is at least one token');
  });
});

describe('provider registry', () => {
  const local = { delayMs: 0, steps: 1 };
  const registry = createProviderRegistry([createLocalProvider(local)], [createLocalTextProvider(local)]);

  test('finds providers by kind and name and resolves models', () => {
    assert.deepEqual(registry.names('image'), ['local']);
    assert.equal(registry.image('local')?.name, 'local');
    assert.equal(registry.image('openai'), undefined);
    assert.equal(registry.resolveModel('image', 'local'), 'kiln-sketch-1');
    assert.equal(registry.resolveModel('image', 'local', 'kiln-sketch-1'), 'kiln-sketch-1');
    assert.equal(registry.resolveModel('image', 'local', 'dall-e-3'), undefined);
    assert.equal(registry.resolveModel('image', 'openai'), undefined);
    assert.equal(registry.resolveModel('text', 'local'), 'kiln-verse-1');
    assert.equal(registry.resolveModel('text', 'local', 'kiln-sketch-1'), undefined);
    assert.deepEqual(registry.models('text', 'local'), ['kiln-verse-1']);
  });

  test('refuses two providers with one name', () => {
    const local = createLocalProvider({ delayMs: 0, steps: 1 });
    assert.throws(() => createProviderRegistry([local, local]), /registered twice/);
  });
});

describe('openai provider against the fake images API', () => {
  let server: FakeOpenAIImagesServer;
  let provider: ImageProvider;
  const input = (model = 'gpt-image-1', size: ImageSize = '1024x1024'): ImageGenerationInput => ({
    prompt: `a lighthouse in fog (${model})`,
    model,
    size,
  });

  before(async () => {
    server = await startFakeOpenAIImagesServer();
    provider = createOpenAIProvider({ apiKey: server.apiKey, baseURL: server.url, timeoutMs: 5_000 });
  });
  beforeEach(() => {
    server.requests.length = 0;
    server.setBehaviour({ kind: 'ok' });
  });
  after(() => server.close());

  test('gpt-image-1: streams partial images as progress, then a PNG of the requested size; one call', async () => {
    const { image, progress } = await generate(provider, input());
    assert.deepEqual(decodedSize(image.bytes), [1024, 1024]);
    assert.deepEqual(progress, [25, 50, 75, 100]);
    assert.equal(server.countRequests(), 1);
    assert.deepEqual(server.requests[0], {
      model: 'gpt-image-1',
      prompt: input().prompt,
      n: 1,
      size: '1024x1024',
      stream: true,
      partial_images: 3,
    });
  });

  test('gpt-image-1: a stream that ends without its image is a retryable invalid_output', async () => {
    server.queueBehaviour({ kind: 'no_image' });
    const error = await providerErrorOf(generate(provider, input()));
    assert.equal(error.code, 'invalid_output');
    assert.equal(error.retryable, true);
  });

  test('dall-e-2: asks for base64 and gets the requested size', async () => {
    const { image } = await generate(provider, input('dall-e-2', '256x256'));
    assert.deepEqual(decodedSize(image.bytes), [256, 256]);
    assert.equal(server.requests[0]?.response_format, 'b64_json');
  });

  test('429 is rate_limited, retryable, with the Retry-After delay and no client retry', async () => {
    server.queueBehaviour({ kind: 'rate_limited', retryAfterSeconds: 7 });
    const error = await providerErrorOf(generate(provider, input()));
    assert.deepEqual([error.code, error.retryable, error.retryAfterMs], ['rate_limited', true, 7000]);
    assert.equal(server.countRequests(input().prompt), 1);
  });

  test('5xx is provider_unavailable and retryable; the next request succeeds', async () => {
    server.queueBehaviour({ kind: 'server_error' });
    server.queueBehaviour({ kind: 'server_error', status: 503 });
    for (let attempt = 0; attempt < 2; attempt++) {
      const error = await providerErrorOf(generate(provider, input()));
      assert.deepEqual([error.code, error.retryable], ['provider_unavailable', true]);
    }
    await generate(provider, input());
    assert.equal(server.countRequests(), 3);
  });

  test('content policy is content_policy and final, for both model families', async () => {
    server.setBehaviour({ kind: 'content_policy' });
    for (const model of ['gpt-image-1', 'dall-e-3']) {
      const error = await providerErrorOf(generate(provider, input(model)));
      assert.deepEqual([error.code, error.retryable], ['content_policy', false], model);
    }
  });

  test('a bad request is invalid_request and final', async () => {
    server.queueBehaviour({ kind: 'bad_request' });
    const error = await providerErrorOf(generate(provider, input()));
    assert.deepEqual([error.code, error.retryable], ['invalid_request', false]);
  });

  test('a wrong key is authentication and final', async () => {
    const wrongKey = createOpenAIProvider({ apiKey: 'sk-wrong', baseURL: server.url, timeoutMs: 5_000 });
    const error = await providerErrorOf(generate(wrongKey, input()));
    assert.deepEqual([error.code, error.retryable], ['authentication', false]);
  });

  test('a reply without image data is invalid_output and retryable', async () => {
    server.queueBehaviour({ kind: 'no_image' });
    const error = await providerErrorOf(generate(provider, input()));
    assert.deepEqual([error.code, error.retryable], ['invalid_output', true]);
  });

  test('a dropped connection is provider_unavailable and retryable', async () => {
    server.queueBehaviour({ kind: 'reset' });
    const error = await providerErrorOf(generate(provider, input()));
    assert.deepEqual([error.code, error.retryable], ['provider_unavailable', true]);
  });

  test('a hanging provider times out as timeout, retryable', async () => {
    server.queueBehaviour({ kind: 'hang' });
    const impatient = createOpenAIProvider({ apiKey: server.apiKey, baseURL: server.url, timeoutMs: 200 });
    const started = Date.now();
    const error = await providerErrorOf(generate(impatient, input()));
    assert.deepEqual([error.code, error.retryable], ['timeout', true]);
    assert.ok(Date.now() - started < 2000);
  });

  test('an abort through the signal is cancellation, not a ProviderError', async () => {
    server.queueBehaviour({ kind: 'hang' });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const error = await rejectionOf(generate(provider, input(), controller.signal));
    assert.ok(error instanceof APIUserAbortError, `expected APIUserAbortError, got ${String(error)}`);
    assert.ok(!(error instanceof ProviderError));
    assert.ok(Date.now() - started < 2000);
  });
});

describe('classifyOpenAIError', () => {
  const withStatus = (status: number, headers: Record<string, string> = {}, body?: object) =>
    APIError.generate(status, { error: body }, undefined, new Headers(headers));

  test('reads retry-after-ms, retry-after seconds and retry-after HTTP dates', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(retryAfterMsFrom(new Headers({ 'retry-after-ms': '1500', 'retry-after': '9' }), now), 1500);
    assert.equal(retryAfterMsFrom(new Headers({ 'retry-after': '2.5' }), now), 2500);
    assert.equal(
      retryAfterMsFrom(new Headers({ 'retry-after': 'Tue, 01 Jan 2030 00:00:30 GMT' }), now),
      30_000,
    );
    assert.equal(retryAfterMsFrom(new Headers({ 'retry-after': 'soon' }), now), undefined);
    assert.equal(retryAfterMsFrom(new Headers(), now), undefined);
  });

  test('reads the remaining request quota and its Go-style reset duration', () => {
    assert.equal(durationMs('20ms'), 20);
    assert.equal(durationMs('6m0s'), 360_000);
    assert.equal(durationMs('1h2m3.5s'), 3_723_500);
    assert.equal(durationMs('soon'), undefined);
    assert.equal(durationMs('3s later'), undefined);
    const quota = quotaFrom(
      new Headers({
        'x-ratelimit-limit-requests': '60',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '1m0s',
      }),
    );
    assert.deepEqual(quota, { limit: 60, remaining: 0, resetInMs: 60_000 });
    // An empty bucket of 60/min takes one more request a second from now, not a minute.
    assert.equal(nextRequestInMs(quota), 1000);
    assert.equal(nextRequestInMs({ limit: 60, remaining: 5, resetInMs: 6000 }), 0);
    assert.equal(quotaFrom(new Headers({ 'x-ratelimit-remaining-requests': '3' })), undefined);
  });

  test('maps statuses to codes', () => {
    const cases: [number, string, boolean][] = [
      [400, 'invalid_request', false],
      [403, 'authentication', false],
      [404, 'invalid_request', false],
      [408, 'provider_unavailable', true],
      [409, 'provider_unavailable', true],
      [422, 'invalid_request', false],
      [502, 'provider_unavailable', true],
    ];
    for (const [status, code, retryable] of cases) {
      const error = classifyOpenAIError(withStatus(status));
      assert.deepEqual([error.code, error.retryable], [code, retryable], String(status));
    }
  });

  test('a 503 keeps its Retry-After hint', () => {
    assert.equal(classifyOpenAIError(withStatus(503, { 'retry-after': '4' })).retryAfterMs, 4000);
  });

  test('connection failures are provider_unavailable, whether wrapped or raw', () => {
    const wrapped = new APIConnectionError({ message: 'Connection error.' });
    const raw = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const nested = new TypeError('terminated', { cause: raw });
    for (const error of [wrapped, raw, nested]) {
      assert.equal(classifyOpenAIError(error).code, 'provider_unavailable');
    }
  });

  test('anything unrecognised is internal and final', () => {
    const error = classifyOpenAIError(new RangeError('bug'));
    assert.deepEqual([error.code, error.retryable], ['internal', false]);
  });
});
