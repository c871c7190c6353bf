import type { FailureCode, TokenUsage } from '../jobs/job.js';

/** One job's request in a provider batch: a chat completion, named by the job's id. */
export interface BatchLine {
  jobId: string;
  prompt: string;
  model: string;
  maxTokens: number;
}

/**
 * Where a provider batch stands, in OpenAI's words: `validating` → `in_progress` → `finalizing` →
 * `completed`; or it ends `failed` (the file was refused), `expired` (its window passed with lines
 * undone) or `cancelled`.
 */
export const PROVIDER_BATCH_STATES = [
  'validating',
  'in_progress',
  'finalizing',
  'completed',
  'failed',
  'expired',
  'cancelling',
  'cancelled',
] as const;
export type ProviderBatchState = (typeof PROVIDER_BATCH_STATES)[number];

/** The states after which a batch's output and error files are final. */
export const ENDED_BATCH_STATES: readonly ProviderBatchState[] = [
  'completed',
  'failed',
  'expired',
  'cancelled',
];

export interface ProviderBatch {
  /** The provider's id of the batch (`batch_…`). */
  id: string;
  state: ProviderBatchState;
  /** When the provider gives up on the lines not done (ISO); null before it says. */
  expiresAt: string | null;
  counts: { total: number; completed: number; failed: number };
  outputFileId: string | null;
  errorFileId: string | null;
  /** Why a `failed` batch was refused as a whole (its input file's errors), joined; else null. */
  refusal: string | null;
}

/**
 * How one line of a batch ended: written (`succeeded`, with what the provider billed), refused or
 * failed (`failed`, classified once, here, as a provider call's failure is), or never run because the
 * batch ended first (`unrun`: expired or cancelled; the provider bills nothing for it).
 */
export type BatchLineOutcome =
  | { jobId: string; outcome: 'succeeded'; text: string; usage: TokenUsage; requestId?: string }
  | { jobId: string; outcome: 'failed'; code: FailureCode; message: string; retryable: boolean }
  | { jobId: string; outcome: 'unrun'; reason: 'expired' | 'cancelled' };

/**
 * A provider's batch interface (OpenAI's Files and Batch APIs): every write is safe to repeat, since a
 * workflow's activity may run it twice. Throws only `ProviderError`.
 */
export interface TextBatchProvider {
  readonly name: string;
  /**
   * Uploads the lines as one JSONL file named for `batchId` (Kiln's id of the batch), or finds the
   * file an earlier attempt uploaded; returns the provider's file id.
   */
  uploadLines(batchId: string, lines: readonly BatchLine[]): Promise<string>;
  /**
   * The provider batch created for `batchId` from `inputFileId`: found by its metadata if an earlier
   * attempt created it (a second one would bill every line twice), else created now.
   */
  findOrCreateBatch(batchId: string, inputFileId: string): Promise<ProviderBatch>;
  retrieveBatch(providerBatchId: string): Promise<ProviderBatch>;
  /**
   * How each line of an ended batch ended, read from its output and error files: one outcome per job
   * of `jobIds`, a job the files do not mention being `unrun`.
   */
  readOutcomes(batch: ProviderBatch, jobIds: readonly string[]): Promise<BatchLineOutcome[]>;
  /** Asks the provider to stop a batch; lines it had not run end `unrun`. */
  cancelBatch(providerBatchId: string): Promise<ProviderBatch>;
}
