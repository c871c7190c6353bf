import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../../src/devstack/child-lifetime.js';
import { startSharedStack, type SharedStack } from '../../test/harness/shared-stack.js';
import { createTestContext, type TestContext } from '../../test/harness/test-context.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Where the Temporal dev server keeps its state: in memory (as `npm test`), or a SQLite file in WAL mode. */
export type TemporalStore = 'memory' | 'file';

/**
 * The servers `npm test` runs (PostgreSQL, the Temporal dev server, MinIO), started by the same harness.
 * `file` gives the dev server a SQLite file, which `startTemporalDevServer` opens with
 * `journal_mode=WAL` and `synchronous=OFF`; `memory` is the test suite's in-memory SQLite.
 */
export async function startBenchStack(
  store: TemporalStore,
  log: (line: string) => void,
): Promise<SharedStack> {
  const temporalDir = store === 'file' ? await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-temporal-')) : '';
  const stack = await startSharedStack(
    log,
    store === 'file' ? { temporalDbFile: path.join(temporalDir, 'temporal.sqlite') } : {},
  );
  // Test contexts find the servers here instead of starting a stack per context.
  Object.assign(process.env, stack.env);
  return {
    ...stack,
    stop: async () => {
      await stack.stop();
      if (temporalDir) await rm(temporalDir, { recursive: true, force: true });
    },
  };
}

/** A test context on the bench's servers: its own database, task queue and bucket. */
export function benchContext(overrides: Record<string, string>): Promise<TestContext> {
  return createTestContext({ LOG_LEVEL: 'warn', ...overrides });
}

/**
 * Compiles `src` as `npm run build` does, into node_modules/.cache (ignored by git, and under the
 * project's node_modules so the output resolves its packages); returns the API entry point.
 */
export async function buildForProduction(): Promise<string> {
  const outDir = path.join(REPO_ROOT, 'node_modules', '.cache', 'kiln-bench-dist');
  const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await new Promise<void>((resolve, reject) => {
    // Type errors elsewhere in a tree being edited still emit JavaScript; only a crash stops the build.
    const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', outDir], {
      cwd: REPO_ROOT,
      stdio: 'ignore',
    });
    child.once('exit', (code) =>
      code === 0 || code === 2 ? resolve() : reject(new Error(`tsc exited ${code}`)),
    );
  });
  return path.join(outDir, 'api', 'main.js');
}

/** Resident set size of a process, from /proc (Linux). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}

export interface ApiProcess {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/**
 * `npm run api` as a real child process (with `KILN_BENCH_API_NODE_OPTIONS` added to NODE_OPTIONS, for
 * a profiling `--import` and the like) (the harness's `startApi` runs the API inside the caller, where
 * the load generator would share its event loop). Resolves once it listens; stopped at the context's cleanup.
 */
export async function spawnApiProcess(
  ctx: TestContext,
  extraEnv: Record<string, string> = {},
  /** What node runs: by default the sources through tsx, as `npm run api` does. */
  entry: string[] = ['--import', 'tsx', 'src/api/main.ts'],
): Promise<ApiProcess> {
  const profiling = process.env.KILN_BENCH_API_NODE_OPTIONS;
  const child = spawn(process.execPath, entry, {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      ...ctx.env,
      LOG_LEVEL: 'info',
      ...(profiling ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${profiling}`.trim() } : {}),
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stop = () => stopChild(child);
  ctx.onCleanup(stop);
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
      const listening = /"url":"(http:[^"]+)".*"msg":"api listening"/.exec(output);
      if (listening) resolve(listening[1]!);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    });
    child.once('exit', (code) => reject(new Error(`api exited with ${code}: ${output.slice(-2000)}`)));
  });
  // Keep reading its output so the pipe never fills, without keeping it.
  child.stdout?.removeAllListeners('data').resume();
  child.stderr?.removeAllListeners('data').resume();
  return { child, url, stop };
}
