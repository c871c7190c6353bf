import { ApplicationFailure } from '@temporalio/workflow';
import type { JobDeadline } from '../jobs/job.js';
import { DeadlineRefusal } from './definitions.js';

/**
 * A job's deadlines as the workflow holds them: counted from submission, and only ever moved later by
 * a client's `extendDeadline` update. Whatever waits on one reads it afresh, so an extension reaches
 * the waits already under way.
 */
export class JobDeadlines {
  private current: JobDeadline;
  /** Grows with each extension: a timer set for the old deadline sees it moved. */
  extensions = 0;

  constructor(
    deadline: JobDeadline | undefined,
    private readonly submittedAtMs: number,
  ) {
    this.current = { ...deadline };
  }

  get deadline(): JobDeadline {
    return { ...this.current };
  }

  /** When the first provider call must have started by; Infinity without a start deadline. */
  startBy(): number {
    return this.at(this.current.startWithinSeconds) ?? Infinity;
  }

  /** When the job must have succeeded by, if it must. */
  finishBy(): number | undefined {
    return this.at(this.current.finishWithinSeconds);
  }

  /** Throws the refusal an extension earns: it may move a deadline the job has later, never earlier. */
  validate(extension: JobDeadline): void {
    for (const key of ['startWithinSeconds', 'finishWithinSeconds'] as const) {
      const asked = extension[key];
      if (asked === undefined) continue;
      const now = this.current[key];
      if (now === undefined) {
        throw ApplicationFailure.nonRetryable(
          `the job has no ${key} to extend`,
          DeadlineRefusal.noSuchDeadline,
        );
      }
      if (asked < now) {
        throw ApplicationFailure.nonRetryable(
          `${key} is ${now}: it may only grow`,
          DeadlineRefusal.shortened,
        );
      }
    }
  }

  extend(extension: JobDeadline): JobDeadline {
    this.validate(extension);
    this.current = { ...this.current, ...extension };
    this.extensions += 1;
    return this.deadline;
  }

  private at(seconds: number | undefined): number | undefined {
    return seconds === undefined ? undefined : this.submittedAtMs + seconds * 1000;
  }
}
