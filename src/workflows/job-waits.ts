import { patched } from '@temporalio/workflow';
import type { JobWaiting, WaitReason } from '../jobs/job.js';
import { jobTable } from './activity-stubs.js';
import type { PendingCall, WorkflowWaiting } from './definitions.js';

/** Jobs started before waits were told record none: replaying them must issue no such activity. */
const RECORD_WAITS_PATCH = 'record-job-waits';

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * What the job waits for, as the workflow knows it: answered live by the `waiting` query, and told to
 * the job table (with an event) when the reason or the awaited call changes, not each time the same
 * wait is looked at again.
 */
export class JobWaits {
  private current: JobWaiting | null = null;
  private call: PendingCall | null = null;
  /** The wait the job table last heard of, while it still tells it: no call has started since. */
  private told: JobWaiting | null = null;

  constructor(
    private readonly jobId: string,
    private readonly maxCalls: number,
  ) {}

  get now(): WorkflowWaiting {
    return { waiting: this.current, call: this.call };
  }

  /** Call `attempt` is asked for; until it answers, it may be under way or queued in Temporal. */
  calling(attempt: number): void {
    this.call = { attempt, maxCalls: this.maxCalls, since: iso(Date.now()) };
  }

  /** The call answered: with an output, a failure, or word to wait. */
  called(): void {
    this.call = null;
  }

  /** The job waits for `reason` until `untilMs` at the latest (unknown: undefined) to make call `attempt`. */
  async enter(reason: WaitReason, attempt: number, untilMs: number | undefined): Promise<void> {
    const told = this.told;
    const same = told?.reason === reason && told.attempt === attempt;
    const until = untilMs === undefined || !Number.isFinite(untilMs) ? null : iso(untilMs);
    const since = same ? told.since : iso(Date.now());
    this.current = { reason, since, until, attempt, maxCalls: this.maxCalls };
    if (same || !patched(RECORD_WAITS_PATCH)) return;
    await jobTable.recordJobWaiting({ jobId: this.jobId, waiting: this.current });
    this.told = this.current;
  }

  /** The wait is over: the job asks again, and waits anew (the same wait, if told so) or goes on. */
  leave(): void {
    this.current = null;
  }

  /** The call failed: it had started, and its start told the job table that the job no longer waits. */
  callFailed(): void {
    this.called();
    this.told = null;
  }

  /** The job ended: it waits for nothing. */
  ended(): void {
    this.leave();
    this.called();
  }
}
