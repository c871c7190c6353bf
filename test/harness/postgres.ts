import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  initCluster,
  postgresUrl,
  spawnPostgres,
  waitForPostgres,
} from '../../src/devstack/postgres-server.js';
import { stopChild } from '../../src/devstack/child-lifetime.js';
import { freePort } from './free-port.js';

/** PostgreSQL's shutdown modes, as `pg_ctl stop -m` names them. */
export type ShutdownMode = 'smart' | 'fast' | 'immediate';

// The postmaster's signal for each mode (what pg_ctl sends).
const SHUTDOWN_SIGNAL: Record<ShutdownMode, NodeJS.Signals> = {
  smart: 'SIGTERM',
  fast: 'SIGINT',
  immediate: 'SIGQUIT',
};

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
  stop(): Promise<void>;
}

/**
 * A throwaway cluster on a free port, tuned for tests (no fsync), removed by `stop()`. Commits are
 * acknowledged before their WAL is written unless `crashSafe`: a server crash (`immediate`) then loses
 * the last ones, which no real deployment allows, so a test that crashes the server asks for it.
 */
export async function startPostgresCluster({ crashSafe = false } = {}): Promise<PostgresCluster> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-pg-'));
  await initCluster(dataDir);
  const port = await freePort();
  const settings: Record<string, string> = { fsync: 'off', full_page_writes: 'off' };
  if (!crashSafe) settings.synchronous_commit = 'off';
  let child: ChildProcess;

  const start = async () => {
    const server = await spawnPostgres({ dataDir, port, settings });
    child = server.child;
    await waitForPostgres(port, child, server.stderr);
  };

  const shutdown = async (mode: ShutdownMode = 'fast') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(SHUTDOWN_SIGNAL[mode]);
    await exited;
  };

  await start();
  return {
    adminUrl: postgresUrl(port, 'postgres'),
    urlFor: (database) => postgresUrl(port, database),
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
