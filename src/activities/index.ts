import { createAdmissionActivities } from './admission.js';
import { createBatchJobActivities } from './batch-jobs.js';
import type { ActivityDependencies } from './dependencies.js';
import { createJobTableActivities } from './job-table.js';
import { createOrphanJobActivities } from './orphan-jobs.js';
import { createProviderBatchActivities } from './provider-batches.js';
import { createProviderActivities } from './provider-call.js';
import { createProviderCircuitActivities } from './provider-circuit.js';
import { createResultCacheActivities } from './result-cache.js';
import { createResultStorageActivities } from './result-storage.js';
import { createRetentionActivities } from './retention.js';
import { createWebhookDeliveryActivities } from './webhook-delivery.js';

export type { ActivityDependencies } from './dependencies.js';

/** Every activity the worker registers, bound to its dependencies. */
export function createActivities(deps: ActivityDependencies) {
  return {
    ...createAdmissionActivities(deps),
    ...createBatchJobActivities(deps),
    ...createJobTableActivities(deps),
    ...createOrphanJobActivities(deps),
    ...createProviderActivities(deps),
    ...createProviderBatchActivities(deps),
    ...createProviderCircuitActivities(deps),
    ...createResultCacheActivities(deps),
    ...createResultStorageActivities(deps),
    ...createRetentionActivities(deps),
    ...createWebhookDeliveryActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;

/* Each workflow proxy is typed to its own group: `jobTable.callProvider(…)` must not compile. */
export type AdmissionActivities = ReturnType<typeof createAdmissionActivities>;
export type BatchJobActivities = ReturnType<typeof createBatchJobActivities>;
export type JobTableActivities = ReturnType<typeof createJobTableActivities>;
export type OrphanJobActivities = ReturnType<typeof createOrphanJobActivities>;
export type ProviderActivities = ReturnType<typeof createProviderActivities>;
export type ProviderBatchActivities = ReturnType<typeof createProviderBatchActivities>;
export type ProviderCircuitActivities = ReturnType<typeof createProviderCircuitActivities>;
export type ResultCacheActivities = ReturnType<typeof createResultCacheActivities>;
export type ResultStorageActivities = ReturnType<typeof createResultStorageActivities>;
export type RetentionActivities = ReturnType<typeof createRetentionActivities>;
export type WebhookDeliveryActivities = ReturnType<typeof createWebhookDeliveryActivities>;
