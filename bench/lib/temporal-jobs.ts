import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { median } from './stats.js';
import { terminateWorkflows } from './jobs.js';

/** Histories read per run for the events-per-job figure: every job of a run has the same path. */
const HISTORIES_SAMPLED = 10;

/**
 * What the bench asks Temporal about the workflows of one design's task queue, the same way for Kiln
 * and `bare`: when they all ended, when each closed, and how long their histories are.
 */
export class TemporalJobs {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
  ) {}

  /** Waits until no workflow on the task queue runs (a schedule's short run included) and `ids` all closed. */
  async settle(ids: string[], timeoutMs: number): Promise<void> {
    const giveUpAt = Date.now() + timeoutMs;
    for (;;) {
      const { count } = await this.client.workflow.count(
        `TaskQueue = "${this.taskQueue}" AND ExecutionStatus = "Running"`,
      );
      if (count === 0 && (await this.closeTimes(ids)).size === ids.length) return;
      if (Date.now() > giveUpAt) throw new Error(`${count} workflows still running after ${timeoutMs} ms`);
      await sleep(500);
    }
  }

  /** When each of `ids` that closed did, as Temporal recorded it (epoch ms). */
  async closeTimes(ids: string[]): Promise<Map<string, number>> {
    const wanted = new Set(ids);
    const closed = new Map<string, number>();
    const query = `TaskQueue = "${this.taskQueue}" AND ExecutionStatus != "Running"`;
    for await (const workflow of this.client.workflow.list({ query })) {
      if (wanted.has(workflow.workflowId) && workflow.closeTime) {
        closed.set(workflow.workflowId, workflow.closeTime.getTime());
      }
    }
    return closed;
  }

  /** Median length of the first few histories of `ids`, which must have closed. */
  async historyEventsPerJob(ids: string[]): Promise<number> {
    const lengths = await Promise.all(
      ids.slice(0, HISTORIES_SAMPLED).map(async (id) => {
        const history = await this.client.workflow.getHandle(id).fetchHistory();
        return history.events?.length ?? Number.NaN;
      }),
    );
    return median(lengths);
  }

  terminate(ids: string[]): Promise<void> {
    return terminateWorkflows({ temporal: this.client }, ids);
  }
}
