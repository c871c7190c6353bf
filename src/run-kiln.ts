import { mkdir } from 'node:fs/promises';
import { startApiServer } from './api/api-server.js';
import { DEMO_USER_NAME, ensureDemoApiKey } from './auth/demo-user.js';
import type { Config } from './config/index.js';
import { openDatabase } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { startDevServices } from './devstack/dev-services.js';
import { createLogger, type Logger } from './logger.js';
import { startObservability } from './observability/process-observability.js';
import { installTemporalRuntime } from './observability/temporal-runtime.js';
import { connectTemporalClient } from './temporal-client.js';
import { createKilnWorker } from './worker/create-worker.js';
import { ensureSchedules } from './worker/schedules.js';
import { workerDependencies } from './worker/worker-dependencies.js';
import { checkWorkerHealth } from './worker/worker-health.js';
import { startWorkerHttpServer } from './worker/worker-http-server.js';

/** Worker and API in this process until Ctrl-C / SIGTERM. */
async function runKiln(config: Config, logger: Logger, temporalUiUrl: string | undefined): Promise<void> {
  const database = openDatabase(config.database);
  await migrateToLatest(database.db);
  const apiKey = await ensureDemoApiKey(database.db, config);
  const observability = startObservability(config, database.db, logger);
  const deps = workerDependencies(config, database, logger);
  const worker = await createKilnWorker(config, deps, database);
  const workerHttp = await startWorkerHttpServer(
    config.observability,
    () => checkWorkerHealth(worker, database.db),
    logger,
  );
  const temporal = await connectTemporalClient(config.temporal);
  await ensureSchedules(temporal, config);
  const api = await startApiServer({ ...deps, config, database, temporal });
  console.log(
    `\nKiln is running.\n  App:         ${api.url}/#key=${apiKey}\n  Temporal UI: ${temporalUiUrl ?? '(external cluster)'}\n` +
      `  API key:     ${apiKey} (user ${DEMO_USER_NAME})\n` +
      `  Metrics:     ${api.url}/metrics (worker health: ${workerHttp.url}/healthz)\n`,
  );
  console.log(
    `Try: curl -s -X POST ${api.url}/v1/generations -H 'Content-Type: application/json' ` +
      `-H 'Authorization: Bearer ${apiKey}' -H "Idempotency-Key: $(date +%s%N)" ` +
      `-d '{"kind":"image","prompt":"a kiln at dawn"}'\n`,
  );
  // run() returns after Ctrl-C / SIGTERM, once in-flight activities are done.
  await worker.run();
  await workerHttp.close();
  await api.close();
  await observability.stop();
  await temporal.connection.close();
  await worker.connection.close();
  await database.close();
}

/** PostgreSQL, Temporal, worker and API in this process until Ctrl-C / SIGTERM, on embedded defaults. */
export async function runKilnWithDevServices(baseConfig: Config): Promise<void> {
  const logger = createLogger(baseConfig.logLevel, 'kiln');
  // API and worker share one process: one Temporal runtime, one registry, one set of fleet gauges.
  await installTemporalRuntime(logger);
  await mkdir(baseConfig.dataDir, { recursive: true });
  const services = await startDevServices(baseConfig);
  try {
    await runKiln(services.config, logger, services.temporalUiUrl);
  } finally {
    await services.stop();
  }
}
