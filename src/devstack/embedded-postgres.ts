import pg from 'pg';
import type { Config } from '../config/index.js';
import { ensureDatabase, initCluster, spawnPostgres, waitForPostgres } from './postgres-server.js';
import { stopChild } from './child-lifetime.js';

export interface EmbeddedPostgres {
  stop(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Starts the PostgreSQL server that holds the job table when no DATABASE_URL is given: a real server
 * (the same as production's, so LISTEN/NOTIFY and every other process — `npm run users`, a separate
 * `npm run api` — share it), with its cluster in `.data/postgres`, created on first start.
 */
export async function startEmbeddedPostgres(
  { url, embedded: { dataDir, port } }: Config['database'] & { embedded: object },
  log: (line: string) => void,
): Promise<EmbeddedPostgres> {
  if (await answers(url)) {
    // Otherwise the new server fails on the port while the wait for it connects to the old one.
    throw new Error(
      `a PostgreSQL already answers at ${url} (another Kiln, or one left by a killed run: stop it, or set DATABASE_URL)`,
    );
  }
  log(`starting PostgreSQL on 127.0.0.1:${port} (data in ${dataDir})`);
  await initCluster(dataDir);
  const { child, stderr } = await spawnPostgres({ dataDir, port });
  try {
    await waitForPostgres(port, child, stderr);
    await ensureDatabase(port, new URL(url).pathname.slice(1));
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { stop: () => stopChild(child) };
}

/**
 * For a one-off command (`npm run users`) on the embedded default: the server `npm start` runs if it
 * is up, otherwise one started on the same cluster for the command's length. Returns its stop.
 */
export async function embeddedPostgresForCommand(
  database: Config['database'],
  log: (line: string) => void,
): Promise<() => Promise<void>> {
  const { embedded } = database;
  if (!embedded || (await answers(database.url))) return () => Promise.resolve();
  const server = await startEmbeddedPostgres({ ...database, embedded }, log);
  return () => server.stop();
}
