import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { startObservability } from '../observability/process-observability.js';
import { installTemporalRuntime } from '../observability/temporal-runtime.js';
import { connectTemporalClient } from '../temporal-client.js';
import { createKilnWorker } from './create-worker.js';
import { ensureSchedules } from './schedules.js';
import { workerDependencies } from './worker-dependencies.js';
import { checkWorkerHealth } from './worker-health.js';
import { startWorkerHttpServer } from './worker-http-server.js';

/** `npm run worker`: one worker process against the Temporal, Postgres and storage in the environment. */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel, 'worker');
  await installTemporalRuntime(logger);
  const database = await openDatabase(config.database);
  await migrateToLatest(database.db);
  const observability = startObservability(config, database.db, logger);
  const worker = await createKilnWorker(config, workerDependencies(config, database, logger));
  const http = await startWorkerHttpServer(
    config.observability.workerHttp,
    () => checkWorkerHealth(worker, database.db),
    logger,
  );
  const client = await connectTemporalClient(config.temporal);
  await ensureSchedules(client, config);
  await client.connection.close();
  logger.info({ taskQueue: config.temporal.taskQueue, httpUrl: http.url }, 'worker polling');
  // run() resolves after SIGINT/SIGTERM once in-flight activities are done or out of grace time;
  // until then /healthz answers 503, so an orchestrator sees the worker draining.
  await worker.run();
  await http.close();
  await observability.stop();
  await worker.connection.close();
  await database.close();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
