import { mkdir } from 'node:fs/promises';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/index.js';
import { listenWithPg, type Listener } from './pg-listener.js';
import type { Database } from './schema.js';

/** The job database plus its notification channel, whichever engine is behind it. */
export interface DatabaseHandle {
  db: Kysely<Database>;
  /** Subscribes to a NOTIFY channel. `onReconnect` fires when notifications may have been missed. */
  listen(channel: string, onMessage: (payload: string) => void, onReconnect?: () => void): Promise<Listener>;
  close(): Promise<void>;
}

function openPostgres(url: string): DatabaseHandle {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // A client that loses its server must not crash the process: an idle one reports it on the pool; a
  // checked-out one (a fast restart or failover ends busy sessions with 57P01) on itself, besides
  // failing its query, which is where the caller hears of it.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return {
    db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }),
    listen: (channel, onMessage, onReconnect) => listenWithPg(url, channel, onMessage, onReconnect),
    close: async () => {
      await pool.end();
    },
  };
}

async function openEmbedded(dir: string): Promise<DatabaseHandle> {
  await mkdir(dir, { recursive: true });
  // Loaded only here: importing it costs a process about 80 MB of RSS, which a server on PostgreSQL
  // (the API's 1,000-subscription footprint target, say) must not pay for an engine it never opens.
  const { KyselyPGlite } = await import('kysely-pglite');
  const { client, dialect } = await KyselyPGlite.create(dir);
  const db = new Kysely<Database>({ dialect });
  return {
    db,
    listen: async (channel, onMessage) => {
      const unlisten = await client.listen(channel, onMessage);
      return { close: unlisten };
    },
    close: async () => {
      await db.destroy();
    },
  };
}

/** Opens Postgres at `DATABASE_URL`, or the embedded PGlite database when none is configured. */
export async function openDatabase(config: Config['database']): Promise<DatabaseHandle> {
  return 'url' in config ? openPostgres(config.url) : openEmbedded(config.embeddedDir);
}
