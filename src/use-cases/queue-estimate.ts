import { sql, type Kysely } from 'kysely';
import type { Config, Plan } from '../config/index.js';
import type { Database, JobRow } from '../db/schema.js';
import { JobStatus, ServiceTier, WaitReason, type QueueEstimate } from '../jobs/job.js';
import { planNamed } from '../jobs/plans.js';
import { dispatchesPerSecond, limitKeyFor, limitOf } from '../capacity/provider-limits.js';

export type EstimateConfig = Pick<Config, 'providerLimits' | 'plans'>;

export type { QueueEstimate };

/** Until a provider has finished jobs to learn from. */
const UNKNOWN_DURATION_SECONDS = 10;
/** Recent enough to describe the provider today, many enough to smooth one slow call. */
const RECENT_JOBS = 50;

/**
 * Queued jobs ahead that an estimate counts at most, the nearest first. Past it the position is a lower
 * bound, and a submission costs the same behind any backlog: counting them all took 27 ms of the
 * 202 behind 50,000.
 */
export const COUNTED_AHEAD = 1000;

/** A user's queued jobs ahead on the new job's provider limit, with their plan's weight. */
export interface Waiting {
  userId: string;
  weight: number;
  count: number;
}

/** One queued job ahead, as an estimate counts it. */
export interface QueuedAhead {
  id: string;
  userId: string;
  limitKey: string;
  weight: number;
}

/** The provider's `COUNTED_AHEAD` queued jobs nearest ahead of `row`, nearest last. */
export async function queuedAhead(
  db: Kysely<Database>,
  config: EstimateConfig,
  row: JobRow,
): Promise<QueuedAhead[]> {
  const nearest = db
    .selectFrom('jobs')
    .select(['id', 'user_id', 'model', 'created_at'])
    .where('provider', '=', row.provider)
    .where('status', '=', JobStatus.queued)
    // A batch job waits for a provider batch, not for a call: it is ahead of no one.
    .where('tier', '=', ServiceTier.standard)
    // The row's own timestamp is read in SQL: a JavaScript Date would drop its microseconds.
    .where(sql<boolean>`(created_at, id) < (select c.created_at, c.id from jobs c where c.id = ${row.id})`)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(COUNTED_AHEAD)
    .as('ahead');
  const rows = await db
    .selectFrom(nearest)
    .innerJoin('users', 'users.id', 'ahead.user_id')
    .select(['ahead.id', 'ahead.user_id', 'ahead.model', 'users.plan'])
    .orderBy('ahead.created_at')
    .orderBy('ahead.id')
    .execute();
  return rows.map((ahead) => ({
    id: ahead.id,
    userId: ahead.user_id,
    limitKey: limitKeyFor(config.providerLimits, row.provider, ahead.model),
    weight: planNamed(config.plans, ahead.plan).weight,
  }));
}

/** Per user, the jobs of `ahead` on the limit key of `row`. */
function waitingOn(config: EstimateConfig, row: JobRow, ahead: QueuedAhead[]): Waiting[] {
  const key = limitKeyFor(config.providerLimits, row.provider, row.model);
  const byUser = new Map<string, Waiting>();
  for (const job of ahead) {
    if (job.limitKey !== key) continue;
    const waiting = byUser.get(job.userId) ?? { userId: job.userId, weight: job.weight, count: 0 };
    waiting.count++;
    byUser.set(job.userId, waiting);
  }
  return [...byUser.values()];
}

/** The mean call time of the provider's model over its last `RECENT_JOBS` successes. */
export async function recentCallSeconds(db: Kysely<Database>, row: JobRow): Promise<number> {
  const { seconds } = await db
    .selectFrom((eb) =>
      eb
        .selectFrom('jobs')
        .select(sql<number>`extract(epoch from (completed_at - started_at))`.as('took'))
        .where('provider', '=', row.provider)
        .where('model', '=', row.model)
        .where('status', '=', JobStatus.succeeded)
        .orderBy('completed_at', 'desc')
        .limit(RECENT_JOBS)
        .as('recent'),
    )
    .select((eb) => eb.fn.avg<string | null>('took').as('seconds'))
    .executeTakeFirstOrThrow();
  return seconds === null ? UNKNOWN_DURATION_SECONDS : Number(seconds);
}

/**
 * Fair queuing, as the provider queue dispatches: while this user waits for their own `n` jobs ahead,
 * every other user gets about `n + 1` turns scaled by their weight against ours, or fewer if they have
 * fewer jobs. The wait is that position over the provider's throughput (its rate, or its slots over
 * recent call times, whichever binds), or the user's own backlog over their running slots if longer.
 */
export function fairEstimate(
  config: EstimateConfig,
  row: JobRow,
  plan: Plan,
  ahead: Iterable<Waiting>,
  callSeconds: number,
): QueueEstimate {
  let own = 0;
  const others: Waiting[] = [];
  for (const waiting of ahead) {
    if (waiting.userId === row.user_id) own = waiting.count;
    else others.push(waiting);
  }
  const turns = (waiting: Waiting) =>
    Math.min(waiting.count, Math.ceil(((own + 1) * waiting.weight) / plan.weight));
  const queuePosition = others.reduce((sum, waiting) => sum + turns(waiting), own);
  const limit = limitOf(config.providerLimits, limitKeyFor(config.providerLimits, row.provider, row.model));
  const providerPerSecond = Math.min(dispatchesPerSecond(limit), limit.concurrency / callSeconds);
  const ownPerSecond = plan.maxRunning / callSeconds;
  const waitSeconds = Math.max(queuePosition / providerPerSecond, own / ownPerSecond);
  return { queuePosition, estimatedWaitSeconds: Math.round(waitSeconds * 10) / 10 };
}

/**
 * A call waiting in the provider's own queue (fal's `queue_position`): the requests ahead, over what the
 * provider gets through for Kiln, its slots over recent call times.
 */
async function providerQueueEstimate(
  db: Kysely<Database>,
  config: EstimateConfig,
  row: JobRow,
  position: number,
): Promise<QueueEstimate> {
  const limit = limitOf(config.providerLimits, limitKeyFor(config.providerLimits, row.provider, row.model));
  const waitSeconds = (position * (await recentCallSeconds(db, row))) / limit.concurrency;
  return { queuePosition: position, estimatedWaitSeconds: Math.round(waitSeconds * 10) / 10 };
}

/** The estimate of a job in no queue of calls: one being worked on, or one of the batch tier. */
export const NOT_QUEUED: QueueEstimate = { queuePosition: 0, estimatedWaitSeconds: 0 };

/**
 * The estimate of a queued job read straight from the table; of a call waiting in the provider's own
 * queue, from the position the provider gave; zero for one being worked on.
 */
export async function estimateQueue(
  db: Kysely<Database>,
  config: EstimateConfig,
  row: JobRow,
  plan: Plan,
): Promise<QueueEstimate> {
  const position = row.waiting?.reason === WaitReason.providerQueue ? row.waiting.position : undefined;
  if (position !== undefined) return providerQueueEstimate(db, config, row, position);
  if (row.status !== JobStatus.queued || row.tier === ServiceTier.batch) return NOT_QUEUED;
  const [ahead, callSeconds] = await Promise.all([queuedAhead(db, config, row), recentCallSeconds(db, row)]);
  return fairEstimate(config, row, plan, waitingOn(config, row, ahead), callSeconds);
}
