import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { ChaosStack } from './stack.js';

/** Jobs a broken invariant is explained for, and how much is said of each. */
const EXPLAINED_JOBS = 3;
const LOG_LINES_PER_JOB = 40;
const EVENTS_PER_JOB = 40;

const { EventType } = proto.temporal.api.enums.v1;
type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

interface LogLine {
  time?: number;
  msg?: string;
  jobId?: string;
  attempt?: number;
  call?: number;
  activityType?: string;
  err?: { message?: string };
}

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 23);

/** One history event in a few words: its type, and what it says of an activity or a failure. */
function eventLine(event: HistoryEvent): string {
  const type = EventType[event.eventType ?? 0]?.replace('EVENT_TYPE_', '') ?? '?';
  const at = event.eventTime?.seconds
    ? clock(Number(event.eventTime.seconds) * 1000 + (event.eventTime.nanos ?? 0) / 1e6)
    : '?';
  const scheduled = event.activityTaskScheduledEventAttributes?.activityType?.name;
  const started = event.activityTaskStartedEventAttributes?.attempt;
  const failure =
    event.activityTaskFailedEventAttributes?.failure ?? event.activityTaskTimedOutEventAttributes?.failure;
  const detail = [
    scheduled,
    started === undefined || started === null ? undefined : `attempt ${started}`,
    failure?.message ?? undefined,
  ].filter(Boolean);
  return `${at} #${String(event.eventId)} ${type}${detail.length > 0 ? ` (${detail.join(', ')})` : ''}`;
}

async function historyOf(temporal: Client, jobId: string): Promise<string[]> {
  try {
    const { events } = await temporal.workflow.getHandle(jobId).fetchHistory();
    return (events ?? []).slice(-EVENTS_PER_JOB).map(eventLine);
  } catch (error) {
    return [`no history (${(error as Error).message})`];
  }
}

/** Every line any Kiln process (killed ones too) logged about the job, in time order. */
function logsOf(stack: ChaosStack, jobId: string): string[] {
  const lines = stack.everyProcess().flatMap(({ label, output }) =>
    output
      .split('\n')
      .filter((line) => line.includes(jobId))
      .flatMap((line) => {
        try {
          return [{ label, entry: JSON.parse(line) as LogLine }];
        } catch {
          return [];
        }
      }),
  );
  return lines
    .sort((a, b) => (a.entry.time ?? 0) - (b.entry.time ?? 0))
    .slice(-LOG_LINES_PER_JOB)
    .map(({ label, entry }) => {
      const where = [
        entry.activityType,
        entry.attempt && `attempt ${entry.attempt}`,
        entry.call && `call ${entry.call}`,
      ]
        .filter(Boolean)
        .join(' ');
      const why = entry.err?.message ? `: ${entry.err.message}` : '';
      return `${clock(entry.time ?? 0)} ${label} ${entry.msg ?? '?'}${where ? ` [${where}]` : ''}${why}`;
    });
}

/**
 * What happened to the first few jobs named in broken invariants: their workflow's history and every
 * log line about them, so that a campaign that fails in CI says why without a replay (timing-bound
 * breaks often do not replay).
 */
export async function explainJobs(stack: ChaosStack, broken: string[]): Promise<string> {
  const ids = [...new Set(broken.flatMap((line) => line.match(/job_[0-9a-f]{32}/g) ?? []))];
  const sections = await Promise.all(
    ids.slice(0, EXPLAINED_JOBS).map(async (jobId) => {
      const history = await historyOf(stack.ctx.temporal, jobId);
      const logs = logsOf(stack, jobId);
      return [
        `${jobId}:`,
        '  workflow history:',
        ...history.map((line) => `    ${line}`),
        '  logs:',
        ...(logs.length > 0 ? logs : ['(none)']).map((line) => `    ${line}`),
      ].join('\n');
    }),
  );
  return sections.join('\n');
}
