import {
  startFakeOpenAIImagesServer,
  type FakeOpenAIImagesServer,
  type FakeOpenAIImagesServerOptions,
} from '../fakes/openai-images-server.js';
import type { ApiTarget } from './job-watcher.js';
import { startApi, startWorker } from './kiln-processes.js';
import { createTestContext, type TestContext } from './test-context.js';

/** A context whose `openai` provider is the fake server, with an in-process worker and API. */
export interface OpenAIStack {
  provider: FakeOpenAIImagesServer;
  ctx: TestContext;
  api: ApiTarget;
  stop(): Promise<void>;
}

export async function startOpenAIStack(
  env: Record<string, string> = {},
  providerOptions: FakeOpenAIImagesServerOptions = {},
): Promise<OpenAIStack> {
  const provider = await startFakeOpenAIImagesServer(providerOptions);
  const ctx = await createTestContext({
    OPENAI_API_KEY: provider.apiKey,
    OPENAI_BASE_URL: provider.url,
    ...env,
  });
  await startWorker(ctx);
  const api = await startApi(ctx);
  return {
    provider,
    ctx,
    api,
    stop: async () => {
      await ctx.cleanup();
      await provider.close();
    },
  };
}
