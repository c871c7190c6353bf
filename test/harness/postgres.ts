import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { stopChild } from '../../src/devstack/temporal-dev-server.js';
import { freePort } from './free-port.js';

const execFileAsync = promisify(execFile);

/** PostgreSQL's shutdown modes, as `pg_ctl stop -m` names them. */
export type ShutdownMode = 'smart' | 'fast' | 'immediate';

// The postmaster's signal for each mode (what pg_ctl sends).
const SHUTDOWN_SIGNAL: Record<ShutdownMode, NodeJS.Signals> = {
  smart: 'SIGTERM',
  fast: 'SIGINT',
  immediate: 'SIGQUIT',
};
const SUPERUSER = 'kiln';

export interface PostgresCluster {
  /** Connection URL of the `postgres` database, for creating per-test databases. */
  adminUrl: string;
  urlFor(database: string): string;
  /**
   * Stops and starts the server on the same port and data. `fast` (the default, what a failover or a
   * managed database's maintenance does) ends busy sessions with 57P01; `smart` waits for them to leave;
   * `immediate` is a crash.
   */
  restart(mode?: ShutdownMode): Promise<void>;
  /** Stops the server and leaves it down until `start()`. */
  shutdown(mode?: ShutdownMode): Promise<void>;
  start(): Promise<void>;
  /** Freezes the server and every backend (SIGSTOP): queries hang, as on a stalled database host. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

async function findBinDir(): Promise<string> {
  const candidates = [
    '/usr/lib/postgresql/17/bin',
    '/usr/lib/postgresql/16/bin',
    '/usr/lib/postgresql/15/bin',
  ];
  for (const dir of candidates) {
    try {
      await access(path.join(dir, 'initdb'));
      return dir;
    } catch {
      // try the next version
    }
  }
  throw new Error('no PostgreSQL server binaries found: install Debian package `postgresql`');
}

/** initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user. */
async function runAsIds(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const { stdout: uid } = await execFileAsync('id', ['-u', 'postgres']);
  const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
  return { uid: Number(uid), gid: Number(gid) };
}

async function waitForConnection(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited: ${stderr()}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`postgres not ready: ${stderr()}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The postmaster and its children (backends, background workers) all get `signal`. */
async function signalServerProcesses(postmaster: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const { stdout } = await execFileAsync('pgrep', ['-P', String(postmaster.pid)]).catch(() => ({
    stdout: '',
  }));
  const pids = [postmaster.pid, ...stdout.split('\n').filter(Boolean).map(Number)];
  for (const pid of pids) if (pid) process.kill(pid, signal);
}

/**
 * A throwaway cluster on a free port, tuned for tests (no fsync), removed by `stop()`. Commits are
 * acknowledged before their WAL is written unless `crashSafe`: a server crash (`immediate`) then loses
 * the last ones, which no real deployment allows, so a test that crashes the server asks for it.
 */
export async function startPostgresCluster({ crashSafe = false } = {}): Promise<PostgresCluster> {
  const binDir = await findBinDir();
  const ids = await runAsIds();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-pg-'));
  if (ids.uid !== undefined) await chown(dataDir, ids.uid, ids.gid ?? ids.uid);
  await execFileAsync(
    path.join(binDir, 'initdb'),
    ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--no-sync'],
    ids,
  );
  const port = await freePort();
  const adminUrl = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
  let child: ChildProcess;

  const start = async () => {
    let stderr = '';
    const args = ['-D', dataDir, '-p', String(port), '-k', dataDir, '-c', 'listen_addresses=127.0.0.1'];
    const tuning = ['-c', 'fsync=off', '-c', 'full_page_writes=off'];
    if (!crashSafe) tuning.push('-c', 'synchronous_commit=off');
    child = spawn(path.join(binDir, 'postgres'), [...args, ...tuning, '-c', 'max_connections=300'], {
      ...ids,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    await waitForConnection(adminUrl, child, () => stderr);
  };

  const shutdown = async (mode: ShutdownMode = 'fast') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(SHUTDOWN_SIGNAL[mode]);
    await exited;
  };

  await start();
  return {
    adminUrl,
    urlFor: (database) => `postgres://${SUPERUSER}@127.0.0.1:${port}/${database}`,
    pause: () => signalServerProcesses(child, 'SIGSTOP'),
    resume: () => signalServerProcesses(child, 'SIGCONT'),
    restart: async (mode) => {
      await shutdown(mode);
      await start();
    },
    shutdown,
    start,
    stop: async () => {
      await stopChild(child);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
