import type { ColumnType, Generated, Selectable } from 'kysely';
import type { JobEventType } from '../events/job-event.js';
import type {
  CacheOutcome,
  ImageSize,
  JobFailureCode,
  JobKind,
  JobStatus,
  JobUsage,
  JobWaiting,
  JobWebhook,
  ServedBy,
  ServiceTier,
} from '../jobs/job.js';
import type { BatchLine, BatchLineOutcome } from '../providers/batch-provider.js';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** Filled by a column default on insert. */
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** One row per generation job: the record clients come back to, whatever happened to their socket. */
export interface JobsTable {
  id: string;
  user_id: string;
  idempotency_key: string;
  /** Hash of the canonical request body: tells a replayed request from a reused key. */
  request_sha256: string;
  prompt_sha256: string;
  kind: JobKind;
  provider: string;
  model: string;
  /** Null for text jobs. */
  size: ImageSize | null;
  status: JobStatus;
  progress: Generated<number>;
  attempts: Generated<number>;
  version: Generated<number>;
  workflow_id: string;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
  started_at: Timestamp | null;
  completed_at: Timestamp | null;
  failure_code: JobFailureCode | null;
  failure_message: string | null;
  storage_key: string | null;
  content_type: string | null;
  byte_size: number | null;
  result_sha256: string | null;
  /** The provider's own id of an accepted task, so a retried attempt resumes it instead of paying again. */
  provider_task_id: string | null;
  /** Set when retention removed the result: the row stays as a tombstone that holds the idempotency key. */
  purged_at: Timestamp | null;
  /** When the job got one of its user's running slots (the plan's `maxRunning`); null while it waits. */
  admitted_at: Timestamp | null;
  /** When the job's workflow first asked for admission; null on a row no workflow has yet run for. */
  workflow_seen_at: Timestamp | null;
  /** Where the job's events go, and which; null without a webhook. */
  webhook: ColumnType<JobWebhook | null, string | null | undefined, string | null>;
  /** Why the job waits, while it does (see JobWaiting). */
  waiting: ColumnType<JobWaiting | null, null | undefined, JobWaiting | null>;
  /** The fallback entry the job calls, once it left the one submitted for (see ServedBy); else null. */
  served_by: ColumnType<ServedBy | null, null | undefined, ServedBy | null>;
  /** How the result cache served the job (see CacheOutcome); null when it called a provider itself. */
  cache_outcome: ColumnType<CacheOutcome | null, null | undefined, CacheOutcome | null>;
  /** The job whose call it joined or whose result it reused; its end wakes the job while it waits. */
  cache_source_job_id: ColumnType<string | null, null | undefined, string | null>;
  /** The tokens of the text call that made its result (see JobUsage); null for images and before. */
  usage: ColumnType<JobUsage | null, null | undefined, JobUsage | null>;
  /** The tier serving the job (see ServiceTier). */
  tier: ColumnType<ServiceTier, ServiceTier | undefined, ServiceTier>;
}

export type JobRow = Selectable<JobsTable>;

/** Who may call the API. */
export interface UsersTable {
  id: string;
  name: string;
  /** A key of the configured PLANS: running slots and share of busy providers. */
  plan: ColumnType<string, string | undefined, string>;
  /** Credits left to spend; equals the sum of the user's ledger amounts, never negative. */
  credits: ColumnType<number, number | undefined, number>;
  /** `whsec_<base64>`: signs the user's webhook deliveries; created on first use. */
  webhook_secret: ColumnType<string | null, string | null | undefined, string | null>;
  /** When `webhook_secret` was made; set with it. */
  webhook_secret_created_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** The secret a rotation replaced: it signs beside the current one until its expiry, then never. */
  previous_webhook_secret: ColumnType<string | null, string | null | undefined, string | null>;
  /** When `previous_webhook_secret` stops signing; set with it. */
  previous_webhook_secret_expires_at: ColumnType<
    Date | null,
    Date | string | null | undefined,
    Date | string | null
  >;
  created_at: DefaultedTimestamp;
}

/** API keys are stored as SHA-256 only: the key itself is shown once, at creation. */
export interface ApiKeysTable {
  id: string;
  user_id: string;
  key_sha256: string;
  created_at: DefaultedTimestamp;
  revoked_at: Timestamp | null;
  /** Submit rate limiter state (GCRA): when the key's next submission would be on schedule. */
  submit_tat: Timestamp | null;
}

export type UserRow = Selectable<UsersTable>;

/** One circuit breaker per provider, shared by every worker through this row. */
export interface ProviderCircuitsTable {
  provider: string;
  state: Generated<'closed' | 'open' | 'half_open'>;
  consecutive_failures: Generated<number>;
  open_until: Timestamp | null;
  probe_started_at: Timestamp | null;
}

/** A provider call in flight: the rows of one limit key are its fleet-wide concurrency. */
export interface ProviderSlotsTable {
  job_id: string;
  limit_key: string;
  /** A slot whose worker died is free again after this. */
  expires_at: Timestamp;
}

/** A call waiting for one of its limit key's slots: free slots go to the longest waiting first. */
export interface ProviderSlotWaitersTable {
  job_id: string;
  limit_key: string;
  waiting_since: Timestamp;
  /** A waiter that stopped asking has left the queue after this. */
  expires_at: Timestamp;
}

/** The provider (limit key) asked everyone to hold back until `paused_until` (a 429, an empty quota). */
export interface ProviderPausesTable {
  limit_key: string;
  paused_until: Timestamp;
}

/**
 * The pacing of one limit key's calls, fleet-wide: GCRA's "theoretical arrival time", the moment from
 * which its next call may start.
 */
export interface ProviderPacingTable {
  limit_key: string;
  next_call_at: Timestamp;
}

export type CreditEntryKind = 'grant' | 'reserve' | 'settle' | 'refund';

/**
 * Every change to a balance, written in the same transaction as the change. `amount` is what the entry
 * did to the balance: a grant adds, a reservation takes the job's cost, a refund gives it back, and a
 * settle moves nothing (the reservation already took the credits) but closes the reservation.
 */
export interface CreditLedgerTable {
  id: Generated<string>;
  user_id: string;
  /** The job a reserve, settle or refund belongs to; null for grants. */
  job_id: string | null;
  kind: CreditEntryKind;
  amount: number;
  /** Which run of the job a reserve, settle or refund belongs to: 1, then one more per operator retry. */
  run: ColumnType<number, number | undefined, number>;
  created_at: DefaultedTimestamp;
}

/** The numbered changes of each job; see src/events/job-event.ts. */
export interface JobEventsTable {
  job_id: string;
  seq: number;
  type: JobEventType;
  /** The job as it was after this change (the public shape). */
  data: ColumnType<unknown, string, string>;
  created_at: DefaultedTimestamp;
  /** The OpenTelemetry trace the change was written in; null when tracing was off. */
  trace_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Which provider attempt of a text job is streaming: only its pieces make the text. */
export interface JobTextStreamsTable {
  job_id: string;
  /** The job's `attempts` when this attempt's provider call started. */
  attempt: number;
  started_at: DefaultedTimestamp;
}

/** The streamed text of an attempt, piece by piece; `offset` counts UTF-16 units from its start. */
export interface JobTextPiecesTable {
  job_id: string;
  attempt: number;
  offset: number;
  text: string;
}

export type WebhookDeliveryStatus = 'pending' | 'succeeded' | 'failed';

/** One event of one job to send to its webhook: written in the event's transaction when it matched. */
export interface WebhookDeliveriesTable {
  /** The Standard Webhooks `webhook-id`: stable across attempts and runs. */
  id: string;
  job_id: string;
  seq: number;
  event_type: JobEventType;
  url: string;
  /** The exact body sent (and signed) on every attempt. */
  payload: string;
  status: ColumnType<WebhookDeliveryStatus, WebhookDeliveryStatus | undefined, WebhookDeliveryStatus>;
  /** 1, then one more per redelivery; each run is its own workflow (`webhook-<id>-<run>`). */
  run: ColumnType<number, number | undefined, number>;
  /** Attempts over all runs. */
  attempts: ColumnType<number, number | undefined, number>;
  last_error: string | null;
  /** When the current run's workflow was started; null until then. */
  dispatched_at: Timestamp | null;
  created_at: DefaultedTimestamp;
  completed_at: Timestamp | null;
}

export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;

/** Every attempt to send a delivery, whatever came of it. */
export interface WebhookAttemptsTable {
  delivery_id: string;
  /** 1, 2, 3… per delivery, over all runs. */
  number: number;
  run: number;
  started_at: Timestamp;
  duration_ms: number;
  /** The receiver's status, or null when there was none (refused address, timeout, reset). */
  status_code: number | null;
  /** Why the attempt failed; null when it succeeded. */
  error: string | null;
}

export type WebhookAttemptRow = Selectable<WebhookAttemptsTable>;

/** A fleet-wide signal (e.g. the job failure rate) and whether it is firing. */
export interface SignalStatesTable {
  name: string;
  firing: boolean;
  changed_at: DefaultedTimestamp;
}

/** Per cache scope and request fingerprint, the job that produces (or produced) its result. */
export interface GenerationResultsTable {
  /** `user:<id>` or `deployment`: who may be served what this job made. */
  scope: string;
  /** `cacheFingerprint` of the request. */
  fingerprint: string;
  job_id: string;
  claimed_at: DefaultedTimestamp;
}

/** `forming`: takes pooled jobs; `sealed`: its lines are fixed; `submitted` to the provider; `settled`. */
export type ProviderBatchStatus = 'forming' | 'sealed' | 'submitted' | 'settled';

/** One batch Kiln sends a provider: a file of lines, the provider's batch made of it, and its state. */
export interface ProviderBatchesTable {
  id: string;
  provider: string;
  model: string;
  status: ColumnType<ProviderBatchStatus, ProviderBatchStatus | undefined, ProviderBatchStatus>;
  input_file_id: string | null;
  provider_batch_id: string | null;
  /** The provider's own word for where the batch stands, as last read. */
  provider_state: string | null;
  created_at: DefaultedTimestamp;
  submitted_at: Timestamp | null;
  expires_at: Timestamp | null;
  settled_at: Timestamp | null;
}

/**
 * How a line of a settled batch ended, as kept for its job: a written line's text is kept at the
 * job's result key, not here.
 */
export type BatchMemberOutcome = BatchLineOutcome extends infer Outcome
  ? Outcome extends { outcome: 'succeeded' }
    ? Omit<Outcome, 'text'>
    : Outcome
  : never;

/** A job of the batch tier: its line, pooled until a batch takes it, and how it ended there. */
export interface BatchMembersTable {
  job_id: string;
  workflow_id: string;
  provider: string;
  model: string;
  /** Cleared once its batch settled: the prompt is kept no longer than the batch needs it. */
  line: ColumnType<BatchLine | null, string | null, string | null>;
  batch_id: string | null;
  joined_at: DefaultedTimestamp;
  outcome: ColumnType<BatchMemberOutcome | null, string | null | undefined, string | null>;
}

export interface Database {
  jobs: JobsTable;
  provider_batches: ProviderBatchesTable;
  batch_members: BatchMembersTable;
  generation_results: GenerationResultsTable;
  users: UsersTable;
  api_keys: ApiKeysTable;
  provider_circuits: ProviderCircuitsTable;
  provider_slots: ProviderSlotsTable;
  provider_slot_waiters: ProviderSlotWaitersTable;
  provider_pauses: ProviderPausesTable;
  provider_pacing: ProviderPacingTable;
  job_events: JobEventsTable;
  job_text_streams: JobTextStreamsTable;
  job_text_pieces: JobTextPiecesTable;
  credit_ledger: CreditLedgerTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  signal_states: SignalStatesTable;
}
