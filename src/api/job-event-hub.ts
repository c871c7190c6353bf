import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../db/database.js';
import { jobEventsAfter } from '../db/job-event-repository.js';
import { findJob, toJob } from '../db/job-repository.js';
import type { Database } from '../db/schema.js';
import { JOB_EVENTS_CHANNEL, decodeJobEvent, type JobEvent } from '../events/job-event.js';
import type { Logger } from '../logger.js';

/** Receives a job's events in `seq` order, each exactly once. */
export type JobEventObserver = (event: JobEvent) => void;

interface Subscription {
  observer: JobEventObserver;
  /** Told when the hub shuts down, so a long-lived response can end and its client resume by seq. */
  onEnd?: () => void;
  lastSeq: number;
  /** The table read in progress, if any; `readAgain` asks for one more after it. */
  reading?: Promise<void>;
  readAgain: boolean;
}

/**
 * One LISTEN per API process, fanned out to every local subscriber of a job. The event table stays the
 * record: a subscriber reads what it missed from it, then takes live events as NOTIFY brings them, and
 * goes back to the table whenever a live event is not the next one (a LISTEN reconnect lost some).
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
      () => hub.catchUpAll(),
    );
    return { hub, stop: () => listener.close() };
  }

  /** Sends the job's events after `since`, then each new one; returns the unsubscribe function. */
  async subscribe(
    jobId: string,
    since: number,
    observer: JobEventObserver,
    onEnd?: () => void,
  ): Promise<() => void> {
    const subscription: Subscription = { observer, onEnd, lastSeq: since, readAgain: false };
    const set = this.subscriptions.get(jobId) ?? new Set<Subscription>();
    this.subscriptions.set(jobId, set);
    // Registered before the read, so an event committed meanwhile is delivered, not lost.
    set.add(subscription);
    const unsubscribe = () => {
      set.delete(subscription);
      if (set.size === 0 && this.subscriptions.get(jobId) === set) this.subscriptions.delete(jobId);
    };
    await this.catchUp(jobId, subscription);
    return unsubscribe;
  }

  /** Ends every subscription (the API is shutting down): each subscriber's `onEnd` is told. */
  endAll(): void {
    const ending = [...this.subscriptions.values()].flatMap((set) => [...set]);
    this.subscriptions.clear();
    for (const subscription of ending) subscription.onEnd?.();
  }

  private deliver(event: JobEvent): void {
    for (const subscription of this.subscriptions.get(event.job.id) ?? []) {
      if (event.seq === subscription.lastSeq + 1) this.emit(subscription, event);
      else if (event.seq > subscription.lastSeq) this.catchUpInBackground(event.job.id, subscription);
    }
  }

  private emit(subscription: Subscription, event: JobEvent): void {
    subscription.lastSeq = event.seq;
    subscription.observer(event);
  }

  /** Reads the subscriber's missing events from the table; concurrent requests share one read. */
  private catchUp(jobId: string, subscription: Subscription): Promise<void> {
    if (subscription.reading) {
      subscription.readAgain = true;
      return subscription.reading;
    }
    const read = async () => {
      do {
        subscription.readAgain = false;
        for (const event of await this.missedEvents(jobId, subscription.lastSeq)) {
          if (event.seq > subscription.lastSeq) this.emit(subscription, event);
        }
      } while (subscription.readAgain);
    };
    subscription.reading = read().finally(() => (subscription.reading = undefined));
    return subscription.reading;
  }

  /**
   * Events after `since`. A job whose events retention removed (or that predates them) is told by its
   * current state alone, numbered by its version.
   */
  private async missedEvents(jobId: string, since: number): Promise<JobEvent[]> {
    const events = await jobEventsAfter(this.db, jobId, since);
    if (events.length > 0) return events;
    const row = await findJob(this.db, jobId);
    return row && row.version > since ? [{ seq: row.version, type: 'status', job: toJob(row) }] : [];
  }

  private catchUpInBackground(jobId: string, subscription: Subscription): void {
    this.catchUp(jobId, subscription).catch((error: unknown) =>
      this.logger.warn({ jobId, err: error }, 'reading missed events failed'),
    );
  }

  /** After a lost LISTEN connection, every subscriber reads what NOTIFY dropped meanwhile. */
  private catchUpAll(): void {
    for (const [jobId, set] of this.subscriptions) {
      for (const subscription of set) this.catchUpInBackground(jobId, subscription);
    }
  }
}
