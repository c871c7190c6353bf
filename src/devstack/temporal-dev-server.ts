import { spawn, type ChildProcess } from 'node:child_process';
import { Connection } from '@temporalio/client';
import { KILN_SEARCH_ATTRIBUTES } from '../workflows/search-attributes.js';
import { endsWithThisProcess, stopChild } from './child-lifetime.js';
import { ensureTemporalCli } from './temporal-cli.js';

export interface TemporalDevServerOptions {
  port: number;
  uiPort?: number;
  httpPort?: number;
  /** SQLite file that keeps workflows across restarts; in-memory when unset. */
  dbFile?: string;
  extraArgs?: string[];
  /** Receives the server's log lines (stderr); dropped when unset. */
  onLog?: (line: string) => void;
  /** Receives progress while the CLI is fetched on first use; stderr when unset. */
  installLog?: (line: string) => void;
}

export interface TemporalDevServer {
  address: string;
  uiUrl: string | undefined;
  process: ChildProcess;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;

// The pragmas the TS SDK's own load tests use: SQLite's defaults make every write wait for fsync.
const SQLITE_PRAGMAS = ['--sqlite-pragma', 'journal_mode=WAL', '--sqlite-pragma', 'synchronous=OFF'];

/**
 * Task priority and fairness keys are off by default on server 1.29 (dispatch stays FIFO). Kiln's
 * per-user fairness needs them; one partition keeps dispatch order and the rate limit exact.
 */
export const FAIRNESS_DYNAMIC_CONFIG = [
  'matching.useNewMatcher=true',
  'matching.enableFairness=true',
  'matching.numTaskqueueReadPartitions=1',
  'matching.numTaskqueueWritePartitions=1',
].flatMap((value) => ['--dynamic-config-value', value]);

/** Registered at every start (a no-op when the SQLite file has them): Kiln's workflows set them. */
const SEARCH_ATTRIBUTE_ARGS = KILN_SEARCH_ATTRIBUTES.flatMap(({ name }) => [
  '--search-attribute',
  `${name}=Keyword`,
]);

function buildArgs(options: TemporalDevServerOptions): string[] {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--log-level',
    'warn',
    ...FAIRNESS_DYNAMIC_CONFIG,
    ...SEARCH_ATTRIBUTE_ARGS,
  ];
  if (options.uiPort) args.push('--ui-port', String(options.uiPort));
  else args.push('--headless');
  if (options.httpPort) args.push('--http-port', String(options.httpPort));
  if (options.dbFile) args.push('--db-filename', options.dbFile, ...SQLITE_PRAGMAS);
  return [...args, ...(options.extraArgs ?? [])];
}

async function waitUntilServing(address: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`temporal dev server exited with code ${child.exitCode}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      await connection.workflowService.getSystemInfo({});
      await connection.close();
      return;
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(`temporal dev server at ${address} not ready`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** Starts `temporal server start-dev` (fetched on first use) and resolves once it serves the frontend API. */
export async function startTemporalDevServer(options: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const executable = await ensureTemporalCli(options.installLog);
  const child = spawn(executable, buildArgs(options), { stdio: ['ignore', 'ignore', 'pipe'] });
  endsWithThisProcess(child, 'SIGTERM');
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line) options.onLog?.(line);
  });
  const address = `127.0.0.1:${options.port}`;
  try {
    await waitUntilServing(address, child);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    address,
    uiUrl: options.uiPort ? `http://127.0.0.1:${options.uiPort}` : undefined,
    process: child,
    stop: () => stopChild(child),
  };
}
