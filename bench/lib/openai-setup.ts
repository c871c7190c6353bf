import {
  startFakeOpenAIImagesServer,
  type FakeOpenAIImagesServer,
  type FakeOpenAIImagesServerOptions,
} from '../../test/fakes/openai-images-server.js';
import type { ApiTarget } from '../../test/harness/job-watcher.js';
import { spawnWorkerProcess, type WorkerProcess } from '../../test/harness/kiln-processes.js';
import type { TestContext } from '../../test/harness/test-context.js';
import { benchContext, spawnApiProcess, type ApiProcess } from './stack.js';

/** Where Kiln's `openai` provider points: one of the OpenAI fakes. */
export interface OpenAIEndpoint {
  url: string;
  apiKey: string;
}

/** A context whose `openai` provider is an endpoint the caller runs, worker processes and an API process. */
export interface KilnBench {
  ctx: TestContext;
  api: ApiProcess;
  workers: WorkerProcess[];
  /** One API target per bench user: load spread over users, as many clients would. */
  users: ApiTarget[];
  stop(): Promise<void>;
}

/** Kiln against the OpenAI images fake. */
export interface OpenAIBench extends KilnBench {
  provider: FakeOpenAIImagesServer;
}

/** Plans whose running cap never binds: only the scenario's provider limits shape the load. */
export const UNCAPPED_PLANS = JSON.stringify({ free: { maxRunning: 5000, weight: 1 } });

/**
 * For scenarios with no worker, where jobs only queue: `openai` is configured (so requests name it) but
 * points nowhere, and neither plans nor the submit rate limit hold anything back.
 */
export const QUEUE_ONLY_ENV: Record<string, string> = {
  OPENAI_API_KEY: 'sk-bench-unused',
  OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
  PLANS: UNCAPPED_PLANS,
  SUBMIT_RATE_PER_MINUTE: '10000000',
  SUBMIT_BURST: '100000',
};

/** A body the OpenAI adapter sends as one non-streaming request (DALL·E 2, 256x256). */
export const openaiBody = (prompt: string) => ({
  kind: 'image',
  provider: 'openai',
  model: 'dall-e-2',
  prompt,
  params: { size: '256x256' },
});

/**
 * Kiln on the bench's servers with its `openai` provider at `endpoint`, which the caller closes.
 * `workers: 0` leaves the jobs queued.
 */
export async function startKilnBench(
  endpoint: OpenAIEndpoint,
  options: { env: Record<string, string>; workers?: number; users?: number },
): Promise<KilnBench> {
  const ctx = await benchContext({
    OPENAI_API_KEY: endpoint.apiKey,
    OPENAI_BASE_URL: endpoint.url,
    DEFAULT_PROVIDER: 'openai',
    // The production default, not the test suite's 3 s: a loaded machine must not look like a dead worker.
    PROVIDER_HEARTBEAT_TIMEOUT_SECONDS: '10',
    PLANS: UNCAPPED_PLANS,
    SUBMIT_RATE_PER_MINUTE: '10000000',
    SUBMIT_BURST: '100000',
    ...options.env,
  });
  const workerEnv = workerProcessEnv();
  const workers = Array.from({ length: options.workers ?? 1 }, () => spawnWorkerProcess(ctx, workerEnv));
  const [api] = await Promise.all([spawnApiProcess(ctx), ...workers.map((worker) => worker.ready)]);
  const users = [{ url: api.url, apiKey: ctx.apiKey }];
  for (let i = 1; i < (options.users ?? 1); i++) {
    users.push({ url: api.url, apiKey: (await ctx.createUser()).apiKey });
  }
  return { ctx, api, workers, users, stop: () => ctx.cleanup() };
}

/**
 * Kiln on the bench's servers against the OpenAI images fake: a fresh one made from `provider`, or
 * `fake`, one the caller shares with the baselines (and closes itself). `workers: 0` leaves the jobs queued.
 */
export async function startOpenAIBench(options: {
  env: Record<string, string>;
  provider?: FakeOpenAIImagesServerOptions;
  fake?: FakeOpenAIImagesServer;
  workers?: number;
  users?: number;
}): Promise<OpenAIBench> {
  const provider = options.fake ?? (await startFakeOpenAIImagesServer(options.provider));
  const kiln = await startKilnBench(provider, options);
  return {
    ...kiln,
    provider,
    stop: async () => {
      await kiln.stop();
      if (!options.fake) await provider.close();
    },
  };
}

/** `KILN_BENCH_WORKER_NODE_OPTIONS` (say `--import ./bench/lib/cpu-profile.mjs`) for profiling. */
export function workerProcessEnv(): Record<string, string> {
  const extra = process.env.KILN_BENCH_WORKER_NODE_OPTIONS;
  return extra ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${extra}`.trim() } : {};
}
