import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Config } from '../config.js';
import type { purgeExpiredJobs } from '../workflows/index.js';

/** One schedule per task queue, so deployments sharing a namespace keep their own. */
export function retentionScheduleId(config: Config): string {
  return `kiln-retention-${config.temporal.taskQueue}`;
}

function scheduleOptions(config: Config) {
  return {
    spec: { intervals: [{ every: `${config.retention.intervalMinutes}m` }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'purgeExpiredJobs' as const,
      taskQueue: config.temporal.taskQueue,
      args: [] as Parameters<typeof purgeExpiredJobs>,
    },
    // One purge at a time: a slow run is not doubled by the next tick.
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
  };
}

/**
 * Creates the retention schedule, or brings an existing one in line with the configured interval.
 * Safe to call from every worker at start.
 */
export async function ensureRetentionSchedule(client: Client, config: Config): Promise<void> {
  const options = scheduleOptions(config);
  try {
    await client.schedule.create({ scheduleId: retentionScheduleId(config), ...options });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    await client.schedule
      .getHandle(retentionScheduleId(config))
      .update((previous) => ({ ...previous, ...options }));
  }
}
