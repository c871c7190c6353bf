/** One text job of the text-credits scenario: what it asks and the completion limit it sets. */
export interface PlannedTextJob {
  prompt: string;
  maxTokens: number;
}

const ASCII_WORDS = ['kiln', 'glaze', 'cone', 'bisque', 'slip', 'kaolin', 'feldspar', 'celadon'];
/** Two- to four-byte characters: a prompt's bound counts its UTF-8 bytes, not its characters. */
const NON_ASCII_WORDS = ['été', 'Glasur', '🔥', 'печь', 'ñandú', '釉薬', 'χώμα', 'çömlek'];
/** No spaces: one word to the fake's tokenizer, 39 bytes to the bound. */
const UNSPACED = '窯の温度は千二百度に達した';
/** Words in a prompt, in turn: from a one-word prompt to one of a few thousand bytes. */
const PROMPT_WORDS = [1, 4, 12, 40, 120, 300];
/**
 * Tokens allowed beyond the reply's own, in turn (5 against the prompts' 6, so every pairing comes up):
 * 0 makes the limit exactly what the job writes.
 */
const SLACK_TOKENS = [0, 1, 20, 400, 4000];

function promptOf(run: number, index: number): string {
  const pool = index % 3 === 2 ? NON_ASCII_WORDS : ASCII_WORDS;
  const count = PROMPT_WORDS[index % PROMPT_WORDS.length]!;
  const words = Array.from({ length: count }, (_, word) => pool[(index + word) % pool.length]!);
  if (index % 5 === 4) words.push(UNSPACED);
  return `text credits ${run}.${index}: ${words.join(' ')}`;
}

/**
 * `count` jobs with distinct prompts (the fake's requests are matched to jobs by prompt). The fake
 * streams its whole reply whatever `max_completion_tokens` says, where a real provider stops there, so
 * each limit is at least the reply's tokens (`replyTokens`): a charge is never capped by the reservation.
 */
export function textCreditsPlan(
  run: number,
  count: number,
  replyTokens: (prompt: string) => number,
): PlannedTextJob[] {
  return Array.from({ length: count }, (_, index) => {
    const prompt = promptOf(run, index);
    return { prompt, maxTokens: replyTokens(prompt) + SLACK_TOKENS[index % SLACK_TOKENS.length]! };
  });
}
