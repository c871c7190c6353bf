import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { PNG } from 'pngjs';
import { maxImageBytes } from '../src/outputs/verify-image.js';
import { createOpenAIProvider, type OpenAIImageProviderOptions } from '../src/providers/openai-provider.js';
import { ProviderError } from '../src/providers/provider-error.js';
import type { ImageProvider } from '../src/providers/provider.js';
import { startFakeOpenAIImagesServer, type FakeOpenAIImagesServer } from './fakes/openai-images-server.js';

const INPUT = { prompt: 'a kiln by a river', model: 'dall-e-2', size: '256x256' } as const;

/** The call's outcome: the image's width and height, or the ProviderError it failed with. */
async function outcome(provider: ImageProvider, signal = new AbortController().signal) {
  try {
    const { bytes } = await provider.generateImage(INPUT, { signal, onProgress: () => undefined });
    const png = PNG.sync.read(Buffer.from(bytes));
    return { size: [png.width, png.height] };
  } catch (error) {
    if (!(error instanceof ProviderError)) throw error;
    return { code: error.code, retryable: error.retryable, message: error.message };
  }
}

describe('an OpenAI-compatible server that answers with image URLs', () => {
  let server: FakeOpenAIImagesServer;
  const provider = (options: Partial<OpenAIImageProviderOptions> = {}) =>
    createOpenAIProvider({ apiKey: server.apiKey, baseURL: server.url, timeoutMs: 2_000, ...options });
  // The fake listens on 127.0.0.1, which the guard refuses unless told otherwise, as for webhooks.
  const allowingPrivate = () => provider({ imageUrlGuard: { allowPrivate: true } });

  before(async () => {
    server = await startFakeOpenAIImagesServer();
  });
  beforeEach(() => server.setBehaviour({ kind: 'url' }));
  after(() => server.close());

  test('the image is fetched from the URL: one call, one download, the requested size', async () => {
    const [calls, fetches] = [server.countRequests(), server.fileFetches()];
    assert.deepEqual(await outcome(allowingPrivate()), { size: [256, 256] });
    assert.deepEqual([server.countRequests() - calls, server.fileFetches() - fetches], [1, 1]);
  });

  test('a URL on a loopback address is refused by default, final, and never fetched', async () => {
    const fetches = server.fileFetches();
    const refused = await outcome(provider());
    assert.deepEqual([refused.code, refused.retryable], ['invalid_output', false]);
    assert.match(refused.message ?? '', /refused: 127\.0\.0\.1 is a loopback address/);
    assert.equal(server.fileFetches(), fetches);
  });

  test('a file that is gone (404) is invalid_output, retryable', async () => {
    server.setBehaviour({ kind: 'url', file: 'missing' });
    const gone = await outcome(allowingPrivate());
    assert.deepEqual([gone.code, gone.retryable], ['invalid_output', true]);
    assert.match(gone.message ?? '', /answered 404/);
  });

  test('a file bigger than any PNG of the size is invalid_output, retryable', async () => {
    server.setBehaviour({ kind: 'url', file: 'oversized' });
    const tooBig = await outcome(allowingPrivate());
    assert.deepEqual([tooBig.code, tooBig.retryable], ['invalid_output', true]);
    assert.match(tooBig.message ?? '', new RegExp(`more than ${maxImageBytes(INPUT.size)} bytes`));
  });

  test('a file host that refuses connections is provider_unavailable, retryable', async () => {
    server.setBehaviour({ kind: 'url', file: 'unreachable' });
    const unreachable = await outcome(allowingPrivate());
    assert.deepEqual([unreachable.code, unreachable.retryable], ['provider_unavailable', true]);
  });

  test('a file that never comes is a timeout, retryable; an abort meanwhile is cancellation', async () => {
    server.setBehaviour({ kind: 'url', file: 'hang' });
    const started = Date.now();
    const impatient = provider({ imageUrlGuard: { allowPrivate: true }, timeoutMs: 300 });
    const slow = await outcome(impatient);
    assert.deepEqual([slow.code, slow.retryable], ['timeout', true]);
    assert.ok(Date.now() - started < 2_000, `${Date.now() - started} ms`);

    // Aborted once the file is being fetched: an abort during the API call is the OpenAI client's.
    const controller = new AbortController();
    const fetches = server.fileFetches();
    const aborted = outcome(allowingPrivate(), controller.signal);
    while (server.fileFetches() === fetches) await setTimeout(5);
    controller.abort();
    await assert.rejects(aborted, { name: 'AbortError' });
  });
});
