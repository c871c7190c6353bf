import type { Client } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time.js';

/**
 * Where a job's workflow stood at one moment, read off its history: its provider call scheduled on
 * the provider's task queue and not yet started by a worker (held back by the queue's dispatch rate,
 * `maxTaskQueueActivitiesPerSecond`), running in a worker (waiting in place for a slot, or calling),
 * asleep on a durable timer (a slot turn, a backoff), or none of these.
 */
export const Standing = {
  taskQueue: 'task_queue',
  inActivity: 'in_activity',
  timer: 'timer',
  elsewhere: 'elsewhere',
} as const;
export type Standing = (typeof Standing)[keyof typeof Standing];

export interface JobStanding {
  standing: Standing;
  /** The timer's length, when the job slept on one. */
  timerMs?: number;
  /** When a worker started the first provider call scheduled before the moment and started after it. */
  dispatchedAt?: number;
}

interface Span {
  from: number;
  to: number;
  /** When a worker started the call (activities only). */
  startedAt?: number;
  timerMs?: number;
}

/** The history's provider calls and timers as spans of time (epoch ms); one still open ends at Infinity. */
async function spansOf(client: Client, workflowId: string) {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const calls = new Map<string, Span>();
  const timers = new Map<string, Span>();
  for (const event of history.events ?? []) {
    const at = tsToMs(event.eventTime);
    const id = String(event.eventId);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name === 'callProvider') calls.set(id, { from: at, to: Infinity });
    const started = event.activityTaskStartedEventAttributes;
    // For an activity with retries the server writes this event at its close, with the start's time.
    const call = started ? calls.get(String(started.scheduledEventId)) : undefined;
    if (call) call.startedAt = at;
    const closed =
      event.activityTaskCompletedEventAttributes ??
      event.activityTaskFailedEventAttributes ??
      event.activityTaskTimedOutEventAttributes ??
      event.activityTaskCanceledEventAttributes;
    const closedCall = closed ? calls.get(String(closed.scheduledEventId)) : undefined;
    if (closedCall) closedCall.to = at;
    const timer = event.timerStartedEventAttributes;
    if (timer) timers.set(id, { from: at, to: Infinity, timerMs: tsToMs(timer.startToFireTimeout) });
    const ended = event.timerFiredEventAttributes ?? event.timerCanceledEventAttributes;
    const endedTimer = ended ? timers.get(String(ended.startedEventId)) : undefined;
    if (endedTimer) endedTimer.to = at;
  }
  return { calls: [...calls.values()], timers: [...timers.values()] };
}

/** Where the job of `workflowId` stood at `moment` (epoch ms). */
export async function standingAt(client: Client, workflowId: string, moment: number): Promise<JobStanding> {
  const { calls, timers } = await spansOf(client, workflowId);
  const call = calls.find((span) => span.from <= moment && span.to > moment);
  if (call) {
    const queued = call.startedAt === undefined || call.startedAt > moment;
    return queued
      ? { standing: Standing.taskQueue, dispatchedAt: call.startedAt }
      : { standing: Standing.inActivity };
  }
  const timer = timers.find((span) => span.from <= moment && span.to > moment);
  if (timer) return { standing: Standing.timer, timerMs: timer.timerMs };
  return { standing: Standing.elsewhere };
}
