import type { Kysely } from 'kysely';
import { appendText, beginTextAttempt } from '../db/text-stream-repository.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';

/** Tokens are written this often, together: one statement per interval, not one per token. */
const FLUSH_INTERVAL_MS = 50;
/** Bytes of JSON one statement's piece may take: its NOTIFY payload must stay under 8000. */
const MAX_PIECE_BYTES = 7000;

export interface TextStreamWriter {
  append(delta: string): void;
  /** Writes what is pending and stops; a failed write is logged, not thrown: the output is what is paid for. */
  close(): Promise<void>;
}

/** The longest head of `text` whose JSON fits a NOTIFY, never ending inside a surrogate pair. */
function pieceOf(text: string): string {
  let length = Math.min(text.length, MAX_PIECE_BYTES);
  const fits = (n: number) => Buffer.byteLength(JSON.stringify(text.slice(0, n))) <= MAX_PIECE_BYTES;
  while (!fits(length)) length = Math.floor(length / 2);
  if (length < text.length && /[\uD800-\uDBFF]/.test(text[length - 1]!)) length -= 1;
  return text.slice(0, length);
}

/**
 * Streams one attempt's text to the job's subscribers through Postgres. Writes are in order and never
 * overlap; a failed write keeps its text pending for the next one, so subscribers see no gap.
 */
export async function openTextStream(
  db: Kysely<Database>,
  jobId: string,
  attempt: number,
  logger: Logger,
): Promise<TextStreamWriter> {
  await beginTextAttempt(db, jobId, attempt);
  let written = 0;
  let pending = '';
  let writing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let flushedOnce = false;

  async function writePending(): Promise<void> {
    while (pending.length > 0) {
      const delta = pieceOf(pending);
      await appendText(db, jobId, { attempt, offset: written, delta });
      written += delta.length;
      pending = pending.slice(delta.length);
    }
  }

  function flush(): Promise<void> {
    timer = undefined;
    writing = writing
      .then(writePending)
      .catch((error: unknown) => logger.warn({ jobId, attempt, err: error }, 'streaming text failed'));
    return writing;
  }

  return {
    append(delta) {
      pending += delta;
      if (timer) return;
      // The first token goes at once: the wait for it is what a reader feels; later ones are batched.
      timer = setTimeout(() => void flush(), flushedOnce ? FLUSH_INTERVAL_MS : 0);
      flushedOnce = true;
    },
    async close() {
      clearTimeout(timer);
      await flush();
    },
  };
}
