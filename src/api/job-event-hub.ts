import type { Kysely } from 'kysely';
import type { DatabaseHandle } from '../db/database.js';
import { findJobWithoutEvents, jobEventsAfter } from '../db/job-event-repository.js';
import { toJob } from '../db/job-repository.js';
import type { Database } from '../db/schema.js';
import { readStreamedText } from '../db/text-stream-repository.js';
import { JOB_EVENTS_CHANNEL, decodeChannelMessage, type JobEvent } from '../events/job-event.js';
import type { TextUpdate } from '../events/text-stream.js';
import { isTerminal, type JobKind } from '../jobs/job.js';
import type { Logger } from '../logger.js';

/** What a subscriber is told about one job. */
export interface JobWatcher {
  /** Each event, in `seq` order, exactly once. */
  onEvent(event: JobEvent): void;
  /**
   * A text job's streamed text, once the events have caught up and until the terminal one: what was
   * streamed so far (a delta at offset 0), then each new piece, and a `reset` when a new attempt starts.
   */
  onText?(update: TextUpdate): void;
  /** Told when the hub shuts down, so a long-lived response can end and its client resume by seq. */
  onEnd?(): void;
}

/** A table read that concurrent requests share; `again` asks for one more after it. */
interface Reader {
  running?: Promise<void>;
  again: boolean;
}

interface Subscription {
  watcher: JobWatcher;
  lastSeq: number;
  events: Reader;
  /** The streamed text this subscriber has: which attempt, and how much of it. */
  textAttempt: number;
  textLength: number;
  /** A terminal event was sent: nothing follows it. */
  finished: boolean;
  /** The job's kind, once an event told it: image jobs have no text to read. */
  kind?: JobKind;
  /** Text is sent once the events caught up, and no longer once the job has ended. */
  textOpen: boolean;
  text: Reader;
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
      (payload) => hub.receive(payload),
      () => hub.catchUpAll(),
    );
    return { hub, stop: () => listener.close() };
  }

  /**
   * Sends the job's events after `since`, then each new one, and a text job's text; returns the
   * unsubscribe function.
   */
  async subscribe(jobId: string, since: number, watcher: JobWatcher): Promise<() => void> {
    const subscription: Subscription = {
      watcher,
      lastSeq: since,
      events: { again: false },
      textAttempt: 0,
      textLength: 0,
      finished: false,
      textOpen: false,
      text: { again: false },
    };
    const set = this.subscriptions.get(jobId) ?? new Set<Subscription>();
    this.subscriptions.set(jobId, set);
    // Registered before the read, so an event committed meanwhile is delivered, not lost.
    set.add(subscription);
    const unsubscribe = () => {
      set.delete(subscription);
      if (set.size === 0 && this.subscriptions.get(jobId) === set) this.subscriptions.delete(jobId);
    };
    await this.catchUp(jobId, subscription);
    if (watcher.onText && subscription.kind !== 'image' && !subscription.finished && set.has(subscription)) {
      subscription.textOpen = true;
      await this.catchUpText(jobId, subscription);
    }
    return unsubscribe;
  }

  /** Ends every subscription (the API is shutting down): each subscriber's `onEnd` is told. */
  endAll(): void {
    const ending = [...this.subscriptions.values()].flatMap((set) => [...set]);
    this.subscriptions.clear();
    for (const subscription of ending) subscription.watcher.onEnd?.();
  }

  private receive(payload: string): void {
    // Every job's events reach every API process: most find nobody here to tell, and need no parsing.
    if (this.subscriptions.size === 0) return;
    const message = decodeChannelMessage(payload);
    if (message.kind === 'event') this.deliver(message.event);
    else this.deliverText(message.jobId, message.update);
  }

  private deliver(event: JobEvent): void {
    for (const subscription of this.subscriptions.get(event.job.id) ?? []) {
      if (event.seq === subscription.lastSeq + 1) this.emit(subscription, event);
      else if (event.seq > subscription.lastSeq) this.catchUpInBackground(event.job.id, subscription);
    }
  }

  private emit(subscription: Subscription, event: JobEvent): void {
    subscription.lastSeq = event.seq;
    subscription.kind = event.job.kind;
    if (isTerminal(event.job.status)) [subscription.finished, subscription.textOpen] = [true, false];
    subscription.watcher.onEvent(event);
  }

  /** Shares one read among concurrent requests, and reads once more if asked meanwhile. */
  private read(reader: Reader, work: () => Promise<void>): Promise<void> {
    if (reader.running) {
      reader.again = true;
      return reader.running;
    }
    const loop = async () => {
      do {
        reader.again = false;
        await work();
      } while (reader.again);
    };
    reader.running = loop().finally(() => (reader.running = undefined));
    return reader.running;
  }

  /** Reads the subscriber's missing events from the table. */
  private catchUp(jobId: string, subscription: Subscription): Promise<void> {
    return this.read(subscription.events, async () => {
      for (const event of await this.missedEvents(jobId, subscription.lastSeq)) {
        if (event.seq > subscription.lastSeq) this.emit(subscription, event);
      }
    });
  }
  /**
   * Events after `since`. A job whose events retention removed is told by its current state alone,
   * numbered by its version. Only such a job: one whose next event committed after the read above has
   * a row ahead of its events for a moment, and its row told as an event would take that event's seq
   * (the event itself comes live, or with the next read).
   */
  private async missedEvents(jobId: string, since: number): Promise<JobEvent[]> {
    const events = await jobEventsAfter(this.db, jobId, since);
    if (events.length > 0) return events;
    const purged = await findJobWithoutEvents(this.db, jobId);
    return purged && purged.version > since
      ? [{ seq: purged.version, type: 'status', job: toJob(purged) }]
      : [];
  }

  private catchUpInBackground(jobId: string, subscription: Subscription): void {
    this.catchUp(jobId, subscription).catch((error: unknown) =>
      this.logger.warn({ jobId, err: error }, 'reading missed events failed'),
    );
  }

  /** A piece of streamed text goes on where the subscriber's text ends; anything else reads the row. */
  private deliverText(jobId: string, update: TextUpdate): void {
    for (const subscription of this.subscriptions.get(jobId) ?? []) {
      const { textAttempt, textLength } = subscription;
      if (!subscription.textOpen || update.attempt < textAttempt) continue;
      if (update.type === 'reset') {
        if (update.attempt === textAttempt) continue;
        // Nothing to take back before the subscriber's first text.
        if (textAttempt === 0) [subscription.textAttempt, subscription.textLength] = [update.attempt, 0];
        else this.emitText(subscription, update);
      } else if (update.attempt === textAttempt && update.offset === textLength) {
        this.emitText(subscription, update);
      } else if (update.attempt > textAttempt || update.offset > textLength) {
        // A piece NOTIFY lost, or a reset it never brought: the row has the whole text.
        this.catchUpTextInBackground(jobId, subscription);
      }
    }
  }

  private emitText(subscription: Subscription, update: TextUpdate): void {
    if (update.attempt > subscription.textAttempt) {
      [subscription.textAttempt, subscription.textLength] = [update.attempt, 0];
    }
    if (update.type === 'text') subscription.textLength = update.offset + update.delta.length;
    subscription.watcher.onText?.(update);
  }

  /** Brings the subscriber's text level with the row: a reset if a newer attempt started, then the rest. */
  private catchUpText(jobId: string, subscription: Subscription): Promise<void> {
    return this.read(subscription.text, async () => {
      const streamed = await readStreamedText(this.db, jobId);
      if (!streamed || !subscription.textOpen || streamed.attempt < subscription.textAttempt) return;
      const { attempt, text } = streamed;
      if (attempt > subscription.textAttempt && subscription.textAttempt > 0) {
        this.emitText(subscription, { type: 'reset', attempt });
      }
      const from = attempt > subscription.textAttempt ? 0 : subscription.textLength;
      if (attempt > subscription.textAttempt || text.length > from) {
        this.emitText(subscription, { type: 'text', attempt, offset: from, delta: text.slice(from) });
      }
    });
  }

  private catchUpTextInBackground(jobId: string, subscription: Subscription): void {
    this.catchUpText(jobId, subscription).catch((error: unknown) =>
      this.logger.warn({ jobId, err: error }, 'reading streamed text failed'),
    );
  }

  /** After a lost LISTEN connection, every subscriber reads what NOTIFY dropped meanwhile. */
  private catchUpAll(): void {
    for (const [jobId, set] of this.subscriptions) {
      for (const subscription of set) {
        this.catchUpInBackground(jobId, subscription);
        if (subscription.textOpen) this.catchUpTextInBackground(jobId, subscription);
      }
    }
  }
}
