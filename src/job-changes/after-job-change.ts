import type { JobRow } from '../db/schema.js';
import { observeJobEnded } from '../observability/job-metrics.js';
import { dispatchWebhookDeliveries } from '../webhooks/dispatch-deliveries.js';
import { admitAndWake } from './admission-wake.js';
import { wakeCacheFollowers } from './cache-followers-wake.js';
import type { JobChangeContext } from './job-change-context.js';

/** A committed change of a job: its row after the write, and, for a write that ends it, when it said. */
export interface JobChange {
  row: JobRow;
  /** The `completed_at` a terminal write wrote (a repeated one finds an earlier value in the row). */
  endedAt?: Date;
}

async function afterJobEnded(context: JobChangeContext, row: JobRow, endedAt: Date): Promise<void> {
  if (observeJobEnded(row, endedAt)) {
    const failureCode = row.failure_code ?? undefined;
    context.logger.info({ jobId: row.id, status: row.status, failureCode }, 'job ended');
  }
  // However it ended, and even on a repeat: a crash may have come between the write and the wake.
  await Promise.all([admitAndWake(context, row.id), wakeCacheFollowers(context, row.id)]);
}

/**
 * Everything that follows a committed change of a job, wherever it was made. The change's transaction
 * already holds what must not be lost (the row, its event, its webhook delivery rows, its ledger entry);
 * this starts what lives outside Postgres: the job's undispatched webhook deliveries and, after its end,
 * its metrics, its log line, its user's next job and the jobs that joined its call. Safe to repeat: a re-run change counts no end twice
 * and starts no delivery twice, and whatever a crash left unstarted goes with the job's next change.
 */
export async function afterJobChange(context: JobChangeContext, { row, endedAt }: JobChange): Promise<void> {
  if (endedAt) await afterJobEnded(context, row, endedAt);
  if (row.webhook) {
    const { db, temporal, deliveries } = context;
    await dispatchWebhookDeliveries({ db, temporal, ...deliveries }, row.id);
  }
}
