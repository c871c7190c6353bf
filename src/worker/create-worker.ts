import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDependencies } from '../activities/index.js';
import { createProviderActivities } from '../activities/provider-call.js';
import type { Config } from '../config/index.js';
import { CALL_CANCELS_CHANNEL } from '../db/call-cancel-notices.js';
import type { DatabaseHandle } from '../db/database.js';
import {
  dispatchesPerSecond,
  limitKeysToPoll,
  limitOf,
  providerTaskQueue,
} from '../capacity/provider-limits.js';
import { JOB_KINDS } from '../jobs/job.js';
import { tracedWorkerOptions } from '../observability/temporal-tracing.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import { DEFAULT_TEMPORAL_ADDRESS, kilnDataConverter } from '../temporal-client.js';

// Under tsx the sources are .ts, once built they are .js: bundle whichever this file is.
const sourceExtension = path.extname(fileURLToPath(import.meta.url));
const workflowsPath = fileURLToPath(new URL(`../workflows/index${sourceExtension}`, import.meta.url));
const logAttributesPath = fileURLToPath(
  new URL(`../workflows/log-attributes${sourceExtension}`, import.meta.url),
);

export interface KilnWorkerOptions {
  /** Another bundle of workflows than the one checked out here: a release's, deployed beside it. */
  workflowsPath?: string;
}

/**
 * A versioned worker polls as its Worker Deployment Version, and the provider workers with it: a pinned
 * workflow's activities then run on its own version too. A workflow type without a behavior of its own
 * moves to the current version at its next task (each type says which it is, and why).
 */
function versioning({ temporal }: Config): Pick<WorkerOptions, 'workerDeploymentOptions'> {
  if (!temporal.deployment) return {};
  return {
    workerDeploymentOptions: {
      useWorkerVersioning: true,
      version: temporal.deployment,
      defaultVersioningBehavior: 'AUTO_UPGRADE',
    },
  };
}

/** The Temporal workers of one Kiln worker process, run and stopped together. */
export interface KilnWorker {
  connection: NativeConnection;
  /** Resolves once every worker has stopped (after `shutdown()`, SIGINT or SIGTERM). */
  run(): Promise<void>;
  shutdown(): void;
  /** Every worker polls: false before `run()`, and from the moment shutdown begins. */
  isRunning(): boolean;
}

/**
 * One worker per provider limit: it polls only that provider's task queue, whose activity rate the
 * server enforces across every worker of the fleet (`maxTaskQueueActivitiesPerSecond`). Its slots
 * bound this process; the fleet-wide cap on calls in flight is the provider-slot table.
 */
/** Every provider, of any kind: a provider's limits hold across its image and text calls. */
function providerNames(providers: ProviderRegistry): string[] {
  return [...new Set(JOB_KINDS.flatMap((kind) => providers.names(kind)))];
}

async function createProviderWorkers(
  config: Config,
  deps: ActivityDependencies,
  connection: NativeConnection,
): Promise<Worker[]> {
  const activities = createProviderActivities(deps);
  const { providerLimits, temporal, timeouts } = config;
  return Promise.all(
    limitKeysToPoll(providerLimits, providerNames(deps.providers)).map((key) => {
      const limit = limitOf(providerLimits, key);
      return Worker.create({
        connection,
        namespace: temporal.namespace,
        taskQueue: providerTaskQueue(temporal.taskQueue, key),
        dataConverter: kilnDataConverter(temporal),
        activities,
        ...tracedWorkerOptions({}, { runsWorkflows: false }),
        ...versioning(config),
        maxTaskQueueActivitiesPerSecond: dispatchesPerSecond(limit),
        maxConcurrentActivityTaskExecutions: limit.concurrency,
        shutdownGraceTime: `${timeouts.providerAttemptSeconds}s`,
      });
    }),
  );
}

/**
 * The generation workflows and their bookkeeping activities on the main task queue, plus the provider
 * workers. In-flight provider calls get `shutdownGraceTime` to finish on SIGTERM (the SDK default of 0
 * would cancel paid calls at once); past that they are retried elsewhere after their heartbeat timeout.
 */
export async function createKilnWorker(
  config: Config,
  deps: ActivityDependencies,
  database: Pick<DatabaseHandle, 'listen'>,
  options: KilnWorkerOptions = {},
): Promise<KilnWorker> {
  const connection = await NativeConnection.connect({
    address: config.temporal.address ?? DEFAULT_TEMPORAL_ADDRESS,
  });
  const main = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    dataConverter: kilnDataConverter(config.temporal),
    workflowsPath: options.workflowsPath ?? workflowsPath,
    ...versioning(config),
    ...tracedWorkerOptions({ workflowModules: [logAttributesPath] }, { runsWorkflows: true }),
    activities: createActivities(deps),
    shutdownGraceTime: '10s',
  });
  const workers = [main, ...(await createProviderWorkers(config, deps, connection))];
  // A lost notice costs only the early abort: Temporal's own cancellation still comes with a heartbeat.
  const cancels = await database.listen(CALL_CANCELS_CHANNEL, (jobId) => deps.callCancels.cancel(jobId));
  const shutdown = () => {
    for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  return {
    connection,
    shutdown,
    isRunning: () => workers.every((worker) => worker.getState() === 'RUNNING'),
    run: async () => {
      // One worker failing takes the others down with it: a half-polling process would look healthy.
      const outcomes = await Promise.allSettled(
        workers.map(async (worker) => {
          try {
            await worker.run();
          } finally {
            shutdown();
          }
        }),
      );
      await cancels.close();
      const failed = outcomes.find((outcome) => outcome.status === 'rejected');
      if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    },
  };
}
