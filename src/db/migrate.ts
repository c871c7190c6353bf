import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Database } from './schema.js';
import * as createJobs from './migrations/2026_11_23_0001_create_jobs.js';
import * as createUsers from './migrations/2026_11_23_0002_create_users_and_api_keys.js';
import * as createCircuits from './migrations/2026_11_23_0003_create_provider_circuits.js';
import * as addPurgedAt from './migrations/2026_11_23_0004_add_job_purged_at.js';
import * as indexForListing from './migrations/2026_11_23_0005_index_jobs_for_listing.js';
import * as addFairAdmission from './migrations/2026_11_23_0006_add_fair_admission.js';
import * as addCredits from './migrations/2026_11_23_0007_add_credits.js';
import * as createJobEvents from './migrations/2026_11_23_0008_create_job_events.js';
import * as createWebhookDeliveries from './migrations/2026_11_23_0009_create_webhook_deliveries.js';
import * as addTextJobs from './migrations/2026_11_23_0010_add_text_jobs.js';
import * as addJobRuns from './migrations/2026_11_23_0011_add_job_runs.js';
import * as createSignalStates from './migrations/2026_11_23_0012_create_signal_states.js';
import * as createProviderPacing from './migrations/2026_11_23_0013_create_provider_pacing.js';
import * as createTakeProviderSlot from './migrations/2026_11_23_0014_create_take_provider_slot.js';
import * as createAdmitWaitingJobs from './migrations/2026_11_23_0015_create_admit_waiting_jobs.js';
import * as indexQueuedJobsByAge from './migrations/2026_11_23_0016_index_queued_jobs_by_age.js';
import * as addWorkflowSeenAt from './migrations/2026_11_23_0017_add_workflow_seen_at.js';
import * as addWebhookSecretRotation from './migrations/2026_11_23_0018_add_webhook_secret_rotation.js';
import * as createSubmitJob from './migrations/2026_11_23_0019_create_submit_job.js';
import * as wakeOnlyWaitingWorkflows from './migrations/2026_11_23_0020_wake_only_waiting_workflows.js';
import * as queueProviderSlotWaiters from './migrations/2026_11_23_0021_queue_provider_slot_waiters.js';
import * as addJobWaiting from './migrations/2026_12_07_0022_add_job_waiting.js';
import * as addJobEventTraceIds from './migrations/2026_12_07_0023_add_job_event_trace_ids.js';
import * as addJobServedBy from './migrations/2026_12_07_0024_add_job_served_by.js';
import * as createGenerationResults from './migrations/2026_12_07_0025_create_generation_results.js';
import * as admitNoCacheFollowers from './migrations/2026_12_07_0026_admit_no_cache_followers.js';
import * as addJobUsage from './migrations/2026_12_07_0027_add_job_usage.js';
import * as createProviderBatches from './migrations/2026_12_07_0028_create_provider_batches.js';

/** Migrations are listed here rather than read from disk, so they work the same from src/ and dist/. */
const migrations: Record<string, Migration> = {
  '2026_11_23_0001_create_jobs': createJobs,
  '2026_11_23_0002_create_users_and_api_keys': createUsers,
  '2026_11_23_0003_create_provider_circuits': createCircuits,
  '2026_11_23_0004_add_job_purged_at': addPurgedAt,
  '2026_11_23_0005_index_jobs_for_listing': indexForListing,
  '2026_11_23_0006_add_fair_admission': addFairAdmission,
  '2026_11_23_0007_add_credits': addCredits,
  '2026_11_23_0008_create_job_events': createJobEvents,
  '2026_11_23_0009_create_webhook_deliveries': createWebhookDeliveries,
  '2026_11_23_0010_add_text_jobs': addTextJobs,
  '2026_11_23_0011_add_job_runs': addJobRuns,
  '2026_11_23_0012_create_signal_states': createSignalStates,
  '2026_11_23_0013_create_provider_pacing': createProviderPacing,
  '2026_11_23_0014_create_take_provider_slot': createTakeProviderSlot,
  '2026_11_23_0015_create_admit_waiting_jobs': createAdmitWaitingJobs,
  '2026_11_23_0016_index_queued_jobs_by_age': indexQueuedJobsByAge,
  '2026_11_23_0017_add_workflow_seen_at': addWorkflowSeenAt,
  '2026_11_23_0018_add_webhook_secret_rotation': addWebhookSecretRotation,
  '2026_11_23_0019_create_submit_job': createSubmitJob,
  '2026_11_23_0020_wake_only_waiting_workflows': wakeOnlyWaitingWorkflows,
  '2026_11_23_0021_queue_provider_slot_waiters': queueProviderSlotWaiters,
  '2026_12_07_0022_add_job_waiting': addJobWaiting,
  '2026_12_07_0023_add_job_event_trace_ids': addJobEventTraceIds,
  '2026_12_07_0024_add_job_served_by': addJobServedBy,
  '2026_12_07_0025_create_generation_results': createGenerationResults,
  '2026_12_07_0026_admit_no_cache_followers': admitNoCacheFollowers,
  '2026_12_07_0027_add_job_usage': addJobUsage,
  '2026_12_07_0028_create_provider_batches': createProviderBatches,
};

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };

/** Brings the schema up to date; safe to run from every process at start. */
export async function migrateToLatest(db: Kysely<Database>): Promise<void> {
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  const failed = results?.find((result) => result.status === 'Error');
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? ''} failed`, { cause: error });
  }
}
