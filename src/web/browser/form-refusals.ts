import { KilnApiError } from '../../client/index.js';
import { creditWords } from './job-words.js';

/*
 * Where the form shows why a submission was refused: next to the field the refusal concerns, the
 * price for a 402, the button for a 429 and whatever concerns no one field.
 */

/** The form's places for a refusal: each is the id of a `<p>` beside it, `${place}-error`. */
export type RefusalPlace =
  'prompt' | 'provider' | 'model' | 'size' | 'max-tokens' | 'deadline' | 'cost' | 'submit';

export const REFUSAL_PLACES: readonly RefusalPlace[] = [
  'prompt',
  'provider',
  'model',
  'size',
  'max-tokens',
  'deadline',
  'cost',
  'submit',
];

/** `invalid_request` names each field as its path in the body. */
const FIELDS: Record<string, RefusalPlace> = {
  prompt: 'prompt',
  provider: 'provider',
  model: 'model',
  'params.size': 'size',
  'params.maxTokens': 'max-tokens',
  'deadline.startWithinSeconds': 'deadline',
  'deadline.finishWithinSeconds': 'deadline',
};

function fieldOf(details: unknown): RefusalPlace {
  const fields = (details as { fields?: { field: string }[] } | undefined)?.fields ?? [];
  return fields.map(({ field }) => FIELDS[field]).find((place) => place !== undefined) ?? 'submit';
}

function numberIn(details: unknown, name: string): number | undefined {
  const value = (details as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'number' ? value : undefined;
}

/** Where a refusal goes, and what it says there. */
export function placeRefusal(error: unknown): { place: RefusalPlace; words: string } {
  if (!(error instanceof KilnApiError)) return { place: 'submit', words: `Not sent: ${String(error)}` };
  switch (error.code) {
    case 'insufficient_credits': {
      const [cost, balance] = [numberIn(error.details, 'cost'), numberIn(error.details, 'balance')];
      const words =
        cost === undefined
          ? error.message
          : `This job costs ${creditWords(cost)} and your balance is ${balance ?? 0}.`;
      return { place: 'cost', words: `Not enough credits: ${words}` };
    }
    case 'rate_limited': {
      const wait = numberIn(error.details, 'retryAfterMs');
      const again = wait === undefined ? '' : ` Try again in ${Math.ceil(wait / 1000)} s.`;
      return { place: 'submit', words: `Too many submissions: ${error.message}.${again}` };
    }
    case 'unknown_provider':
      return { place: 'provider', words: error.message };
    case 'unknown_model':
      return { place: 'model', words: error.message };
    case 'unsupported_size':
      return { place: 'size', words: error.message };
    case 'invalid_request':
      return { place: fieldOf(error.details), words: error.message };
    default:
      return { place: 'submit', words: `${error.code}: ${error.message}` };
  }
}
