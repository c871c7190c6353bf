import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { endsWithThisProcess, stopChild } from '../../src/devstack/child-lifetime.js';
import type { FakeOpenAIImagesServer } from '../../test/fakes/openai-images-server.js';

const BASELINES_DIR = fileURLToPath(new URL('../baselines/', import.meta.url));

/** A baseline's process, run through tsx as Kiln's `npm run api` and `npm run worker` are. */
export interface BaselineProcess {
  child: ChildProcess;
  /** What its ready line carried after the marker: the API's URL; empty for a worker. */
  announced: string;
  stop(): Promise<void>;
}

/** Spawns `bench/baselines/<file>` and resolves once it prints `ready` (and what follows on that line). */
export async function spawnBaseline(
  file: string,
  ready: string,
  env: Record<string, string>,
): Promise<BaselineProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `${BASELINES_DIR}${file}`], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A baseline whose sibling failed to start, or a bench that crashed, must not leave it running.
  endsWithThisProcess(child, 'SIGTERM');
  let output = '';
  const announced = await new Promise<string>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
      const line = new RegExp(`${ready} ?(\\S*)`).exec(output);
      if (line) resolve(line[1]!);
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}: ${output.slice(-2000)}`)));
  });
  // Keep reading its output so the pipe never fills, without keeping it.
  child.stdout?.removeAllListeners('data').resume();
  child.stderr?.removeAllListeners('data').resume();
  return { child, announced, stop: () => stopChild(child) };
}

/** The `bare` baseline's API process and, unless left out, its worker, on a task queue of their own. */
export interface BareStack {
  url: string;
  taskQueue: string;
  api: BaselineProcess;
  worker?: BaselineProcess;
  stop(): Promise<void>;
}

function baselineEnv(provider: FakeOpenAIImagesServer, taskQueue = ''): Record<string, string> {
  return {
    BASELINE_TEMPORAL_ADDRESS: process.env.KILN_TEST_TEMPORAL_ADDRESS!,
    BASELINE_TASK_QUEUE: taskQueue,
    BASELINE_PROVIDER_URL: provider.url,
    BASELINE_PROVIDER_KEY: provider.apiKey,
  };
}

export async function startBare(
  provider: FakeOpenAIImagesServer,
  { worker }: { worker: boolean },
): Promise<BareStack> {
  const taskQueue = `bare-${randomBytes(4).toString('hex')}`;
  const env = baselineEnv(provider, taskQueue);
  const [api, workerProcess] = await Promise.all([
    spawnBaseline('bare-api.ts', 'bare api listening', env),
    worker ? spawnBaseline('bare-worker.ts', 'bare worker polling', env) : undefined,
  ]);
  return {
    url: api.announced,
    taskQueue,
    api,
    ...(workerProcess ? { worker: workerProcess } : {}),
    stop: async () => {
      await Promise.all([api.stop(), workerProcess?.stop()]);
    },
  };
}

export function startDirect(provider: FakeOpenAIImagesServer): Promise<BaselineProcess> {
  return spawnBaseline('direct-api.ts', 'direct api listening', baselineEnv(provider));
}
