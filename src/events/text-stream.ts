/**
 * Text jobs stream their output to subscribers outside the numbered events: tokens are too many to
 * persist one by one, and they must not pass through workflow history. The text of the current attempt
 * lives in one row that grows; each growth is announced on the events channel in the same statement.
 * Offsets count UTF-16 code units, as JavaScript strings do.
 */

/** `text`: `delta` goes at `offset` of attempt `attempt`'s text; `reset`: an attempt starts from empty. */
export type TextUpdate =
  { type: 'text'; attempt: number; offset: number; delta: string } | { type: 'reset'; attempt: number };

/** A text job's output so far, as `GET /v1/generations/:id/text` answers it. */
export interface StreamedText {
  attempt: number;
  text: string;
}

/** The answer before the first attempt has written anything. */
export const NO_TEXT: StreamedText = { attempt: 0, text: '' };
