import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import {
  classifyEndedPrediction,
  classifyReplicateFetchError,
  classifyReplicateHttpFailure,
  type ReplicateRequestKind,
} from '../src/providers/classify-replicate-error.js';
import { renderPromptPng } from '../src/providers/png-renderer.js';
import { ProviderError } from '../src/providers/provider-error.js';
import type { ImageGenerationInput, ImageProvider, ProviderCallContext } from '../src/providers/provider.js';
import {
  createReplicateProvider,
  type ReplicateProviderOptions,
} from '../src/providers/replicate-provider.js';
import { type FakeReplicateServer, startFakeReplicateServer } from './fakes/replicate-server.js';

const DURATION_MS = 200;
const SDXL_SAFETY_CHECKER_ERROR = 'NSFW content detected. Try running it again, or try a different prompt.';

/** A call context that records every progress report and accepted task id. */
function recordingContext(overrides: Partial<ProviderCallContext> = {}) {
  const progress: number[] = [];
  const accepted: string[] = [];
  const context: ProviderCallContext = {
    signal: new AbortController().signal,
    onProgress: (percent) => progress.push(percent),
    onTaskAccepted: (taskId) => {
      accepted.push(taskId);
      return Promise.resolve();
    },
    ...overrides,
  };
  return { context, progress, accepted };
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

describe('replicate provider against the fake predictions API', () => {
  let server: FakeReplicateServer;
  let provider: ImageProvider;
  const input: ImageGenerationInput = {
    prompt: 'a kiln at dusk',
    model: 'stability-ai/sdxl',
    size: '512x512',
    seed: 5,
  };

  /** Speaks to the fake directly, as another client of the same account would. */
  async function callApi(path: string, body?: object): Promise<{ id: string; status: string }> {
    const response = await fetch(`${server.url}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: { authorization: `Bearer ${server.apiToken}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    assert.ok(response.ok, `${path}: HTTP ${response.status}`);
    return (await response.json()) as { id: string; status: string };
  }
  const submitDirectly = (width: number) =>
    callApi('/models/stability-ai/sdxl/predictions', {
      input: { prompt: 'elsewhere', width, height: width },
    });

  const providerWith = (overrides: Partial<ReplicateProviderOptions> = {}) =>
    createReplicateProvider({
      apiToken: server.apiToken,
      baseURL: server.url,
      pollIntervalMs: 10,
      requestTimeoutMs: 2_000,
      ...overrides,
    });

  const failureOf = (target: ImageProvider, overrides: Partial<ProviderCallContext> = {}) =>
    providerErrorOf(target.generateImage(input, recordingContext(overrides).context));

  before(async () => {
    server = await startFakeReplicateServer({ retryAfterSeconds: 7 });
    provider = providerWith();
  });
  beforeEach(() => server.setDurationMs(DURATION_MS));
  after(() => server.close());

  test('submits, polls and returns the PNG at the requested size, progress rising to 100', async () => {
    const { context, progress } = recordingContext();
    const submits = server.submits();
    const image = await provider.generateImage(input, context);
    const png = PNG.sync.read(Buffer.from(image.bytes));
    assert.deepEqual([png.width, png.height], [512, 512]);
    const sent = { prompt: input.prompt, width: 512, height: 512, seed: 5 };
    assert.deepEqual(image.bytes, renderPromptPng(sent));
    assert.equal(server.submits(), submits + 1);
    assert.deepEqual(server.predictions().at(-1)?.input, sent);
    assert.equal(progress.at(-1), 100);
    assert.ok(
      progress.some((percent) => percent > 0 && percent < 100),
      `no progress between: ${progress.join()}`,
    );
    assert.ok(progress.every((percent, index) => index === 0 || percent > progress[index - 1]!));
  });

  test('onTaskAccepted gets the prediction id once, before polling starts', async () => {
    const seen: { id: string; running: boolean; progressReports: number }[] = [];
    const recording = recordingContext();
    recording.context.onTaskAccepted = (id) => {
      const status = server.predictions().find((prediction) => prediction.id === id)?.status;
      const running = status === 'starting' || status === 'processing';
      seen.push({ id, running, progressReports: recording.progress.length });
      return Promise.resolve();
    };
    await provider.generateImage(input, recording.context);
    const created = server.predictions().at(-1);
    assert.deepEqual(seen, [{ id: created?.id, running: true, progressReports: 0 }]);
    assert.equal(created?.status, 'succeeded');
  });

  test('resumes an in-flight prediction without submitting again', async () => {
    const { id } = await submitDirectly(256);
    const [submits, polls] = [server.submits(), server.polls()];
    const { context, accepted, progress } = recordingContext({ resumeTaskId: id });
    const image = await provider.generateImage(input, context);
    const png = PNG.sync.read(Buffer.from(image.bytes));
    assert.deepEqual([png.width, png.height], [256, 256], 'the image is the resumed prediction’s');
    assert.equal(server.submits(), submits);
    assert.ok(server.polls() > polls);
    assert.deepEqual(accepted, []);
    assert.equal(progress.at(-1), 100);
  });

  test('resuming an id Replicate does not know falls back to one submit', async () => {
    const submits = server.submits();
    const { context, accepted } = recordingContext({ resumeTaskId: 'unknownpredictionid2345abc' });
    await provider.generateImage(input, context);
    assert.equal(server.submits(), submits + 1);
    assert.deepEqual(accepted, [server.predictions().at(-1)?.id]);
  });

  test('resuming a prediction someone else canceled submits a fresh one', async () => {
    const { id } = await submitDirectly(256);
    assert.equal((await callApi(`/predictions/${id}/cancel`, {})).status, 'canceled');
    const submits = server.submits();
    const { context, accepted } = recordingContext({ resumeTaskId: id });
    await provider.generateImage(input, context);
    assert.equal(server.submits(), submits + 1);
    assert.equal(accepted.length, 1);
    assert.notEqual(accepted[0], id);
  });

  test('resuming a prediction that failed for good fails the same way, without a submit', async () => {
    server.queueBehaviour('fail');
    const { id } = await submitDirectly(256);
    await sleep(DURATION_MS + 50);
    assert.equal((await callApi(`/predictions/${id}`)).status, 'failed');
    const submits = server.submits();
    const error = await failureOf(provider, { resumeTaskId: id });
    assert.deepEqual([error.code, error.retryable], ['invalid_request', false]);
    assert.equal(server.submits(), submits);
  });

  test('an abort mid-poll cancels the prediction and rejects with the abort reason', async () => {
    server.setDurationMs(10_000);
    const controller = new AbortController();
    const reason = new Error('job canceled');
    const { context, accepted } = recordingContext({ signal: controller.signal });
    const cancels = server.cancels();
    const started = Date.now();
    setTimeout(() => controller.abort(reason), 150);
    await assert.rejects(provider.generateImage(input, context), (error) => error === reason);
    assert.ok(Date.now() - started < 1_000, 'rejected promptly');
    assert.equal(server.cancels(), cancels + 1);
    const prediction = server.predictions().find(({ id }) => id === accepted[0]);
    assert.equal(prediction?.status, 'canceled');
  });

  test('an abort that leaves the task to a later attempt does not cancel the prediction', async () => {
    server.setDurationMs(10_000);
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
    const prediction = server.predictions().find(({ id }) => id === accepted[0]);
    assert.ok(prediction && prediction.status !== 'canceled', 'the prediction still runs');
  });

  test('if onTaskAccepted fails, the prediction is canceled and the hook’s error propagates', async () => {
    server.setDurationMs(10_000);
    const hookError = new Error('could not record the task');
    const cancels = server.cancels();
    const context = recordingContext({ onTaskAccepted: () => Promise.reject(hookError) }).context;
    await assert.rejects(provider.generateImage(input, context), (error) => error === hookError);
    assert.equal(server.cancels(), cancels + 1);
    assert.equal(server.predictions().at(-1)?.status, 'canceled');
  });

  test('429 is rate_limited, retryable, with the Retry-After delay, and nothing was accepted', async () => {
    server.queueBehaviour('rate_limited');
    const { context, accepted } = recordingContext();
    const error = await providerErrorOf(provider.generateImage(input, context));
    assert.deepEqual([error.code, error.retryable, error.retryAfterMs], ['rate_limited', true, 7_000]);
    assert.deepEqual(accepted, []);
  });

  test('500 on submit is provider_unavailable and retryable; the next call succeeds', async () => {
    server.queueBehaviour('server_error');
    const error = await failureOf(provider);
    assert.deepEqual([error.code, error.retryable], ['provider_unavailable', true]);
    await provider.generateImage(input, recordingContext().context);
  });

  test('a failed prediction is invalid_request and final, with the model’s error', async () => {
    server.queueBehaviour('fail');
    const error = await failureOf(provider);
    assert.deepEqual([error.code, error.retryable], ['invalid_request', false]);
    assert.match(error.message, /ValueError/);
  });

  test('an NSFW rejection is content_policy and final', async () => {
    server.queueBehaviour('nsfw');
    const error = await failureOf(provider);
    assert.deepEqual([error.code, error.retryable], ['content_policy', false]);
  });

  test('a wrong token, an unknown model and an unreachable API', async () => {
    const cases: [ImageProvider, ImageGenerationInput, string, boolean][] = [
      [providerWith({ apiToken: 'r8_wrong' }), input, 'authentication', false],
      [provider, { ...input, model: 'nobody/nothing' }, 'invalid_request', false],
      [providerWith({ baseURL: 'http://127.0.0.1:1/v1' }), input, 'provider_unavailable', true],
    ];
    for (const [target, request, code, retryable] of cases) {
      const error = await providerErrorOf(target.generateImage(request, recordingContext().context));
      assert.deepEqual([error.code, error.retryable], [code, retryable], code);
    }
  });
});

describe('replicate error classification', () => {
  const http = (request: ReplicateRequestKind, status: number, headers: Record<string, string> = {}) =>
    classifyReplicateHttpFailure({ request, status, headers: new Headers(headers), detail: 'detail' });

  test('maps statuses to codes, by request', () => {
    const cases: [ReplicateRequestKind, number, string, boolean][] = [
      ['submit', 400, 'invalid_request', false],
      ['submit', 404, 'invalid_request', false],
      ['submit', 422, 'invalid_request', false],
      ['submit', 401, 'authentication', false],
      ['poll', 403, 'authentication', false],
      ['poll', 404, 'provider_unavailable', true],
      ['download', 404, 'invalid_output', true],
      ['download', 410, 'invalid_output', true],
      ['submit', 408, 'provider_unavailable', true],
      ['poll', 409, 'provider_unavailable', true],
      ['download', 502, 'provider_unavailable', true],
    ];
    for (const [request, status, code, retryable] of cases) {
      const error = http(request, status);
      assert.deepEqual([error.code, error.retryable], [code, retryable], `${request} ${status}`);
    }
  });

  test('429 and 503 carry the Retry-After delay', () => {
    const limited = http('submit', 429, { 'retry-after': '2' });
    assert.deepEqual([limited.code, limited.retryable, limited.retryAfterMs], ['rate_limited', true, 2_000]);
    assert.equal(http('poll', 503, { 'retry-after': '4' }).retryAfterMs, 4_000);
  });

  test('ended predictions: safety is final, provider trouble retryable, anything else final', () => {
    const cases: ['failed' | 'canceled', unknown, string, boolean][] = [
      ['failed', SDXL_SAFETY_CHECKER_ERROR, 'content_policy', false],
      ['failed', 'The input or output was flagged as sensitive. (E005)', 'content_policy', false],
      ['failed', 'Prediction interrupted; please retry (code: PA)', 'provider_unavailable', true],
      ['failed', 'Internal server error', 'provider_unavailable', true],
      ['failed', 'ValueError: width must be a multiple of 8', 'invalid_request', false],
      ['failed', { detail: 'structured' }, 'invalid_request', false],
      ['canceled', null, 'provider_unavailable', true],
    ];
    for (const [status, message, code, retryable] of cases) {
      const error = classifyEndedPrediction({ id: 'p1', status, error: message });
      assert.deepEqual([error.code, error.retryable], [code, retryable], String(message));
    }
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
      const error = classifyReplicateFetchError(thrown);
      assert.deepEqual([error.code, error.retryable], [code, retryable], String(thrown));
    }
    const classified = new ProviderError('rate_limited', 'already', true, 5);
    assert.equal(classifyReplicateFetchError(classified), classified);
  });
});
