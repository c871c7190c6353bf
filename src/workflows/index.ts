// Exported by name: `export *` barrels have lost workflows in Temporal's bundler.
export { deliverWebhook } from './deliver-webhook.js';
export { runGeneration } from './run-generation.js';
export { poolProviderBatches } from './batch-pool.js';
export { runProviderBatch } from './run-provider-batch.js';
export { purgeExpiredJobs } from './purge-expired-jobs.js';
export { settleOrphanJobs } from './settle-orphan-jobs.js';
