import { setTimeout as sleep } from 'node:timers/promises';
import {
  completionLine,
  nowSeconds,
  refusedLine,
  unrunLine,
  type BatchError,
  type BatchInputLine,
  type BatchObject,
  type BatchResultLine,
  type FakeBatchStatus,
  type StoredFile,
} from './openai-batch-wire.js';
import { promptTokens, type ChatBody } from './openai-chat-server.js';

/**
 * How the fake's endpoint answers one line: a completion (`ok`), one stopped by content filtering after
 * a few tokens (`content_filter`; billed like any 200), or an HTTP failure (not billed).
 */
export type BatchLineBehaviour = 'ok' | 'content_filter' | { status: number; code?: string; message: string };

/** How long each step of a batch takes; lines run one after another, so a batch can end part done. */
export interface BatchTimings {
  validateMs: number;
  /** Before the line at `index` (0-based) runs. */
  lineMs: (index: number) => number;
  finalizeMs: number;
  /** From `cancelling` to `cancelled`. */
  cancelMs: number;
  /** From creation to `expired`, for a batch not done by then; unset: never (OpenAI's 24 h). */
  expireAfterMs: number | undefined;
}

/** A batch and what the fake keeps beside it. */
export interface FakeBatch {
  object: BatchObject;
  lines: BatchInputLine[];
  /** Why validation refuses the batch; empty when it will run. */
  refusal: BatchError[];
  /** The lines that ran, in the order they did. */
  results: BatchResultLine[];
}

export interface BatchLifecycleDeps {
  timings: BatchTimings;
  closing: AbortSignal;
  lineBehaviour: (body: ChatBody) => BatchLineBehaviour;
  reply: (prompt: string) => string[];
  /** Each billed line's custom_id is added here as it runs. */
  linesRun: string[];
  storeFile: (filename: string, purpose: string, content: string) => StoredFile;
}

const STATUS_TIMES = {
  in_progress: 'in_progress_at',
  finalizing: 'finalizing_at',
  completed: 'completed_at',
  failed: 'failed_at',
  expired: 'expired_at',
  cancelling: 'cancelling_at',
  cancelled: 'cancelled_at',
} as const;

/** Read through a call: the batch's status changes between the awaits of one run. */
function isIn(batch: FakeBatch, ...statuses: FakeBatchStatus[]): boolean {
  return statuses.includes(batch.object.status);
}

function enter(batch: FakeBatch, status: Exclude<FakeBatchStatus, 'validating'>): void {
  batch.object.status = status;
  batch.object[STATUS_TIMES[status]] = nowSeconds();
}

/** Runs batches through OpenAI's states on the fake's timers, and ends them as OpenAI does. */
export function batchLifecycle(deps: BatchLifecycleDeps) {
  const { timings, closing } = deps;

  /** Waits; false when the fake is closing, and the batch should be left as it is. */
  const pause = (ms: number) =>
    sleep(ms, undefined, { signal: closing }).then(
      () => true,
      () => false,
    );

  function runLine(batch: FakeBatch, line: BatchInputLine): void {
    const behaviour = deps.lineBehaviour(line.body);
    const counts = batch.object.request_counts;
    if (typeof behaviour === 'object') {
      batch.results.push(refusedLine(line, behaviour));
      counts.failed += 1;
      return;
    }
    const tokens = deps.reply(line.body.messages.at(-1)?.content ?? '');
    const sent = behaviour === 'ok' ? tokens : tokens.slice(0, 2);
    const usage = { prompt_tokens: promptTokens(line.body), completion_tokens: sent.length };
    const finishReason = behaviour === 'ok' ? 'stop' : 'content_filter';
    batch.results.push(completionLine(line, sent.join(''), finishReason, usage));
    counts.completed += 1;
    deps.linesRun.push(line.custom_id);
  }

  function writeFile(batch: FakeBatch, kind: 'output' | 'error', lines: BatchResultLine[]): string | null {
    if (lines.length === 0) return null;
    const content = lines.map((line) => `${JSON.stringify(line)}\n`).join('');
    return deps.storeFile(`${batch.object.id}_${kind}.jsonl`, 'batch_output', content).id;
  }

  /** Writes the output and error files; the lines not run yet go to the error file with the reason. */
  function end(batch: FakeBatch, status: 'completed' | 'expired' | 'cancelled'): void {
    const ran = new Set(batch.results.map((result) => result.custom_id));
    const code = status === 'expired' ? 'batch_expired' : 'batch_cancelled';
    const unrun = batch.lines
      .filter((line) => !ran.has(line.custom_id))
      .map((line) => unrunLine(line.custom_id, code));
    const succeeded = (result: BatchResultLine) => result.response?.status_code === 200;
    batch.object.output_file_id = writeFile(batch, 'output', batch.results.filter(succeeded));
    const errors = [...batch.results.filter((result) => !succeeded(result)), ...unrun];
    batch.object.error_file_id = writeFile(batch, 'error', errors);
    enter(batch, status);
  }

  async function run(batch: FakeBatch): Promise<void> {
    if (!(await pause(timings.validateMs)) || !isIn(batch, 'validating')) return;
    if (batch.refusal.length > 0) {
      batch.object.errors = { object: 'list', data: batch.refusal };
      return enter(batch, 'failed');
    }
    enter(batch, 'in_progress');
    for (const [index, line] of batch.lines.entries()) {
      if (!(await pause(timings.lineMs(index)))) return;
      // Cancelled or expired while this line waited its turn.
      if (!isIn(batch, 'in_progress')) return;
      runLine(batch, line);
    }
    enter(batch, 'finalizing');
    // A cancel that came while it finalized has the last word.
    if ((await pause(timings.finalizeMs)) && isIn(batch, 'finalizing')) end(batch, 'completed');
  }

  async function expire(batch: FakeBatch, afterMs: number): Promise<void> {
    if (!(await pause(afterMs))) return;
    if (isIn(batch, 'validating', 'in_progress')) end(batch, 'expired');
  }

  return {
    start(batch: FakeBatch): void {
      void run(batch);
      if (timings.expireAfterMs !== undefined) void expire(batch, timings.expireAfterMs);
    },
    /** False when the batch had ended, and OpenAI would refuse to cancel it. */
    cancel(batch: FakeBatch): boolean {
      if (isIn(batch, 'cancelling', 'cancelled')) return true;
      if (!isIn(batch, 'validating', 'in_progress', 'finalizing')) return false;
      enter(batch, 'cancelling');
      void pause(timings.cancelMs).then((open) => open && end(batch, 'cancelled'));
      return true;
    },
  };
}
