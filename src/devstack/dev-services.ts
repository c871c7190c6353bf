import path from 'node:path';
import type { Config } from '../config/index.js';
import { exitOnSecondSignal } from './child-lifetime.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { checkPrerequisites } from './prerequisites.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

/** The servers `npm start` runs itself when the environment names none. */
export interface DevServices {
  /** `config` with the dev server's address filled in. */
  config: Config;
  temporalUiUrl: string | undefined;
  /** Stops every server started, the dev server first (it holds no job state of ours). */
  stop(): Promise<void>;
}

/**
 * Without DATABASE_URL, the embedded PostgreSQL; without TEMPORAL_ADDRESS, a Temporal dev server
 * whose SQLite file keeps workflows across restarts. A failed start stops what had started.
 */
export async function startDevServices(config: Config): Promise<DevServices> {
  // Plain lines on stderr: a person starting Kiln reads these, before any server log.
  const log = (line: string) => console.error(line);
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const stopOne of stops.reverse()) await stopOne();
  };
  exitOnSecondSignal();
  await checkPrerequisites(
    { postgres: config.database.embedded !== undefined, temporal: !config.temporal.address, minio: false },
    log,
  );
  try {
    if (config.database.embedded) {
      const postgres = await startEmbeddedPostgres(
        { ...config.database, embedded: config.database.embedded },
        log,
      );
      stops.push(() => postgres.stop());
    }
    if (config.temporal.address) return { config, temporalUiUrl: undefined, stop };
    const { port, uiPort } = config.temporal.devServer;
    log(`starting the Temporal dev server on 127.0.0.1:${port}`);
    const temporal = await startTemporalDevServer({
      port,
      uiPort,
      dbFile: path.join(config.dataDir, 'temporal.sqlite'),
      installLog: log,
    });
    stops.push(() => temporal.stop());
    const withTemporal = { ...config, temporal: { ...config.temporal, address: temporal.address } };
    return { config: withTemporal, temporalUiUrl: temporal.uiUrl, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
