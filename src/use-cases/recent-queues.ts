import type { Kysely } from 'kysely';
import type { Plan } from '../config/index.js';
import type { Database, JobRow } from '../db/schema.js';
import { ServiceTier } from '../jobs/job.js';
import { limitKeyFor } from '../capacity/provider-limits.js';
import {
  COUNTED_AHEAD,
  estimateQueue,
  NOT_QUEUED,
  fairEstimate,
  queuedAhead,
  recentCallSeconds,
  type EstimateConfig,
  type QueueEstimate,
  type QueuedAhead,
  type Waiting,
} from './queue-estimate.js';

/**
 * How long a read of a provider's queue, or of its recent call times, answers estimates before it is
 * read again. Brief, since jobs that leave the queue, and those other API processes add, are unseen
 * until then; long enough that at 100 submissions a second the reads are a few a second, not 200.
 */
const REFRESH_MS = 1000;

/** A value per key, read again once `REFRESH_MS` old; concurrent readers share one read. */
class Recent<T> {
  private readonly held = new Map<string, { readAt: number; value: Promise<T> }>();

  get(key: string, read: () => Promise<T>): Promise<T> {
    const held = this.held.get(key);
    if (held && Date.now() - held.readAt < REFRESH_MS) return held.value;
    const entry = { readAt: Date.now(), value: read() };
    this.held.set(key, entry);
    // A failed read is not kept: the next estimate reads again.
    entry.value.catch(() => this.held.get(key) === entry && this.held.delete(key));
    return entry.value;
  }
}

/** A provider's nearest queued jobs as last read, then each job this process queued since. */
class ProviderQueue {
  private readonly window: QueuedAhead[] = [];
  private readonly ids = new Set<string>();
  /** Per limit key, per user. */
  private readonly waiting = new Map<string, Map<string, Waiting>>();

  constructor(ahead: QueuedAhead[]) {
    for (const job of ahead) this.add(job);
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  waitingOn(limitKey: string): Iterable<Waiting> {
    return this.waiting.get(limitKey)?.values() ?? [];
  }

  /** Counts `job` as the newest queued, and forgets the oldest past `COUNTED_AHEAD`, as a read would. */
  add(job: QueuedAhead): void {
    this.window.push(job);
    this.ids.add(job.id);
    this.count(job, 1);
    if (this.window.length <= COUNTED_AHEAD) return;
    const oldest = this.window.shift()!;
    this.ids.delete(oldest.id);
    this.count(oldest, -1);
  }

  private count({ limitKey, userId, weight }: QueuedAhead, delta: number): void {
    const users = this.waiting.get(limitKey) ?? new Map<string, Waiting>();
    this.waiting.set(limitKey, users);
    const waiting = users.get(userId) ?? { userId, weight, count: 0 };
    waiting.count += delta;
    if (waiting.count > 0) users.set(userId, waiting);
    else users.delete(userId);
  }
}

/**
 * Queue estimates for new jobs whose cost does not grow with the submission rate: each provider's queue
 * is read at most once per `REFRESH_MS` (at most `COUNTED_AHEAD` rows), and every job this process
 * queues meanwhile is counted onto that read, so back-to-back submissions still see each other.
 */
export class RecentQueues {
  private readonly queues = new Recent<ProviderQueue>();
  private readonly callSeconds = new Recent<number>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly config: EstimateConfig,
  ) {}

  /** Where a job this submission created stands; the job then counts ahead of the next ones. */
  async ofNewJob(row: JobRow, plan: Plan): Promise<QueueEstimate> {
    if (row.tier === ServiceTier.batch) return NOT_QUEUED;
    const [queue, callSeconds] = await Promise.all([
      this.queues.get(
        row.provider,
        async () => new ProviderQueue(await queuedAhead(this.db, this.config, row)),
      ),
      this.callSeconds.get(`${row.provider}/${row.model}`, () => recentCallSeconds(this.db, row)),
    ]);
    // Queued before the job a read was made for, so already in it: its own place is read instead.
    if (queue.has(row.id)) return estimateQueue(this.db, this.config, row, plan);
    const limitKey = limitKeyFor(this.config.providerLimits, row.provider, row.model);
    const estimate = fairEstimate(this.config, row, plan, queue.waitingOn(limitKey), callSeconds);
    queue.add({ id: row.id, userId: row.user_id, limitKey, weight: plan.weight });
    return estimate;
  }
}
