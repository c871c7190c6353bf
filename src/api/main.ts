import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { startObservability } from '../observability/process-observability.js';
import { configuredProviders } from '../providers/configured-providers.js';
import { createObjectStore } from '../storage/create-object-store.js';
import { connectTemporalClient } from '../temporal-client.js';
import { startApiServer } from './api-server.js';

/** `npm run api`: the HTTP and WebSocket API against the Temporal, Postgres and storage in the environment. */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, 'api');
  const database = await openDatabase(config.database);
  await migrateToLatest(database.db);
  const observability = startObservability(config, database.db, logger);
  const temporal = await connectTemporalClient(config.temporal);
  const server = await startApiServer({
    config,
    database,
    temporal,
    store: createObjectStore(config.storage),
    providers: configuredProviders(config),
    logger,
  });
  logger.info({ url: server.url }, 'api listening');
  const shutdown = async () => {
    await server.close();
    await observability.stop();
    await temporal.connection.close();
    await database.close();
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
