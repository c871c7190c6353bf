import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PNG } from 'pngjs';
import {
  classifyFalFetchError,
  classifyFalHttpFailure,
  type FalRequestKind,
} from '../src/providers/classify-fal-error.js';
import { createFalProvider, type FalProviderOptions } from '../src/providers/fal-provider.js';
import { falAppOf } from '../src/providers/fal-queue-api.js';
import { renderPromptPng } from '../src/providers/png-renderer.js';
import { ProviderError } from '../src/providers/provider-error.js';
import type { ImageGenerationInput, ImageProvider, ProviderCallContext } from '../src/providers/provider.js';
import { startFakeFalServer, type FakeFalServer } from './fakes/fal-queue-server.js';

const RUNNING_MS = 200;

/** A call context that records every progress report, queue position and accepted request id. */
function recordingContext(overrides: Partial<ProviderCallContext> = {}) {
  const progress: number[] = [];
  const positions: number[] = [];
  const accepted: string[] = [];
  const context: ProviderCallContext = {
    signal: new AbortController().signal,
    onProgress: (percent) => progress.push(percent),
    onQueuePosition: (position) => positions.push(position),
    onTaskAccepted: (taskId) => {
      accepted.push(taskId);
      return Promise.resolve();
    },
    ...overrides,
  };
  return { context, progress, positions, accepted };
}

/** What the promise rejected with, which must be a ProviderError; fails the test if it resolved. */
async function providerErrorOf(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(
    () => assert.fail('expected a rejection'),
    (rejection: unknown) => rejection,
  );
  assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
  return error;
}

describe('fal provider against the fake queue API', () => {
  let server: FakeFalServer;
  let provider: ImageProvider;
  const input: ImageGenerationInput = {
    prompt: 'a kiln at dusk',
    model: 'fal-ai/flux/dev',
    size: '512x512',
    seed: 5,
  };

  /** Submits straight to the fake, as another client of the same key would. */
  async function submitDirectly(): Promise<string> {
    const response = await fetch(`${server.url}/fal-ai/flux/dev`, {
      method: 'POST',
      headers: { authorization: `Key ${server.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'elsewhere', image_size: 'square', output_format: 'png' }),
    });
    assert.equal(response.status, 200);
    return ((await response.json()) as { request_id: string }).request_id;
  }
  const cancelDirectly = (id: string) =>
    fetch(`${server.url}/fal-ai/flux/requests/${id}/cancel`, {
      method: 'PUT',
      headers: { authorization: `Key ${server.apiKey}` },
    });
  const requestNamed = (id: string | undefined) => server.requests().find((request) => request.id === id);

  const providerWith = (overrides: Partial<FalProviderOptions> = {}) =>
    createFalProvider({
      apiKey: server.apiKey,
      baseURL: server.url,
      pollIntervalMs: 10,
      requestTimeoutMs: 2_000,
      // The fake serves its files from 127.0.0.1, which the guard refuses unless told otherwise.
      imageUrlGuard: { allowPrivate: true },
      ...overrides,
    });
  const failureOf = (target: ImageProvider, overrides: Partial<ProviderCallContext> = {}) =>
    providerErrorOf(target.generateImage(input, recordingContext(overrides).context));

  before(async () => {
    server = await startFakeFalServer({ retryAfterSeconds: 7 });
    provider = providerWith();
  });
  beforeEach(() => server.setTiming({ queuedMs: 0, runningMs: RUNNING_MS, ahead: 0 }));
  after(() => server.close());

  test('submits a PNG request, waits its turn in the queue, and returns the image', async () => {
    server.setTiming({ queuedMs: 300, ahead: 3 });
    const { context, progress, positions } = recordingContext();
    const submits = server.submits();
    const image = await provider.generateImage(input, context);
    assert.equal(server.submits(), submits + 1);
    const sent = server.requests().at(-1)!;
    assert.deepEqual(
      [sent.model, sent.input.image_size, sent.input.output_format, sent.input.seed],
      ['fal-ai/flux/dev', 'square', 'png', 5],
    );
    assert.equal(image.requestId, sent.id);
    assert.deepEqual(
      image.bytes,
      renderPromptPng({ prompt: input.prompt, seed: 5, width: 512, height: 512 }),
    );
    assert.equal(positions[0], 3, 'the position at submit');
    assert.ok(positions.length > 1, `positions: ${positions.join()}`);
    assert.ok(
      positions.every((position, i) => i === 0 || position < positions[i - 1]!),
      'only falling',
    );
    assert.equal(progress.at(-1), 100);
    assert.ok(
      progress.some((percent) => percent > 5 && percent < 100),
      `progress: ${progress.join()}`,
    );
    assert.ok(
      progress.every((percent, i) => i === 0 || percent > progress[i - 1]!),
      'only rising',
    );
  });

  test('1024x1024 goes as square_hd, and the image is that size', async () => {
    const image = await provider.generateImage({ ...input, size: '1024x1024' }, recordingContext().context);
    assert.equal(server.requests().at(-1)?.input.image_size, 'square_hd');
    const png = PNG.sync.read(Buffer.from(image.bytes));
    assert.deepEqual([png.width, png.height], [1024, 1024]);
  });

  test('onTaskAccepted gets the request id once, while it is still queued', async () => {
    server.setTiming({ queuedMs: 200, ahead: 1 });
    const seen: { id: string; state: string | undefined }[] = [];
    const context = recordingContext({
      onTaskAccepted: (id) => {
        seen.push({ id, state: requestNamed(id)?.state });
        return Promise.resolve();
      },
    }).context;
    await provider.generateImage(input, context);
    assert.deepEqual(seen, [{ id: server.requests().at(-1)?.id, state: 'IN_QUEUE' }]);
  });

  test('resumes a request in flight, polled under its app, without submitting again', async () => {
    const id = await submitDirectly();
    const [submits, polls] = [server.submits(), server.polls()];
    const { context, accepted, progress } = recordingContext({ resumeTaskId: id });
    const image = await provider.generateImage(input, context);
    assert.equal(image.requestId, id);
    assert.deepEqual(image.bytes, renderPromptPng({ prompt: 'elsewhere', seed: 0, width: 512, height: 512 }));
    assert.equal(server.submits(), submits);
    assert.ok(server.polls() > polls);
    assert.deepEqual(accepted, []);
    assert.equal(progress.at(-1), 100);
  });

  test('resuming a request fal does not know, or one canceled in the queue, submits one fresh', async () => {
    server.setTiming({ queuedMs: 10_000, ahead: 5 });
    const canceled = await submitDirectly();
    assert.equal((await cancelDirectly(canceled)).status, 202);
    server.setTiming({ queuedMs: 0 });
    for (const resumeTaskId of ['00000000-0000-4000-8000-000000000000', canceled]) {
      const submits = server.submits();
      const { context, accepted } = recordingContext({ resumeTaskId });
      const image = await provider.generateImage(input, context);
      assert.equal(server.submits(), submits + 1);
      assert.deepEqual(accepted, [image.requestId]);
    }
  });

  test('an abort mid-poll cancels the request and rejects with the abort reason', async () => {
    server.setTiming({ runningMs: 10_000 });
    const controller = new AbortController();
    const reason = new Error('job canceled');
    const { context, accepted } = recordingContext({ signal: controller.signal });
    const cancels = server.cancels();
    const started = Date.now();
    setTimeout(() => controller.abort(reason), 150);
    await assert.rejects(provider.generateImage(input, context), (error) => error === reason);
    assert.ok(Date.now() - started < 1_000, 'rejected promptly');
    assert.equal(server.cancels(), cancels + 1);
    assert.equal(requestNamed(accepted[0])?.canceled, true);
  });

  test('an abort that leaves the request to a later attempt does not cancel it', async () => {
    server.setTiming({ runningMs: 10_000 });
    const controller = new AbortController();
    const reason = new Error('attempt timed out');
    const { context, accepted } = recordingContext({
      signal: controller.signal,
      taskOutlivesAbort: () => true,
    });
    const cancels = server.cancels();
    setTimeout(() => controller.abort(reason), 150);
    await assert.rejects(provider.generateImage(input, context), (error) => error === reason);
    assert.equal(server.cancels(), cancels);
    assert.equal(requestNamed(accepted[0])?.state, 'IN_PROGRESS');
  });

  test('if onTaskAccepted fails, the request is canceled and the hook’s error propagates', async () => {
    server.setTiming({ queuedMs: 10_000, ahead: 2 });
    const hookError = new Error('could not record the task');
    const cancels = server.cancels();
    const context = recordingContext({ onTaskAccepted: () => Promise.reject(hookError) }).context;
    await assert.rejects(provider.generateImage(input, context), (error) => error === hookError);
    assert.equal(server.cancels(), cancels + 1);
    assert.equal(server.requests().at(-1)?.state, 'removed');
  });

  test('429 is rate_limited, retryable, with the Retry-After delay, and nothing was accepted', async () => {
    server.queueBehaviour('rate_limited');
    const { context, accepted } = recordingContext();
    const error = await providerErrorOf(provider.generateImage(input, context));
    assert.deepEqual([error.code, error.retryable, error.retryAfterMs], ['rate_limited', true, 7_000]);
    assert.deepEqual(accepted, []);
  });

  test('each way a request can fail, classified once', async () => {
    const cases: [Parameters<FakeFalServer['queueBehaviour']>[0], string, boolean, RegExp][] = [
      ['server_error', 'provider_unavailable', true, /HTTP 500: Internal error/],
      ['invalid_input', 'invalid_request', false, /HTTP 422: The prompt is too long/],
      ['content_policy', 'content_policy', false, /flagged by a content checker/],
      ['nsfw', 'content_policy', false, /safety checker flagged/],
      ['runner_error', 'provider_unavailable', true, /HTTP 503: Runner disconnected/],
      ['request_timeout', 'timeout', true, /HTTP 504: Request timed out/],
      ['jpeg', 'invalid_output', true, /not a PNG/],
    ];
    for (const [behaviour, code, retryable, message] of cases) {
      server.queueBehaviour(behaviour);
      const error = await failureOf(provider);
      assert.deepEqual([error.code, error.retryable], [code, retryable], behaviour);
      assert.match(error.message, message, behaviour);
    }
  });

  test('a request someone else canceled while it ran is provider_unavailable, retryable', async () => {
    server.setTiming({ runningMs: 400 });
    const error = await failureOf(provider, {
      onTaskAccepted: async (id) => {
        await sleep(100);
        assert.equal((await cancelDirectly(id)).status, 202);
      },
    });
    assert.deepEqual([error.code, error.retryable], ['provider_unavailable', true]);
    assert.match(error.message, /HTTP 499/);
    assert.equal(error.requestId, server.requests().at(-1)?.id);
  });

  test('a wrong key, an unknown model, an unreachable queue, a submit never answered', async () => {
    server.queueBehaviour('hang');
    const cases: [ImageProvider, ImageGenerationInput, string, boolean][] = [
      [providerWith({ requestTimeoutMs: 300 }), input, 'timeout', true],
      [providerWith({ apiKey: 'wrong:key' }), input, 'authentication', false],
      [provider, { ...input, model: 'fal-ai/nothing' }, 'invalid_request', false],
      [providerWith({ baseURL: 'http://127.0.0.1:1' }), input, 'provider_unavailable', true],
    ];
    for (const [target, request, code, retryable] of cases) {
      const error = await providerErrorOf(target.generateImage(request, recordingContext().context));
      assert.deepEqual([error.code, error.retryable], [code, retryable], code);
    }
  });

  test('an image URL on a loopback address is refused by default, and final', async () => {
    const error = await failureOf(providerWith({ imageUrlGuard: undefined }));
    assert.deepEqual([error.code, error.retryable], ['invalid_output', false]);
    assert.match(error.message, /loopback/);
  });
});

describe('fal error classification', () => {
  const http = (request: FalRequestKind, status: number, body: object = {}, headers = {}) =>
    classifyFalHttpFailure({ request, status, headers: new Headers(headers), body: JSON.stringify(body) });

  test('maps statuses to codes, by request', () => {
    const cases: [FalRequestKind, number, string, boolean][] = [
      ['submit', 400, 'invalid_request', false],
      ['submit', 404, 'invalid_request', false],
      ['submit', 422, 'invalid_request', false],
      ['result', 422, 'invalid_request', false],
      ['submit', 401, 'authentication', false],
      ['status', 403, 'authentication', false],
      ['status', 404, 'provider_unavailable', true],
      ['result', 404, 'provider_unavailable', true],
      ['result', 499, 'provider_unavailable', true],
      ['submit', 408, 'timeout', true],
      ['result', 504, 'timeout', true],
      ['status', 409, 'provider_unavailable', true],
      ['result', 500, 'provider_unavailable', true],
      ['submit', 502, 'provider_unavailable', true],
    ];
    for (const [request, status, code, retryable] of cases) {
      const error = http(request, status);
      assert.deepEqual([error.code, error.retryable], [code, retryable], `${request} ${status}`);
    }
  });

  test('the body decides where the status does not: a content policy verdict, a timeout type', () => {
    const flagged = http('submit', 422, { detail: [{ type: 'content_policy_violation', msg: 'flagged' }] });
    assert.deepEqual(
      [flagged.code, flagged.retryable, flagged.message],
      ['content_policy', false, 'fal submit failed with HTTP 422: flagged'],
    );
    const startup = http('result', 503, { detail: 'no runner in time', error_type: 'startup_timeout' });
    assert.equal(startup.code, 'timeout');
    const byHeader = http('result', 503, { detail: 'slow' }, { 'x-fal-error-type': 'request_timeout' });
    assert.equal(byHeader.code, 'timeout');
    const html = classifyFalHttpFailure({
      request: 'status',
      status: 502,
      headers: new Headers(),
      body: '<html>Bad Gateway</html>',
    });
    assert.match(html.message, /HTTP 502: <html>Bad Gateway/);
  });

  test('429 and 503 carry the Retry-After delay', () => {
    const limited = http('submit', 429, {}, { 'retry-after': '2' });
    assert.deepEqual([limited.code, limited.retryable, limited.retryAfterMs], ['rate_limited', true, 2_000]);
    assert.equal(http('status', 503, {}, { 'retry-after': '4' }).retryAfterMs, 4_000);
  });

  test('fetch failures: timeouts, refused and cut connections, and the unrecognised', async () => {
    const refused = await fetch('http://127.0.0.1:1/').catch((error: unknown) => error);
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    const socketError = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
    const cases: [unknown, string, boolean][] = [
      [timeout, 'timeout', true],
      [refused, 'provider_unavailable', true],
      [new TypeError('terminated', { cause: socketError }), 'provider_unavailable', true],
      [new RangeError('bug'), 'internal', false],
    ];
    for (const [thrown, code, retryable] of cases) {
      const error = classifyFalFetchError(thrown);
      assert.deepEqual([error.code, error.retryable], [code, retryable], String(thrown));
    }
  });

  test('requests are followed under the model’s app, without the endpoint’s own path', () => {
    assert.equal(falAppOf('fal-ai/flux/dev'), 'fal-ai/flux');
    assert.equal(falAppOf('fal-ai/flux/schnell'), 'fal-ai/flux');
    assert.equal(falAppOf('fal-ai/fast-sdxl'), 'fal-ai/fast-sdxl');
  });
});
