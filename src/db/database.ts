import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/index.js';
import { listenWithPg, type Listener } from './pg-listener.js';
import type { Database } from './schema.js';

/** The job database plus its notification channel. */
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

/** Opens the PostgreSQL database at `config.url` (the embedded server's, when none is configured). */
export function openDatabase(config: Config['database']): DatabaseHandle {
  return openPostgres(config.url);
}
