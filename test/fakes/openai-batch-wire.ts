import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { chatBody } from './openai-chat-server.js';

/*
 * OpenAI's Files and Batch APIs as the batch fake writes them: objects, list pages, and the lines of a
 * batch's input, output and error files.
 */

/** One request of a batch's input file. */
const inputLineSchema = z.object({
  custom_id: z.string().min(1),
  method: z.literal('POST'),
  url: z.literal('/v1/chat/completions'),
  body: chatBody,
});
export type BatchInputLine = z.infer<typeof inputLineSchema>;

/** An entry of a failed batch's `errors.data`: why its input file was refused. */
export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** One line of an input file: its request, or why the batch refuses it. */
function readInputLine(text: string, seen: Set<string>): BatchInputLine | { code: string; message: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { code: 'invalid_json_line', message: 'This line is not valid JSON.' };
  }
  const parsed = inputLineSchema.safeParse(json);
  if (!parsed.success) return { code: 'invalid_request', message: parsed.error.message };
  const customId = parsed.data.custom_id;
  if (seen.has(customId)) {
    return { code: 'duplicate_custom_id', message: `The custom_id '${customId}' is used more than once.` };
  }
  seen.add(customId);
  return parsed.data;
}

/** The input file's requests, or why the batch refuses it (1-based line numbers, as OpenAI gives). */
export function parseInputFile(content: string): { lines: BatchInputLine[]; errors: BatchError[] } {
  const lines: BatchInputLine[] = [];
  const errors: BatchError[] = [];
  const seen = new Set<string>();
  for (const [index, text] of content.split('\n').entries()) {
    if (text.trim().length === 0) continue;
    const read = readInputLine(text, seen);
    if ('custom_id' in read) lines.push(read);
    else errors.push({ ...read, param: null, line: index + 1 });
  }
  return { lines, errors };
}

export type FakeBatchStatus =
  | 'validating'
  | 'in_progress'
  | 'finalizing'
  | 'completed'
  | 'failed'
  | 'expired'
  | 'cancelling'
  | 'cancelled';

/** A batch object as the API sends it: null, not absent, for what is not set yet. */
export interface BatchObject {
  id: string;
  object: 'batch';
  endpoint: string;
  errors: { object: 'list'; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: FakeBatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
}

/** A batch as `POST /v1/batches` answers: validating, nothing run, expiring `expiresInMs` from now. */
export function newBatchObject(batch: {
  input_file_id: string;
  endpoint: string;
  completion_window: string;
  metadata?: Record<string, string> | null;
  total: number;
  expiresInMs: number;
}): BatchObject {
  const created = nowSeconds();
  return {
    id: `batch_${randomUUID().replaceAll('-', '')}`,
    object: 'batch',
    endpoint: batch.endpoint,
    errors: null,
    input_file_id: batch.input_file_id,
    completion_window: batch.completion_window,
    status: 'validating',
    output_file_id: null,
    error_file_id: null,
    created_at: created,
    in_progress_at: null,
    expires_at: created + Math.ceil(batch.expiresInMs / 1000),
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    request_counts: { total: batch.total, completed: 0, failed: 0 },
    metadata: batch.metadata ?? null,
  };
}

/** A file object as the API sends it; `content` is the fake's own, never sent with it. */
export interface StoredFile {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  status: 'processed';
  content: string;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** A page of a list, cut as OpenAI cuts it: `limit` items after the one named `after`. */
export function listPage<Item extends { id: string }>(
  items: readonly Item[],
  query: URLSearchParams,
  maxLimit: number,
) {
  const limit = Math.min(maxLimit, Math.max(1, Number(query.get('limit') ?? maxLimit) || maxLimit));
  const after = query.get('after');
  const start = after === null ? 0 : items.findIndex((item) => item.id === after) + 1;
  const data = items.slice(start, start + limit);
  return {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: start + limit < items.length,
  };
}

/** A line of an output or error file. */
export interface BatchResultLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: object } | null;
  error: { code: string; message: string } | null;
}

function resultLine(customId: string, statusCode: number, body: object): BatchResultLine {
  const response = { status_code: statusCode, request_id: `req_${randomUUID()}`, body };
  return { id: `batch_req_${randomUUID()}`, custom_id: customId, response, error: null };
}

/** A line that ran: the chat completion its request would have had, billed as `usage` says. */
export function completionLine(
  line: BatchInputLine,
  content: string,
  finishReason: 'stop' | 'content_filter',
  usage: { prompt_tokens: number; completion_tokens: number },
): BatchResultLine {
  const body = {
    id: `chatcmpl-${randomUUID()}`,
    object: 'chat.completion',
    created: nowSeconds(),
    model: line.body.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: null },
        logprobs: null,
        finish_reason: finishReason,
      },
    ],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  };
  return resultLine(line.custom_id, 200, body);
}

/** A line its endpoint refused, with the error body the same request would have had over HTTP. */
export function refusedLine(
  line: BatchInputLine,
  failure: { status: number; code?: string; message: string },
): BatchResultLine {
  const type = failure.status >= 500 ? 'server_error' : 'invalid_request_error';
  const error = { message: failure.message, type, param: null, code: failure.code ?? null };
  return resultLine(line.custom_id, failure.status, { error });
}

const UNRUN_MESSAGES = {
  batch_expired: 'This request could not be executed before the completion window expired.',
  batch_cancelled: 'This request was not executed because the batch was cancelled.',
} as const;

/** A line the batch ended before running: the error file says why, and nothing was billed. */
export function unrunLine(customId: string, code: keyof typeof UNRUN_MESSAGES): BatchResultLine {
  const error = { code, message: UNRUN_MESSAGES[code] };
  return { id: `batch_req_${randomUUID()}`, custom_id: customId, response: null, error };
}
