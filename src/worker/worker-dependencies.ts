import type { ActivityDependencies } from '../activities/index.js';
import { createProviderCallCancels } from '../activities/provider-call-cancels.js';
import type { Config } from '../config/index.js';
import type { DatabaseHandle } from '../db/database.js';
import type { Logger } from '../logger.js';
import { tracedObjectStore } from '../observability/traced-object-store.js';
import { tracedProviders } from '../observability/traced-providers.js';
import { configuredProviders } from '../providers/configured-providers.js';
import { createObjectStore } from '../storage/create-object-store.js';

export function workerDependencies(
  config: Config,
  database: DatabaseHandle,
  logger: Logger,
): ActivityDependencies {
  return {
    db: database.db,
    store: tracedObjectStore(createObjectStore(config.storage)),
    providers: tracedProviders(configuredProviders(config)),
    logger,
    circuit: config.circuit,
    retention: config.retention,
    orphans: config.orphans,
    plans: config.plans,
    providerLimits: config.providerLimits,
    webhooks: config.webhooks,
    batches: config.batches,
    callCancels: createProviderCallCancels(),
    taskQueue: config.temporal.taskQueue,
  };
}
