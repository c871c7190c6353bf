import type { StreamedText, TextUpdate } from './api-types.js';

/** What a watcher holds before a text job's first update. */
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
