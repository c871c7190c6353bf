import type { Kysely } from 'kysely';
import { findJob, toJob } from '../db/job-repository.js';
import type { DatabaseHandle } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { JOB_EVENTS_CHANNEL, decodeJobEvent } from '../events/job-event.js';
import type { Job } from '../jobs/job.js';
import type { Logger } from '../logger.js';

/** Receives a job's snapshots in version order, each at most once. */
export type JobObserver = (job: Job) => void;

interface Subscription {
  observer: JobObserver;
  lastVersion: number;
}

/**
 * One LISTEN per API process, fanned out to every local subscriber of a job. The job table stays the
 * record: a subscriber gets the current row first, then each newer snapshot announced by NOTIFY.
 */
export class JobEventHub {
  private readonly subscriptions = new Map<string, Set<Subscription>>();

  private constructor(
    private readonly db: Kysely<Database>,
    private readonly logger: Logger,
  ) {}

  static async start(
    database: DatabaseHandle,
    logger: Logger,
  ): Promise<{ hub: JobEventHub; stop(): Promise<void> }> {
    const hub = new JobEventHub(database.db, logger);
    const listener = await database.listen(
      JOB_EVENTS_CHANNEL,
      (payload) => hub.deliver(decodeJobEvent(payload)),
      () => void hub.refreshAll(),
    );
    return { hub, stop: () => listener.close() };
  }

  /** Sends the job's current state, then every change; returns the unsubscribe function. */
  async subscribe(jobId: string, observer: JobObserver): Promise<() => void> {
    const subscription: Subscription = { observer, lastVersion: 0 };
    const set = this.subscriptions.get(jobId) ?? new Set<Subscription>();
    this.subscriptions.set(jobId, set);
    // Registered before the read, so a change committed meanwhile is delivered, not lost.
    set.add(subscription);
    const unsubscribe = () => {
      set.delete(subscription);
      if (set.size === 0 && this.subscriptions.get(jobId) === set) this.subscriptions.delete(jobId);
    };
    const row = await findJob(this.db, jobId);
    if (row) this.offer(subscription, toJob(row));
    return unsubscribe;
  }

  private deliver(job: Job): void {
    for (const subscription of this.subscriptions.get(job.id) ?? []) this.offer(subscription, job);
  }

  private offer(subscription: Subscription, job: Job): void {
    if (job.version <= subscription.lastVersion) return;
    subscription.lastVersion = job.version;
    subscription.observer(job);
  }

  /** After a lost LISTEN connection, re-read every watched job: NOTIFYs sent meanwhile are gone. */
  private async refreshAll(): Promise<void> {
    for (const jobId of this.subscriptions.keys()) {
      try {
        const row = await findJob(this.db, jobId);
        if (row) this.deliver(toJob(row));
      } catch (error) {
        this.logger.warn({ jobId, err: error }, 'refresh after reconnect failed');
      }
    }
  }
}
