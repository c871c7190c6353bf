import { sql, type Kysely } from 'kysely';
import { randomId } from '../auth/api-key.js';
import { JOB_EVENTS_CHANNEL, encodeJobEvent, type JobEvent } from '../events/job-event.js';
import { generateWebhookSecret } from '../webhooks/signing.js';
import { webhookPayload, webhookWants } from '../webhooks/webhook-event.js';
import { toJob } from './job-repository.js';
import type { Database, JobRow } from './schema.js';
import { gcraOf, tokenRefusal, type SubmitRate, type TokenRefusal } from './submit-rate-limiter.js';

/** What a submission writes of its job; the database fills in the rest. */
export type NewJob = Pick<
  JobRow,
  | 'id'
  | 'user_id'
  | 'idempotency_key'
  | 'request_sha256'
  | 'prompt_sha256'
  | 'kind'
  | 'provider'
  | 'model'
  | 'size'
  | 'status'
  | 'workflow_id'
  | 'webhook'
  | 'tier'
>;

export interface SubmitJobInput {
  /** The SHA-256 of the API key submitting: its submit token is taken, and it must be live. */
  keySha256: string;
  rate: SubmitRate;
  job: NewJob;
  /** What the job costs, reserved from its user's balance with it. */
  cost: number;
}

export type SubmitJobResult =
  | { kind: 'created'; row: JobRow; plan: string }
  /** The key's job exists already: it is returned as it is, and nothing was reserved. */
  | { kind: 'replayed'; row: JobRow; plan: string }
  | TokenRefusal
  | { kind: 'insufficient_credits'; cost: number; balance: number };

/** Where `submit_job` writes the job's creation time, which only the database knows, into our JSON. */
const CREATED_AT = '<created_at>';

/** The rest of a new job's row, as the insert's defaults write it; its times are the database's. */
const INSERTED_DEFAULTS = {
  progress: 0,
  attempts: 0,
  version: 1,
  created_at: new Date(0),
  updated_at: new Date(0),
  started_at: null,
  completed_at: null,
  failure_code: null,
  failure_message: null,
  storage_key: null,
  content_type: null,
  byte_size: null,
  result_sha256: null,
  provider_task_id: null,
  purged_at: null,
  admitted_at: null,
  workflow_seen_at: null,
  waiting: null,
  served_by: null,
  cache_outcome: null,
  cache_source_job_id: null,
  usage: null,
} satisfies Omit<JobRow, keyof NewJob>;

function firstEvent(job: NewJob): JobEvent {
  const inserted = toJob({ ...job, ...INSERTED_DEFAULTS });
  return { seq: inserted.version, type: 'status', job: { ...inserted, createdAt: CREATED_AT } };
}

/** The first event's webhook delivery, if the job's webhook asks for `queued`. */
function firstDelivery(job: NewJob, event: JobEvent) {
  if (!job.webhook || !webhookWants(job.webhook, event)) return null;
  return { id: randomId('whd'), url: job.webhook.url, payload: webhookPayload(event) };
}

/** `submit_job`'s row: its outcome, and the job's columns (all null when it was refused). */
type SubmitJobRow = JobRow & {
  outcome: SubmitJobResult['kind'];
  ahead_ms: number | null;
  balance: number | null;
  plan: string | null;
};

/**
 * A submission in one statement (`submit_job`): the key's submit token, then the job with its first
 * event and its cost reserved, or the key's existing job on a replay. Safe to repeat: the same key
 * lands on the same job, and reserves nothing again.
 */
export async function submitJob(db: Kysely<Database>, input: SubmitJobInput): Promise<SubmitJobResult> {
  const { keySha256, rate, job, cost } = input;
  const { intervalSecs, toleranceSecs } = gcraOf(rate);
  const event = firstEvent(job);
  const delivery = firstDelivery(job, event);
  const { rows } = await sql<SubmitJobRow>`
    select s.outcome, s.ahead_ms, s.balance, s.plan, (s.job).*
    from submit_job(${keySha256}, ${intervalSecs}, ${toleranceSecs}, ${JSON.stringify(job)}::jsonb, ${cost},
      ${encodeJobEvent(event)}, ${JOB_EVENTS_CHANNEL}, ${job.webhook ? generateWebhookSecret() : null},
      ${delivery && JSON.stringify(delivery)}::jsonb) as s
  `.execute(db);
  const { outcome, ahead_ms, balance, plan, ...row } = rows[0]!;
  switch (outcome) {
    case 'created':
    case 'replayed':
      return { kind: outcome, row, plan: plan! };
    case 'insufficient_credits':
      return { kind: outcome, cost, balance: balance! };
    case 'rate_limited':
    case 'unauthorized':
      return tokenRefusal(outcome, ahead_ms, rate);
  }
}
