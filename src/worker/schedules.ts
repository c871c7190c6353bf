import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Config } from '../config/index.js';

/** The housekeeping workflows Kiln runs on a timer; each takes no arguments. */
type HousekeepingWorkflow = 'purgeExpiredJobs' | 'settleOrphanJobs';

/** One schedule per task queue, so deployments sharing a namespace keep their own. */
export function retentionScheduleId(config: Config): string {
  return `kiln-retention-${config.temporal.taskQueue}`;
}

export function orphanSweepScheduleId(config: Config): string {
  return `kiln-orphan-sweep-${config.temporal.taskQueue}`;
}

function scheduleOptions(config: Config, workflowType: HousekeepingWorkflow, everySeconds: number) {
  return {
    spec: { intervals: [{ every: `${everySeconds}s` }] },
    action: {
      type: 'startWorkflow' as const,
      workflowType,
      taskQueue: config.temporal.taskQueue,
      args: [],
    },
    // One run at a time: a slow run is not doubled by the next tick.
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
  };
}

/** Creates a schedule, or brings an existing one in line with the configuration. */
async function ensureSchedule(
  client: Client,
  scheduleId: string,
  options: ReturnType<typeof scheduleOptions>,
): Promise<void> {
  try {
    await client.schedule.create({ scheduleId, ...options });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, ...options }));
  }
}

export async function ensureRetentionSchedule(client: Client, config: Config): Promise<void> {
  const options = scheduleOptions(config, 'purgeExpiredJobs', config.retention.intervalMinutes * 60);
  await ensureSchedule(client, retentionScheduleId(config), options);
}

export async function ensureOrphanSweepSchedule(client: Client, config: Config): Promise<void> {
  const options = scheduleOptions(config, 'settleOrphanJobs', config.orphans.sweepIntervalSeconds);
  await ensureSchedule(client, orphanSweepScheduleId(config), options);
}

/** Every housekeeping schedule; safe to call from every worker at start. */
export async function ensureSchedules(client: Client, config: Config): Promise<void> {
  await ensureRetentionSchedule(client, config);
  await ensureOrphanSweepSchedule(client, config);
}
