/**
 * Text jobs stream their output to subscribers outside the numbered events: tokens are too many to
 * persist one by one, and they must not pass through workflow history. The text of the current attempt
 * lives in one row that grows; each growth is announced on the events channel in the same statement.
 * Offsets count UTF-16 code units, as JavaScript strings do.
 */

/** `text`: `delta` goes at `offset` of attempt `attempt`'s text; `reset`: an attempt starts from empty. */
export type TextUpdate =
  { type: 'text'; attempt: number; offset: number; delta: string } | { type: 'reset'; attempt: number };

/** A text job's output so far, as a watcher holds it. */
export interface StreamedText {
  attempt: number;
  text: string;
}

export const NO_TEXT: StreamedText = { attempt: 0, text: '' };

/**
 * The text after an update. An update from an older attempt is stale, and a newer attempt starts from
 * empty. A delta at offset 0 replaces what was there: that is how a snapshot arrives after a reconnect.
 * The server never leaves a gap, so a delta past the end is a bug: it is dropped rather than garbling.
 */
export function applyTextUpdate(current: StreamedText, update: TextUpdate): StreamedText {
  if (update.attempt < current.attempt) return current;
  const text = update.attempt > current.attempt ? '' : current.text;
  if (update.type === 'reset' || update.offset > text.length) return { attempt: update.attempt, text };
  return { attempt: update.attempt, text: text.slice(0, update.offset) + update.delta };
}
