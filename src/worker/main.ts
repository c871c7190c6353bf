import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { connectTemporalClient } from '../temporal-client.js';
import { createKilnWorker } from './create-worker.js';
import { ensureRetentionSchedule } from './retention-schedule.js';
import { workerDependencies } from './worker-dependencies.js';

/** `npm run worker`: one worker process against the Temporal, Postgres and storage in the environment. */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, 'worker');
  const database = await openDatabase(config.database);
  await migrateToLatest(database.db);
  const worker = await createKilnWorker(config, workerDependencies(config, database, logger));
  const client = await connectTemporalClient(config.temporal);
  await ensureRetentionSchedule(client, config);
  await client.connection.close();
  logger.info({ taskQueue: config.temporal.taskQueue }, 'worker polling');
  // run() resolves after SIGINT/SIGTERM once in-flight activities are done or out of grace time.
  await worker.run();
  await worker.connection.close();
  await database.close();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
