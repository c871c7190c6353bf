// Exported by name: `export *` barrels have lost workflows in Temporal's bundler.
export { deliverWebhook } from './deliver-webhook.js';
export { generateImage } from './generate-image.js';
export { purgeExpiredJobs } from './purge-expired-jobs.js';
