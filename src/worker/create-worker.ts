import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities, type ActivityDependencies } from '../activities/index.js';
import type { Config } from '../config.js';
import { DEFAULT_TEMPORAL_ADDRESS } from '../temporal-client.js';

// Under tsx the sources are .ts, once built they are .js: bundle whichever this file is.
const sourceExtension = path.extname(fileURLToPath(import.meta.url));
const workflowsPath = fileURLToPath(new URL(`../workflows/index${sourceExtension}`, import.meta.url));

export interface KilnWorker {
  worker: Worker;
  connection: NativeConnection;
}

/**
 * A worker for the generation task queue. In-flight provider calls get `shutdownGraceTime` to finish
 * on SIGTERM (the SDK default of 0 would cancel paid calls at once); past that they are retried
 * elsewhere after their heartbeat timeout.
 */
export async function createKilnWorker(config: Config, deps: ActivityDependencies): Promise<KilnWorker> {
  const connection = await NativeConnection.connect({
    address: config.temporal.address ?? DEFAULT_TEMPORAL_ADDRESS,
  });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    workflowsPath,
    activities: createActivities(deps),
    shutdownGraceTime: `${config.timeouts.providerAttemptSeconds}s`,
  });
  return { worker, connection };
}
