import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { findUnseenQueuedJobs, markWorkflowSeen } from '../db/orphan-job-repository.js';
import type { JobRow } from '../db/schema.js';
import type { ActivityDependencies } from './dependencies.js';
import { createJobTableActivities } from './job-table.js';

/** Rows looked at per batch: each costs a describe, so a batch stays well inside a heartbeat. */
const BATCH_SIZE = 100;

async function workflowIsRunning(client: Client, row: JobRow): Promise<boolean> {
  try {
    const { status } = await client.workflow.getHandle(row.workflow_id).describe();
    return status.name === 'RUNNING';
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

export function createOrphanJobActivities(deps: ActivityDependencies) {
  const { db, logger, orphans } = deps;
  const jobTable = createJobTableActivities(deps);

  /** Ends the batch's orphans; returns how many rows it looked at and how many it ended. */
  async function settleBatch(client: Client): Promise<{ looked: number; ended: number }> {
    const rows = await findUnseenQueuedJobs(db, orphans.graceSeconds, BATCH_SIZE);
    let ended = 0;
    for (const row of rows) {
      if (await workflowIsRunning(client, row)) {
        await markWorkflowSeen(db, row.id);
        continue;
      }
      // A start that lands after this still finds the row ended, and its workflow ends the same way.
      await jobTable.markJobExpired(row.id);
      logger.warn({ jobId: row.id, createdAt: row.created_at }, 'orphan job ended: it had no workflow');
      ended += 1;
    }
    return { looked: rows.length, ended };
  }

  return {
    /**
     * Ends (`expired`, credits refunded) every job row left `queued` past the grace period with no
     * running workflow: a submission whose start Temporal never took, an API killed between the insert
     * and the start, a retry whose new run was never started. Returns how many it ended.
     */
    async settleOrphanJobs(): Promise<number> {
      const { client } = Context.current();
      let ended = 0;
      for (;;) {
        const batch = await settleBatch(client);
        ended += batch.ended;
        Context.current().heartbeat(ended);
        if (batch.looked < BATCH_SIZE) return ended;
      }
    },
  };
}
