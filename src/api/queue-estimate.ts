import { sql, type Kysely } from 'kysely';
import { planNamed, type Config, type Plan } from '../config.js';
import type { Database, JobRow } from '../db/schema.js';
import { JobStatus } from '../jobs/job.js';
import { dispatchesPerSecond, limitKeyFor, limitOf } from '../providers/provider-limits.js';

type EstimateConfig = Pick<Config, 'providerLimits' | 'plans'>;

/** Where a new job stands, as the 202 tells it. */
export interface QueueEstimate {
  /** Jobs expected to start before this one. */
  queuePosition: number;
  estimatedWaitSeconds: number;
}

/** Until a provider has finished jobs to learn from. */
const UNKNOWN_DURATION_SECONDS = 10;
/** Recent enough to describe the provider today, many enough to smooth one slow call. */
const RECENT_JOBS = 50;

interface Waiting {
  userId: string;
  weight: number;
  count: number;
}

/** Queued jobs created before `row` on its provider limit, per user, with each user's plan weight. */
async function waitingAhead(db: Kysely<Database>, config: EstimateConfig, row: JobRow): Promise<Waiting[]> {
  const rows = await db
    .selectFrom('jobs')
    .innerJoin('users', 'users.id', 'jobs.user_id')
    .select(['jobs.user_id', 'jobs.model', 'users.plan', (eb) => eb.fn.countAll<string>().as('count')])
    .where('jobs.provider', '=', row.provider)
    .where('jobs.status', '=', JobStatus.queued)
    // The row's own timestamp is read in SQL: a JavaScript Date would drop its microseconds.
    .where(
      sql<boolean>`(jobs.created_at, jobs.id) < (select c.created_at, c.id from jobs c where c.id = ${row.id})`,
    )
    .groupBy(['jobs.user_id', 'jobs.model', 'users.plan'])
    .execute();
  const key = limitKeyFor(config.providerLimits, row.provider, row.model);
  return rows
    .filter((ahead) => limitKeyFor(config.providerLimits, row.provider, ahead.model) === key)
    .map((ahead) => ({
      userId: ahead.user_id,
      weight: planNamed(config.plans, ahead.plan).weight,
      count: Number(ahead.count),
    }));
}

async function recentCallSeconds(db: Kysely<Database>, row: JobRow): Promise<number> {
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
export async function estimateQueue(
  db: Kysely<Database>,
  config: EstimateConfig,
  row: JobRow,
  plan: Plan,
): Promise<QueueEstimate> {
  if (row.status !== JobStatus.queued) return { queuePosition: 0, estimatedWaitSeconds: 0 };
  const [ahead, callSeconds] = await Promise.all([waitingAhead(db, config, row), recentCallSeconds(db, row)]);
  const own = ahead.find((waiting) => waiting.userId === row.user_id)?.count ?? 0;
  const others = ahead
    .filter((waiting) => waiting.userId !== row.user_id)
    .reduce(
      (sum, waiting) => sum + Math.min(waiting.count, Math.ceil(((own + 1) * waiting.weight) / plan.weight)),
      0,
    );
  const queuePosition = own + others;
  const limit = limitOf(config.providerLimits, limitKeyFor(config.providerLimits, row.provider, row.model));
  const providerPerSecond = Math.min(dispatchesPerSecond(limit), limit.concurrency / callSeconds);
  const ownPerSecond = plan.maxRunning / callSeconds;
  const waitSeconds = Math.max(queuePosition / providerPerSecond, own / ownPerSecond);
  return { queuePosition, estimatedWaitSeconds: Math.round(waitSeconds * 10) / 10 };
}
