import type { Config } from '../config/index.js';
import { ensureDatabase, initCluster, spawnPostgres, waitForPostgres } from './postgres-server.js';
import { stopChild } from './temporal-dev-server.js';

export interface EmbeddedPostgres {
  stop(): Promise<void>;
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
