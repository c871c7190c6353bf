import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { randomId } from '../auth/api-key.js';
import type { JobEvent } from '../events/job-event.js';
import type { WebhookAttemptResult } from '../webhooks/send-webhook.js';
import { webhookPayload, webhookWants } from '../webhooks/webhook-event.js';
import { signingPreviousSecret } from './webhook-secret-repository.js';
import type {
  Database,
  JobRow,
  WebhookAttemptRow,
  WebhookDeliveryRow,
  WebhookDeliveryStatus,
} from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** One attempt, as the API shows it. */
export interface WebhookAttempt {
  number: number;
  run: number;
  startedAt: string;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
}

/** One delivery with its attempts, as the API shows it. */
export interface WebhookDelivery {
  id: string;
  seq: number;
  event: JobEvent['type'];
  url: string;
  status: WebhookDeliveryStatus;
  run: number;
  lastError: string | null;
  createdAt: string;
  completedAt: string | null;
  attempts: WebhookAttempt[];
}

export function toWebhookDelivery(row: WebhookDeliveryRow, attempts: WebhookAttemptRow[]): WebhookDelivery {
  return {
    id: row.id,
    seq: row.seq,
    event: row.event_type,
    url: row.url,
    status: row.status,
    run: row.run,
    lastError: row.last_error,
    createdAt: row.created_at.toISOString(),
    completedAt: row.completed_at?.toISOString() ?? null,
    attempts: attempts.map((attempt) => ({
      number: attempt.number,
      run: attempt.run,
      startedAt: attempt.started_at.toISOString(),
      durationMs: attempt.duration_ms,
      statusCode: attempt.status_code,
      error: attempt.error,
    })),
  };
}

/**
 * A delivery of `event`, if the job's webhook asks for it, as a part of the statement that writes the
 * change (run only if its `updated` part wrote the row): an event is committed with its delivery or
 * not at all, and no crash can lose one.
 */
export function webhookDeliveryPart(job: JobRow, event: JobEvent): RawBuilder<unknown> | undefined {
  if (!job.webhook || !webhookWants(job.webhook, event)) return undefined;
  return sql`delivered as (
    insert into webhook_deliveries (id, job_id, seq, event_type, url, payload)
    select ${randomId('whd')}, ${job.id}, ${event.seq}, ${event.type}, ${job.webhook.url}, ${webhookPayload(event)}
    where exists (select 1 from updated)
    on conflict (job_id, seq) do nothing)`;
}

/** A job's deliveries whose current run has no workflow yet, in event order. */
export async function undispatchedDeliveries(db: Db, jobId: string): Promise<{ id: string; run: number }[]> {
  return db
    .selectFrom('webhook_deliveries')
    .select(['id', 'run'])
    .where('job_id', '=', jobId)
    .where('dispatched_at', 'is', null)
    .orderBy('seq')
    .execute();
}

export async function markDispatched(db: Db, id: string, run: number): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ dispatched_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('run', '=', run)
    .execute();
}

/** A delivery with the secrets of the job's user, as an attempt needs them: one query per attempt. */
export async function findDeliveryToSend(db: Db, id: string) {
  return db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('jobs', 'jobs.id', 'd.job_id')
    .innerJoin('users', 'users.id', 'jobs.user_id')
    .selectAll('d')
    .select(['users.webhook_secret', signingPreviousSecret])
    .where('d.id', '=', id)
    .executeTakeFirst();
}

/** Whether an earlier delivery of the same job still waits for the outcome of its first attempt. */
export async function earlierFirstAttemptPending(db: Db, delivery: WebhookDeliveryRow): Promise<boolean> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .select('id')
    .where('job_id', '=', delivery.job_id)
    .where('seq', '<', delivery.seq)
    .where('status', '=', 'pending')
    .where('attempts', '=', 0)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Records an attempt of `run` and, if it succeeded, the delivery's success, in one transaction. False
 * when the run is no longer the current pending one (a retried activity after success, say).
 */
export async function recordWebhookAttempt(
  db: Kysely<Database>,
  id: string,
  run: number,
  result: WebhookAttemptResult,
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const succeeded = result.error === null;
    const row = await trx
      .updateTable('webhook_deliveries')
      .set({
        attempts: sql<number>`attempts + 1`,
        last_error: result.error,
        ...(succeeded ? { status: 'succeeded' as const, completed_at: sql<Date>`now()` } : {}),
      })
      .where('id', '=', id)
      .where('run', '=', run)
      .where('status', '=', 'pending')
      .returning('attempts')
      .executeTakeFirst();
    if (!row) return false;
    await trx
      .insertInto('webhook_attempts')
      .values({
        delivery_id: id,
        number: row.attempts,
        run,
        started_at: result.startedAt,
        duration_ms: result.durationMs,
        status_code: result.statusCode,
        error: result.error,
      })
      .execute();
    return true;
  });
}

/** The run gave up: the delivery is `failed` until it is redelivered. */
export async function markDeliveryFailed(db: Db, id: string, run: number, reason: string): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ status: 'failed', completed_at: sql<Date>`now()`, last_error: reason })
    .where('id', '=', id)
    .where('run', '=', run)
    .where('status', '=', 'pending')
    .execute();
}

async function withAttempts(db: Db, rows: WebhookDeliveryRow[]): Promise<WebhookDelivery[]> {
  if (rows.length === 0) return [];
  const attempts = await db
    .selectFrom('webhook_attempts')
    .selectAll()
    .where(
      'delivery_id',
      'in',
      rows.map((row) => row.id),
    )
    .orderBy('number')
    .execute();
  return rows.map((row) =>
    toWebhookDelivery(
      row,
      attempts.filter((attempt) => attempt.delivery_id === row.id),
    ),
  );
}

/** A job's deliveries in event order, each with its attempts. */
export async function listWebhookDeliveries(db: Db, jobId: string): Promise<WebhookDelivery[]> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('job_id', '=', jobId)
    .orderBy('seq')
    .execute();
  return withAttempts(db, rows);
}

export async function findWebhookDelivery(
  db: Db,
  jobId: string,
  id: string,
): Promise<WebhookDelivery | undefined> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('job_id', '=', jobId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && (await withAttempts(db, [row]))[0];
}

/**
 * Opens a new run of a delivery that has ended (failed or succeeded): `pending` again, not yet dispatched.
 * A pending delivery is left alone (its run is still going) unless its run was never started, which a
 * crash between reopening and dispatching leaves behind: that run is returned to be started.
 */
export async function reopenDelivery(
  db: Db,
  jobId: string,
  id: string,
): Promise<{ id: string; run: number } | 'not_found' | 'pending'> {
  const reopened = await db
    .updateTable('webhook_deliveries')
    .set({
      run: sql<number>`run + 1`,
      status: 'pending',
      dispatched_at: null,
      completed_at: null,
      last_error: null,
    })
    .where('job_id', '=', jobId)
    .where('id', '=', id)
    .where('status', '<>', 'pending')
    .returning(['id', 'run'])
    .executeTakeFirst();
  if (reopened) return reopened;
  const current = await db
    .selectFrom('webhook_deliveries')
    .select(['id', 'run', 'dispatched_at'])
    .where('job_id', '=', jobId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!current) return 'not_found';
  return current.dispatched_at ? 'pending' : { id: current.id, run: current.run };
}
