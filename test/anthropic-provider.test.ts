import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { ServerMessage } from '../src/api/job-stream.js';
import { applyTextUpdate, NO_TEXT } from '../src/client/text-updates.js';
import { ConfigError, DEFAULT_ANTHROPIC_TEXT_MODELS, loadConfig } from '../src/config/index.js';
import type { StreamedText } from '../src/events/text-stream.js';
import { FailureCode, isTerminal } from '../src/jobs/job.js';
import {
  createAnthropicTextProvider,
  type AnthropicTextProviderOptions,
} from '../src/providers/anthropic-text-provider.js';
import { ProviderError } from '../src/providers/provider-error.js';
import {
  startFakeAnthropicServer,
  type FakeAnthropicServer,
  type FakeMessagesBehaviour,
} from './fakes/anthropic-messages-server.js';
import {
  apiFetch,
  getJob,
  openStream,
  pollUntilDone,
  submit,
  type ApiTarget,
} from './harness/job-watcher.js';
import { startApi, startWorker } from './harness/kiln-processes.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

const MODEL = 'claude-haiku-5-5';

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A port nothing listens on: taken from the kernel, then let go. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the Anthropic text adapter', () => {
  let fake: FakeAnthropicServer;
  const input = { prompt: 'adapter', model: MODEL, maxTokens: 64 };

  before(async () => {
    fake = await startFakeAnthropicServer();
  });
  after(() => fake.close());

  const provider = (options: Partial<AnthropicTextProviderOptions> = {}) =>
    createAnthropicTextProvider({
      apiKey: fake.apiKey,
      baseURL: fake.url,
      timeoutMs: 10_000,
      models: [MODEL],
      ...options,
    });
  const run = (target = provider(), signal = new AbortController().signal) => {
    const deltas: string[] = [];
    const result = target.generateText(input, { signal, onDelta: (delta) => deltas.push(delta) });
    return { deltas, result };
  };
  /** The ProviderError (or whatever else) a call rejects with. */
  const failureOf = async (target = provider(), signal?: AbortSignal) =>
    run(target, signal).result.then(
      () => assert.fail('the call succeeded'),
      (error: unknown) => error,
    );

  test('streams every text delta in order; they add up to the text, returned with usage, quota and request id', async () => {
    const { deltas, result } = run();
    const generated = await result;
    assert.equal(generated.text, fake.replyFor('adapter'));
    assert.equal(deltas.join(''), generated.text);
    assert.ok(deltas.length > 3, `${deltas.length} deltas`);
    const billed = fake.usage.at(-1);
    assert.deepEqual(generated.usage, {
      inputTokens: billed?.input_tokens,
      outputTokens: billed?.output_tokens,
    });
    assert.equal(billed?.output_tokens, deltas.length, "message_delta's count, not message_start's");
    assert.equal(generated.requestId, fake.lastRequestId());
    assert.equal(generated.quota?.limit, 4000);
    assert.equal(generated.quota?.remaining, 4000 - fake.requests.length);
    assert.ok(generated.quota.resetInMs > 50_000 && generated.quota.resetInMs <= 60_000);
  });

  test("sends a streamed Messages API request with the job's model, prompt and token limit", async () => {
    await run().result;
    assert.deepEqual(fake.requests.at(-1), {
      model: MODEL,
      max_tokens: 64,
      messages: [{ role: 'user', content: 'adapter' }],
      stream: true,
    });
    const headers = fake.headers.at(-1);
    assert.ok(headers?.['anthropic-version'], 'the API version is named');
    assert.equal(headers['x-stainless-retry-count'], '0');
  });

  test('classifies each failure once, into its code', async () => {
    const cases: [FakeMessagesBehaviour, FailureCode, boolean][] = [
      [{ kind: 'error', status: 529, type: 'overloaded_error' }, FailureCode.providerUnavailable, true],
      [{ kind: 'error', status: 500, type: 'api_error' }, FailureCode.providerUnavailable, true],
      [{ kind: 'error', status: 504, type: 'timeout_error' }, FailureCode.timeout, true],
      [{ kind: 'proxy_error', status: 502 }, FailureCode.providerUnavailable, true],
      [{ kind: 'error', status: 429, type: 'rate_limit_error' }, FailureCode.rateLimited, true],
      // A monthly spending cap answers like a rate limit, but nothing passes until someone raises it.
      [
        { kind: 'error', status: 429, type: 'rate_limit_error', errorCode: 'enforced_spend_limit_reached' },
        FailureCode.rateLimited,
        false,
      ],
      [{ kind: 'error', status: 400, type: 'invalid_request_error' }, FailureCode.invalidRequest, false],
      [{ kind: 'error', status: 413, type: 'request_too_large' }, FailureCode.invalidRequest, false],
      [{ kind: 'error', status: 401, type: 'authentication_error' }, FailureCode.authentication, false],
      [{ kind: 'error', status: 403, type: 'permission_error' }, FailureCode.authentication, false],
      [{ kind: 'error', status: 402, type: 'billing_error' }, FailureCode.authentication, false],
      // Inside a stream already open: the overload Anthropic reports as an error event.
      [{ kind: 'stream_error', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      [{ kind: 'stream_error', afterTokens: 0, type: 'api_error' }, FailureCode.providerUnavailable, true],
      [{ kind: 'cut', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      // A clean end of the body before message_stop: the reply is cut short, not complete.
      [{ kind: 'ends_early', afterTokens: 2 }, FailureCode.providerUnavailable, true],
      [{ kind: 'refusal', category: 'cyber' }, FailureCode.contentPolicy, false],
      [{ kind: 'empty' }, FailureCode.invalidOutput, true],
    ];
    for (const [behaviour, code, retryable] of cases) {
      fake.queueBehaviour(behaviour);
      const error = await failureOf();
      const name = JSON.stringify(behaviour);
      assert.ok(error instanceof ProviderError, `${name}: ${String(error)}`);
      assert.deepEqual([error.code, error.retryable], [code, retryable], name);
    }
  });

  test("a 429's retry-after becomes the wait; the failure keeps the id Anthropic gave the request", async () => {
    fake.queueBehaviour({ kind: 'error', status: 429, type: 'rate_limit_error', retryAfterSeconds: 7 });
    const error = await failureOf();
    assert.ok(error instanceof ProviderError);
    assert.equal(error.retryAfterMs, 7000);
    assert.equal(error.requestId, fake.lastRequestId());
    fake.queueBehaviour({ kind: 'stream_error', afterTokens: 1 });
    const midStream = await failureOf();
    assert.ok(midStream instanceof ProviderError);
    assert.equal(midStream.requestId, fake.lastRequestId(), 'an error event keeps its stream’s request id');
  });

  test('a wrong key, an unknown model, a server that is not there and one that never answers', async () => {
    const wrongKey = await failureOf(provider({ apiKey: 'sk-ant-revoked' }));
    assert.ok(wrongKey instanceof ProviderError && wrongKey.code === FailureCode.authentication);
    const unknownModel = provider();
    const missing = await unknownModel
      .generateText(
        { ...input, model: 'gpt-4o' },
        { signal: new AbortController().signal, onDelta: () => {} },
      )
      .catch((error: unknown) => error);
    assert.ok(missing instanceof ProviderError, String(missing));
    assert.deepEqual([missing.code, missing.retryable], [FailureCode.invalidRequest, false]);
    const refused = await failureOf(provider({ baseURL: `http://127.0.0.1:${await closedPort()}` }));
    assert.ok(refused instanceof ProviderError, String(refused));
    assert.deepEqual([refused.code, refused.retryable], [FailureCode.providerUnavailable, true]);
    fake.queueBehaviour({ kind: 'hang' });
    const silent = await failureOf(provider({ timeoutMs: 300 }));
    assert.ok(silent instanceof ProviderError, String(silent));
    assert.deepEqual([silent.code, silent.retryable], [FailureCode.timeout, true]);
  });

  test("an abort ends the request, before the reply or mid-stream, with the abort's own reason", async () => {
    for (const behaviour of [{ kind: 'hang' }, { kind: 'ok', tokenDelayMs: 200 }] as const) {
      fake.queueBehaviour(behaviour);
      const controller = new AbortController();
      const { deltas, result } = run(provider(), controller.signal);
      const index = fake.requests.length;
      await waitFor(() => fake.requests.length > index, 'the request');
      if (behaviour.kind === 'ok') await waitFor(() => deltas.length > 0, 'a first delta');
      const reason = new Error(`canceled during ${behaviour.kind}`);
      controller.abort(reason);
      assert.equal(await result.catch((error: unknown) => error), reason);
      await waitFor(() => fake.closedAt[index] !== undefined, 'the connection to close', 5000);
      assert.notEqual(fake.paid[index], true, 'the message was not streamed to its end');
    }
  });
});

describe('Anthropic configuration', () => {
  test('ANTHROPIC_API_KEY enables it with the default models; the first of ANTHROPIC_TEXT_MODELS is the default', () => {
    assert.equal(loadConfig({}).providers.anthropic, undefined);
    assert.deepEqual(loadConfig({ ANTHROPIC_API_KEY: 'sk-ant-test' }).providers.anthropic, {
      apiKey: 'sk-ant-test',
      baseURL: undefined,
      textModels: [...DEFAULT_ANTHROPIC_TEXT_MODELS],
    });
    const models = loadConfig({ ANTHROPIC_API_KEY: 'k', ANTHROPIC_TEXT_MODELS: 'claude-a, claude-b' });
    assert.deepEqual(models.providers.anthropic?.textModels, ['claude-a', 'claude-b']);
  });

  test('a bad variable stops the start with its name', () => {
    for (const [env, message] of [
      [
        { ANTHROPIC_API_KEY: 'k', ANTHROPIC_BASE_URL: 'api.anthropic.com' },
        /ANTHROPIC_BASE_URL: not an http/,
      ],
      [{ ANTHROPIC_API_KEY: 'k', ANTHROPIC_TEXT_MODELS: 'claude-a,,' }, /ANTHROPIC_TEXT_MODELS/],
      [{ DEFAULT_PROVIDER: 'anthropic' }, /DEFAULT_PROVIDER: anthropic needs ANTHROPIC_API_KEY/],
    ] as const) {
      assert.throws(
        () => loadConfig(env),
        (error) => error instanceof ConfigError && message.test(error.message),
        JSON.stringify(env),
      );
    }
  });
});

/** The text a run of socket messages tells, and whether a reset came before the end. */
function textOf(messages: readonly ServerMessage[]): StreamedText {
  return messages.reduce(
    (text, message) =>
      message.type === 'text' || message.type === 'reset' ? applyTextUpdate(text, message) : text,
    NO_TEXT,
  );
}

describe('text jobs on Anthropic', () => {
  let fake: FakeAnthropicServer;
  let ctx: TestContext;
  let api: ApiTarget;

  before(async () => {
    fake = await startFakeAnthropicServer({ behaviour: { kind: 'ok', tokenDelayMs: 40 } });
    ctx = await createTestContext({
      ANTHROPIC_API_KEY: fake.apiKey,
      ANTHROPIC_BASE_URL: fake.url,
      DEFAULT_PROVIDER: 'anthropic',
      PROVIDER_BACKOFF_INITIAL_MS: '200',
      // These tests are about one job's calls; the shared breaker has its own test.
      BREAKER_FAILURE_THRESHOLD: '1000',
    });
    await startWorker(ctx);
    api = await startApi(ctx);
  });
  after(async () => {
    await ctx.cleanup();
    await fake.close();
  });

  async function submitText(prompt: string): Promise<string> {
    const accepted = await submit(api, { kind: 'text', prompt, params: { maxTokens: 300 } }, randomUUID());
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    return String(accepted.body.id);
  }

  /** Runs a job whose first answers are `answers`, watching it over a socket to its end. */
  async function jobAfter(answers: FakeMessagesBehaviour[], prompt = `anthropic ${randomUUID()}`) {
    for (const answer of answers) fake.queueBehaviour(answer);
    const id = await submitText(prompt);
    const { socket, messages } = await openStream(api);
    socket.send(JSON.stringify({ type: 'subscribe', id }));
    const ended = () => messages.some((m) => m.type === 'job' && isTerminal(m.job.status));
    await waitFor(ended, `job ${id} to end`, 60_000);
    socket.close();
    const calls = fake.requests.filter((request) => request.messages[0]?.content === prompt).length;
    return { id, prompt, messages, calls, job: await getJob(api, id) };
  }

  test('tokens reach a subscriber while the job runs, and the text is the result', async () => {
    const { id, prompt, messages, job } = await jobAfter([]);
    assert.equal(job.status, 'succeeded');
    assert.equal(job.provider, 'anthropic');
    assert.equal(job.model, DEFAULT_ANTHROPIC_TEXT_MODELS[0]);
    assert.equal(fake.requests.at(-1)?.max_tokens, 300);
    assert.deepEqual(textOf(messages), { attempt: 1, text: fake.replyFor(prompt) });
    const storingAt = messages.findIndex((m) => m.type === 'job' && m.job.status === 'storing');
    const piecesBefore = messages.slice(0, storingAt).filter((m) => m.type === 'text' && m.delta !== '');
    assert.ok(piecesBefore.length >= 3, `tokens came in ${piecesBefore.length} messages before storing`);
    const content = await apiFetch(api, `/v1/generations/${id}/content`);
    assert.equal(await content.text(), fake.replyFor(prompt));
  });

  test('an overload mid-stream is retried: subscribers see a reset, then the new attempt whole', async () => {
    const { prompt, messages, calls, job } = await jobAfter([{ kind: 'stream_error', afterTokens: 4 }]);
    assert.deepEqual([job.status, job.attempts, calls], ['succeeded', 2, 2]);
    const resetAt = messages.findIndex((m) => m.type === 'reset');
    assert.ok(resetAt > 0, `no reset in ${JSON.stringify(messages.map((m) => m.type))}`);
    const beforeReset = textOf(messages.slice(0, resetAt));
    assert.equal(beforeReset.attempt, 1);
    assert.ok(beforeReset.text.length > 0 && fake.replyFor(prompt).startsWith(beforeReset.text));
    assert.deepEqual(textOf(messages), { attempt: 2, text: fake.replyFor(prompt) });
  });

  test("a 429 is retried after Anthropic's retry-after, not before", async () => {
    const started = Date.now();
    const limited = { kind: 'error', status: 429, type: 'rate_limit_error', retryAfterSeconds: 2 } as const;
    const { job, calls } = await jobAfter([limited]);
    assert.deepEqual([job.status, calls], ['succeeded', 2]);
    assert.ok(Date.now() - started >= 2000, 'the retry waited for retry-after');
  });

  test('a refusal, a bad request and a revoked key each fail the job at once with their code', async () => {
    const answers: [FakeMessagesBehaviour, FailureCode][] = [
      [{ kind: 'refusal' }, FailureCode.contentPolicy],
      [{ kind: 'error', status: 400, type: 'invalid_request_error' }, FailureCode.invalidRequest],
      [{ kind: 'error', status: 401, type: 'authentication_error' }, FailureCode.authentication],
    ];
    for (const [answer, code] of answers) {
      const { job, calls } = await jobAfter([answer]);
      assert.deepEqual([job.status, job.failure?.code, calls], ['failed', code, 1], answer.kind);
    }
  });

  test('cancel aborts the request mid-stream and ends the job canceled', async () => {
    fake.queueBehaviour({ kind: 'ok', tokenDelayMs: 300 });
    const index = fake.requests.length;
    const id = await submitText(`cancel ${randomUUID()}`);
    await waitFor(
      async () =>
        ((await apiFetch(api, `/v1/generations/${id}/text`).then((r) => r.json())) as StreamedText).text
          .length > 0,
      'some text',
    );
    const canceled = await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' });
    assert.equal(canceled.status, 202);
    assert.equal((await pollUntilDone(api, id)).status, 'canceled');
    await waitFor(() => fake.closedAt[index] !== undefined, 'the request to close', 10_000);
    assert.notEqual(fake.paid[index], true, 'the message was not streamed to its end');
    assert.equal(fake.requests.length, index + 1, 'no second call');
  });
});
