import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { JobRow } from '../../src/db/schema.js';

const DESCRIBED = 5;
const { EventType } = proto.temporal.api.enums.v1;

/**
 * What the workflow of a job that never ended is doing, in a line: its status, its pending activities
 * (attempt, last failure) and its last history events. A campaign that breaks "every row ends
 * terminal" says this for its first few such jobs, so a stuck drain can be told apart from a slow one
 * without a replay.
 */
async function describeOne(temporal: Client, row: JobRow): Promise<string> {
  try {
    const handle = temporal.workflow.getHandle(row.id);
    const description = await handle.describe();
    const pending = (description.raw.pendingActivities ?? []).map(
      (activity) =>
        `${activity.activityType?.name ?? '?'} attempt ${activity.attempt ?? 0}` +
        (activity.lastFailure?.message ? ` (${activity.lastFailure.message})` : ''),
    );
    const { events } = await handle.fetchHistory();
    const last = (events ?? [])
      .slice(-4)
      .map((event) => EventType[event.eventType ?? 0]?.replace('EVENT_TYPE_', '') ?? '?')
      .join(', ');
    return `${row.id} (${row.status}): workflow ${description.status.name}, pending [${pending.join('; ')}], last events ${last}`;
  } catch (error) {
    return `${row.id} (${row.status}): no workflow to describe (${(error as Error).message})`;
  }
}

export async function describeStuckJobs(temporal: Client, rows: JobRow[]): Promise<string[]> {
  return Promise.all(rows.slice(0, DESCRIBED).map((row) => describeOne(temporal, row)));
}
