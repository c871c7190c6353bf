import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { startApiServer } from '../src/api/api-server.js';
import { createLogger } from '../src/logger.js';
import { configuredProviders } from '../src/providers/configured-providers.js';
import { assertErrorShape } from './harness/error-shape.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { startOpenAIStack, type OpenAIStack } from './harness/openai-stack.js';

const ADMIN_KEY = randomBytes(32).toString('base64url');

let stack: OpenAIStack;

before(async () => {
  stack = await startOpenAIStack({ ADMIN_API_KEY: ADMIN_KEY });
});
after(() => stack.stop());

/** An API process of the same deployment started again without OPENAI_API_KEY. */
async function apiWithoutOpenAI(): Promise<ApiTarget> {
  const { ctx } = stack;
  const config = { ...ctx.config, providers: { ...ctx.config.providers, openai: undefined } };
  const server = await startApiServer({
    config,
    database: ctx.database,
    temporal: ctx.temporal,
    store: ctx.store,
    providers: configuredProviders(config),
    logger: createLogger('silent', 'test-api'),
  });
  ctx.onCleanup(() => server.close());
  return { url: server.url, apiKey: ADMIN_KEY };
}

async function failedRunOf(id: string): Promise<string> {
  const handle = stack.ctx.temporal.workflow.getHandle(id);
  for (const deadline = Date.now() + 20_000; ;) {
    const { status, runId } = await handle.describe();
    if (status.name === 'FAILED') return runId;
    assert.ok(Date.now() < deadline, `run of ${id} is ${status.name}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('an operator retry of a job whose provider is no longer configured is refused, and nothing changes', async () => {
  stack.provider.queueBehaviour({ kind: 'content_policy' });
  const body = { kind: 'image', prompt: `retry ${randomUUID()}`, provider: 'openai', model: 'dall-e-2' };
  const id = String((await submit(stack.api, body, randomUUID())).body.id);
  const failed = await pollUntilDone(stack.api, id);
  assert.equal(failed.status, 'failed');
  const runId = await failedRunOf(id);

  const retry = { method: 'POST' };
  const refused = await apiFetch(await apiWithoutOpenAI(), `/v1/admin/jobs/${id}/retry`, retry);
  assert.equal(refused.status, 409);
  const error = assertErrorShape(await refused.json());
  assert.equal(error.code, 'provider_not_configured');
  assert.deepEqual(error.details, { provider: 'openai', model: 'dall-e-2' });
  assert.deepEqual(await getJob(stack.api, id), failed);
  assert.equal((await stack.ctx.temporal.workflow.getHandle(id).describe()).runId, runId, 'no new run');

  // Where OpenAI is configured, the same retry goes ahead.
  const admin = { url: stack.api.url, apiKey: ADMIN_KEY };
  assert.equal((await apiFetch(admin, `/v1/admin/jobs/${id}/retry`, retry)).status, 202);
  assert.equal((await pollUntilDone(stack.api, id)).status, 'succeeded');
});
