import type { Payload } from '@temporalio/common';

/** Where a marker keeps what the SDK encoded (a local activity's result); its other details are Core's own. */
const MARKER_SDK_DETAILS = ['result'];

/**
 * Every list of payloads in a history the SDK's data converter encodes (inputs, results, …), found
 * by walking it: `payloads` is the one field of Temporal's Payloads message, wherever that sits.
 */
export function payloadLists(value: unknown): Payload[][] {
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap(payloadLists);
  return Object.entries(value).flatMap(([key, field]) => {
    if (key === 'payloads' && Array.isArray(field)) return [field as Payload[]];
    if (key === 'markerRecordedEventAttributes') {
      const { details, ...rest } = field as { details?: Record<string, unknown> };
      return [...MARKER_SDK_DETAILS.map((name) => details?.[name]), rest].flatMap(payloadLists);
    }
    return payloadLists(field);
  });
}

/** Replaces, in place, each payload list of a history with what `convert` makes of it. */
export async function convertPayloadLists(
  history: unknown,
  convert: (payloads: Payload[]) => Promise<Payload[]>,
): Promise<void> {
  for (const list of payloadLists(history)) list.splice(0, list.length, ...(await convert(list)));
}

/**
 * Every byte string and string of a value as text, one per line: what a search of the stored history
 * could find (payload bytes are base64 in a history's JSON form, so a search of that could find nothing).
 */
export function storedText(value: unknown): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (Array.isArray(value)) return value.map(storedText).join('\n');
  if (value && typeof value === 'object') return Object.values(value).map(storedText).join('\n');
  return String(value);
}
