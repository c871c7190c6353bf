import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '../../src/api/api-server.js';
import { stopChild } from '../../src/devstack/child-lifetime.js';
import { createLogger } from '../../src/logger.js';
import { configuredProviders } from '../../src/providers/configured-providers.js';
import type { Config } from '../../src/config/index.js';
import { createKilnWorker, type KilnWorkerOptions } from '../../src/worker/create-worker.js';
import { workerDependencies } from '../../src/worker/worker-dependencies.js';
import type { ApiTarget } from './job-watcher.js';
import type { TestContext } from './test-context.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Runs a worker inside the test process; stopped at the context's cleanup. `config` and `options` make
 * it another build than the context's: another deployment version, another workflow bundle.
 */
export async function startWorker(
  ctx: TestContext,
  { config = ctx.config, options }: { config?: Config; options?: KilnWorkerOptions } = {},
): Promise<{ stop(): Promise<void> }> {
  const logger = createLogger(config.logLevel, 'test-worker');
  const worker = await createKilnWorker(
    config,
    workerDependencies(config, ctx.database, logger),
    ctx.database,
    options,
  );
  const running = worker.run();
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      worker.shutdown();
      await running;
      await worker.connection.close();
    })();
    return stopped;
  };
  ctx.onCleanup(stop);
  return { stop };
}

/** An API started by `startApi`; `close()` is its graceful shutdown, also run at cleanup. */
export interface RunningApi extends ApiTarget {
  close(): Promise<void>;
}

/** Runs the API inside the test process, on a free port unless given one; closed at the context's cleanup. */
export async function startApi(ctx: TestContext, { port }: { port?: number } = {}): Promise<RunningApi> {
  const config = port === undefined ? ctx.config : { ...ctx.config, http: { ...ctx.config.http, port } };
  const server = await startApiServer({
    config,
    database: ctx.database,
    temporal: ctx.temporal,
    store: ctx.store,
    providers: configuredProviders(ctx.config),
    logger: createLogger(ctx.config.logLevel, 'test-api'),
  });
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= server.close());
  ctx.onCleanup(close);
  return { url: server.url, apiKey: ctx.apiKey, close };
}

export interface KilnProcess {
  child: ChildProcess;
  /** Resolves once the process serves (the worker polls its task queue, the API listens). */
  ready: Promise<void>;
  /** Everything it printed so far. */
  output(): string;
  stop(): Promise<void>;
}

export type WorkerProcess = KilnProcess;

const PROCESSES = {
  worker: { entry: 'src/worker/main.ts', readyLine: 'worker polling' },
  api: { entry: 'src/api/main.ts', readyLine: 'api listening' },
} as const;

/** `npm run worker` or `npm run api` as a real child process, for tests that kill or starve it. */
export function spawnKilnProcess(
  ctx: TestContext,
  kind: keyof typeof PROCESSES,
  extraEnv: Record<string, string> = {},
): KilnProcess {
  const { entry, readyLine } = PROCESSES[kind];
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...ctx.env, LOG_LEVEL: 'info', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(readyLine)) resolve();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => reject(new Error(`${kind} exited with ${code}: ${output.slice(-2000)}`)));
  });
  ready.catch(() => undefined);
  const stop = () => stopChild(child);
  ctx.onCleanup(stop);
  return { child, ready, output: () => output, stop };
}

export function spawnWorkerProcess(ctx: TestContext, extraEnv: Record<string, string> = {}): WorkerProcess {
  return spawnKilnProcess(ctx, 'worker', extraEnv);
}
