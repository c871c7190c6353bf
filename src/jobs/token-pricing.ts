import type { TokenPrice, TokenPriceTable } from '../config/index.js';
import type { TokenUsage } from './job.js';

/**
 * How a usage-priced text job is charged, fixed at its submission: the prices then in force and the
 * bound on its prompt's tokens that its reservation counted.
 */
export interface TokenPricing extends TokenPrice {
  promptTokens: number;
}

/*
 * Chat formats wrap a prompt in a few tokens of their own (OpenAI's counts about 7 per message); the
 * bound leaves room for them.
 */
const CHAT_FORMAT_TOKENS = 16;

/**
 * An upper bound on the tokens a prompt counts as: tokenizers of the models Kiln calls (byte-level
 * BPE, SentencePiece with byte fallback) make no token of less than one byte.
 */
export function promptTokenBound(prompt: string): number {
  return new TextEncoder().encode(prompt).byteLength + CHAT_FORMAT_TOKENS;
}

/**
 * Tokens of streamed text when the provider's own count is not known (a stream cut short): OpenAI's
 * rule of thumb, a token per four bytes of English.
 */
export function estimatedTokens(text: string): number {
  return Math.ceil(new TextEncoder().encode(text).byteLength / 4);
}

/** The prices of `provider:model` in force on `at`, or none when the table does not price it. */
export function tokenPriceOf(
  table: TokenPriceTable,
  provider: string,
  model: string,
  at: Date,
): TokenPrice | undefined {
  const key = `${provider}:${model}`;
  if (!Object.hasOwn(table, key)) return undefined;
  const day = at.toISOString().slice(0, 10);
  return table[key]!.filter((price) => price.since <= day).reduce<TokenPrice | undefined>(
    (latest, price) => (latest === undefined || price.since > latest.since ? price : latest),
    undefined,
  );
}

/** Credits for `usage`, rounded up once per job: integer arithmetic, so the figure is exact. */
export function creditsForUsage(price: TokenPrice, usage: TokenUsage): number {
  const microCredits =
    usage.inputTokens * price.inputPerMillion + usage.outputTokens * price.outputPerMillion;
  return Math.ceil(microCredits / 1_000_000);
}

/** What a job reserves: its prompt at its bound and every token it may write. */
export function worstCaseCredits(pricing: TokenPricing, maxTokens: number): number {
  return creditsForUsage(pricing, { inputTokens: pricing.promptTokens, outputTokens: maxTokens });
}
