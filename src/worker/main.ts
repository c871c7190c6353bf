import { loadConfig } from '../config/index.js';
import { openDatabase } from '../db/database.js';
import { isDatabaseUnavailable } from '../db/database-errors.js';
import { migrateToLatest } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { startObservability } from '../observability/process-observability.js';
import { installTemporalRuntime } from '../observability/temporal-runtime.js';
import { startTracing } from '../observability/tracing.js';
import { postgresHint, temporalHint } from '../process/dependency-names.js';
import { waitUntilReachable } from '../process/wait-until-reachable.js';
import { connectTemporalClient, warnIfPayloadsInPlaintext } from '../temporal-client.js';
import { createKilnWorker } from './create-worker.js';
import { ensureSchedules } from './schedules.js';
import { workerDependencies } from './worker-dependencies.js';
import { checkWorkerHealth } from './worker-health.js';
import { startWorkerHttpServer } from './worker-http-server.js';

/** `npm run worker`: one worker process against the Temporal, Postgres and storage in the environment. */
async function main(): Promise<void> {
  const config = loadConfig();
  // Before any worker or client exists: they add the tracing interceptors only when it is on.
  const tracing = startTracing(config.observability.tracing, 'kiln-worker');
  const logger = createLogger(config.logLevel, 'worker');
  warnIfPayloadsInPlaintext(config.temporal, logger);
  await installTemporalRuntime(logger);
  const database = openDatabase(config.database);
  await waitUntilReachable('PostgreSQL', () => migrateToLatest(database.db), {
    logger,
    isUnreachable: isDatabaseUnavailable,
    hint: postgresHint(config.database),
  });
  const observability = startObservability(config, database.db, logger);
  // At start, every failure to connect is the server being away (or not up yet): wait for it.
  const temporalAway = { logger, isUnreachable: () => true, hint: temporalHint(config.temporal) };
  const worker = await waitUntilReachable(
    'Temporal',
    () => createKilnWorker(config, workerDependencies(config, database, logger), database),
    temporalAway,
  );
  const http = await startWorkerHttpServer(
    config.observability,
    () => checkWorkerHealth(worker, database.db),
    logger,
  );
  const client = await waitUntilReachable(
    'Temporal',
    () => connectTemporalClient(config.temporal),
    temporalAway,
  );
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
  await tracing.stop();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
