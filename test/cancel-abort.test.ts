import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startFakeOpenAIImagesServer, type FakeOpenAIImagesServer } from './fakes/openai-images-server.js';
import { apiFetch, getJob, pollUntilDone, submit, type ApiTarget } from './harness/job-watcher.js';
import { spawnWorkerProcess, startApi } from './harness/kiln-processes.js';
import { startTcpProxy, type TcpProxy } from './harness/tcp-proxy.js';
import { createTestContext, type TestContext } from './harness/test-context.js';

async function waitFor(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a cancel aborts the provider request without waiting for a heartbeat', () => {
  let provider: FakeOpenAIImagesServer;
  let ctx: TestContext;
  let api: ApiTarget;
  let link: TcpProxy;

  before(async () => {
    provider = await startFakeOpenAIImagesServer();
    ctx = await createTestContext({
      OPENAI_API_KEY: provider.apiKey,
      OPENAI_BASE_URL: provider.url,
      // Long enough that nothing but the cancel closes the request while the link is stalled: the
      // attempt cannot time out, and no heartbeat can carry the cancel.
      PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: '20',
    });
    api = await startApi(ctx);
    // The worker reaches Temporal only through a link the test can stall.
    link = await startTcpProxy(ctx.config.temporal.address ?? '');
    await spawnWorkerProcess(ctx, { TEMPORAL_ADDRESS: link.address }).ready;
  });
  after(async () => {
    await ctx.cleanup();
    await link.close();
    await provider.close();
  });

  test('the request closes while no heartbeat can reach Temporal, and the job then ends canceled', async () => {
    provider.queueBehaviour({ kind: 'hang' });
    const body = {
      kind: 'image',
      prompt: `abort ${randomUUID()}`,
      provider: 'openai',
      model: 'dall-e-2',
      params: { size: '256x256' },
    };
    const id = String((await submit(api, body, randomUUID())).body.id);
    await waitFor(() => provider.openRequests() === 1);
    const index = provider.requests.length - 1;
    // From here the activity cannot hear of the cancel from Temporal: only the announcement reaches it.
    link.freeze();
    assert.equal((await apiFetch(api, `/v1/generations/${id}/cancel`, { method: 'POST' })).status, 202);
    await waitFor(() => provider.answeredAt[index] !== undefined, 15_000);
    link.thaw();
    assert.equal((await pollUntilDone(api, id, 60_000)).status, 'canceled');
    assert.equal(provider.requests.length, index + 1, 'no second call');
    assert.equal((await getJob(api, id)).attempts, 1);
  });
});
