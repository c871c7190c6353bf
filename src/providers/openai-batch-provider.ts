import { APIError, toFile, type OpenAI } from 'openai';
import { FailureCode } from '../jobs/job.js';
import {
  ENDED_BATCH_STATES,
  type BatchLine,
  type BatchLineOutcome,
  type ProviderBatch,
  type TextBatchProvider,
} from './batch-provider.js';
import {
  classifyOpenAIBatchLine,
  openAIBatchLineSchema,
  type OpenAIBatchLine,
} from './classify-openai-batch-line.js';
import { classifyOpenAIError } from './classify-openai-error.js';
import { createOpenAIClient, type OpenAIProviderOptions } from './openai-client.js';
import { ProviderError } from './provider-error.js';

/** The metadata key a provider batch carries Kiln's id of the batch under: how a retry finds it. */
const KILN_BATCH_ID_KEY = 'kiln_batch_id';

/**
 * How far back a retry looks for the batch an earlier attempt created. Attempts are minutes apart, so
 * a batch older than two days, or further down the list than a thousand, is not one of ours.
 */
const BATCH_LOOKBACK_SECONDS = 48 * 3600;
const BATCH_LOOKBACK_ENTRIES = 1000;

/** The name a retried upload finds its file by. */
function batchFileName(batchId: string): string {
  return `kiln-batch-${batchId}.jsonl`;
}

function toJsonl(lines: readonly BatchLine[]): string {
  return lines
    .map(({ jobId, prompt, model, maxTokens }) =>
      JSON.stringify({
        custom_id: jobId,
        method: 'POST',
        url: '/v1/chat/completions',
        body: { model, messages: [{ role: 'user', content: prompt }], max_completion_tokens: maxTokens },
      }),
    )
    .join('\n');
}

function toProviderBatch(batch: OpenAI.Batch): ProviderBatch {
  const counts = batch.request_counts ?? { total: 0, completed: 0, failed: 0 };
  const reasons = (batch.errors?.data ?? []).flatMap((error) => (error.message ? [error.message] : []));
  return {
    id: batch.id,
    state: batch.status,
    // The API sends null, not nothing, for a time it has not set.
    expiresAt: typeof batch.expires_at === 'number' ? new Date(batch.expires_at * 1000).toISOString() : null,
    counts: { total: counts.total, completed: counts.completed, failed: counts.failed },
    outputFileId: batch.output_file_id ?? null,
    errorFileId: batch.error_file_id ?? null,
    refusal: batch.status === 'failed' ? reasons.join('; ') || 'the provider refused the batch' : null,
  };
}

async function findUploadedFile(client: OpenAI, fileName: string): Promise<string | undefined> {
  for await (const file of client.files.list({ purpose: 'batch' })) {
    if (file.filename === fileName && file.status !== 'error') return file.id;
  }
  return undefined;
}

/** The batch an earlier attempt created for `batchId`, looking back only as far as a retry could. */
async function findBatch(client: OpenAI, batchId: string): Promise<OpenAI.Batch | undefined> {
  const oldest = Date.now() / 1000 - BATCH_LOOKBACK_SECONDS;
  let seen = 0;
  // The list is newest first: once past the bound, nothing further down can be ours.
  for await (const batch of client.batches.list({ limit: 100 })) {
    if (batch.created_at < oldest || ++seen > BATCH_LOOKBACK_ENTRIES) return undefined;
    if (batch.metadata?.[KILN_BATCH_ID_KEY] === batchId) return batch;
  }
  return undefined;
}

/** One line of a batch file; a line that is not one is the provider's fault, and fails the read. */
function parseLine(text: string, fileId: string): OpenAIBatchLine {
  try {
    return openAIBatchLineSchema.parse(JSON.parse(text));
  } catch {
    throw new ProviderError(FailureCode.invalidOutput, `batch file ${fileId} has an unreadable line`, false);
  }
}

async function readLines(client: OpenAI, fileId: string | null): Promise<OpenAIBatchLine[]> {
  if (fileId === null) return [];
  const text = await (await client.files.content(fileId)).text();
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => parseLine(line, fileId));
}

async function readOutcomes(
  client: OpenAI,
  batch: ProviderBatch,
  jobIds: readonly string[],
): Promise<BatchLineOutcome[]> {
  // Until the batch ends its files are not final: a line missing now may yet run, and be billed.
  if (!ENDED_BATCH_STATES.includes(batch.state)) {
    throw new ProviderError(FailureCode.internal, `batch ${batch.id} is ${batch.state}, not ended`, false);
  }
  const [output, errors] = await Promise.all([
    readLines(client, batch.outputFileId),
    readLines(client, batch.errorFileId),
  ]);
  const byJob = new Map<string, BatchLineOutcome>();
  for (const line of [...output, ...errors]) {
    if (!byJob.has(line.custom_id)) byJob.set(line.custom_id, classifyOpenAIBatchLine(line));
  }
  // A job no file mentions never ran: the batch ended before it.
  const reason = batch.state === 'expired' ? 'expired' : 'cancelled';
  return jobIds.map((jobId) => byJob.get(jobId) ?? { jobId, outcome: 'unrun', reason });
}

/**
 * Cancels, safe to repeat: a batch that ended before the request came (OpenAI refuses to cancel it)
 * is returned as it ended.
 */
async function cancel(client: OpenAI, providerBatchId: string): Promise<OpenAI.Batch> {
  try {
    return await client.batches.cancel(providerBatchId);
  } catch (error) {
    if (!(error instanceof APIError) || (error.status !== 400 && error.status !== 409)) throw error;
    const batch = await client.batches.retrieve(providerBatchId);
    if (!ENDED_BATCH_STATES.includes(batch.status)) throw error;
    return batch;
  }
}

/** Runs one provider exchange so that only a classified ProviderError leaves it. */
async function classified<T>(exchange: () => Promise<T>): Promise<T> {
  try {
    return await exchange();
  } catch (error) {
    throw classifyOpenAIError(error);
  }
}

/** A TextBatchProvider over OpenAI's Files and Batch APIs, chat completions only. */
export function createOpenAIBatchProvider(options: OpenAIProviderOptions): TextBatchProvider {
  const client = createOpenAIClient(options);
  return {
    name: 'openai',
    uploadLines: (batchId, lines) =>
      classified(async () => {
        const fileName = batchFileName(batchId);
        const existing = await findUploadedFile(client, fileName);
        if (existing) return existing;
        const file = await toFile(Buffer.from(toJsonl(lines), 'utf8'), fileName);
        return (await client.files.create({ file, purpose: 'batch' })).id;
      }),
    findOrCreateBatch: (batchId, inputFileId) =>
      classified(async () => {
        const batch =
          (await findBatch(client, batchId)) ??
          (await client.batches.create({
            input_file_id: inputFileId,
            endpoint: '/v1/chat/completions',
            completion_window: '24h',
            metadata: { [KILN_BATCH_ID_KEY]: batchId },
          }));
        return toProviderBatch(batch);
      }),
    retrieveBatch: (providerBatchId) =>
      classified(async () => toProviderBatch(await client.batches.retrieve(providerBatchId))),
    readOutcomes: (batch, jobIds) => classified(() => readOutcomes(client, batch, jobIds)),
    cancelBatch: (providerBatchId) =>
      classified(async () => toProviderBatch(await cancel(client, providerBatchId))),
  };
}
