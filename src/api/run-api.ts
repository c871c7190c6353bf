import type { Config } from '../config/index.js';
import { openDatabase } from '../db/database.js';
import { isDatabaseUnavailable } from '../db/database-errors.js';
import { migrateToLatest } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { startObservability } from '../observability/process-observability.js';
import { tracedObjectStore } from '../observability/traced-object-store.js';
import type { ProcessTracing } from '../observability/tracing.js';
import { configuredProviders } from '../providers/configured-providers.js';
import { createObjectStore } from '../storage/create-object-store.js';
import { postgresHint, temporalHint } from '../process/dependency-names.js';
import { waitUntilReachable } from '../process/wait-until-reachable.js';
import { connectTemporalClient, warnIfPayloadsInPlaintext } from '../temporal-client.js';
import { startApiServer } from './api-server.js';

/** The HTTP and WebSocket API against the Temporal, Postgres and storage `config` names, until SIGTERM. */
export async function runApi(config: Config, tracing: ProcessTracing): Promise<void> {
  const logger = createLogger(config.logLevel, 'api');
  warnIfPayloadsInPlaintext(config.temporal, logger);
  const database = openDatabase(config.database);
  await waitUntilReachable('PostgreSQL', () => migrateToLatest(database.db), {
    logger,
    isUnreachable: isDatabaseUnavailable,
    hint: postgresHint(config.database),
  });
  const observability = startObservability(config, database.db, logger);
  // At start, every failure to connect is the server being away (or not up yet): wait for it.
  const temporal = await waitUntilReachable('Temporal', () => connectTemporalClient(config.temporal), {
    logger,
    isUnreachable: () => true,
    hint: temporalHint(config.temporal),
  });
  const server = await startApiServer({
    config,
    database,
    temporal,
    store: tracedObjectStore(createObjectStore(config.storage)),
    providers: configuredProviders(config),
    logger,
  });
  logger.info({ url: server.url }, 'api listening');
  const shutdown = async () => {
    await server.close();
    await observability.stop();
    await temporal.connection.close();
    await database.close();
    await tracing.stop();
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
}
