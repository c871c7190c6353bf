import { createHash } from 'node:crypto';
import type { LocalProviderOptions } from './local-provider.js';
import { waitOneStep } from './local-provider.js';
import type { TextProvider, TokenUsage } from './provider.js';

export const LOCAL_TEXT_MODELS = ['kiln-verse-1'] as const;

/** Words the local model writes: one per step, so that subscribers see tokens arrive. */
const WORDS_PER_TEXT = 40;
const VOCABULARY = [
  'ember',
  'glaze',
  'clay',
  'ash',
  'flame',
  'slow',
  'bright',
  'kiln',
  'stone',
  'smoke',
  'warm',
  'crack',
  'amber',
  'cool',
  'dust',
  'shape',
  'wheel',
  'hand',
  'fire',
  'light',
];

/** The prompt picks every word, so a retried call writes the same text. */
function wordsFor(prompt: string, count: number): string[] {
  const words: string[] = [];
  for (let index = 0; words.length < count; index++) {
    const digest = createHash('sha256').update(`${index}:${prompt}`).digest();
    for (const byte of digest) {
      if (words.length === count) break;
      words.push(VOCABULARY[byte % VOCABULARY.length]!);
    }
  }
  return words;
}

/** Nothing bills the local model, so it counts for itself, a word a token: usage is never missing. */
function usageOf(prompt: string, wordsWritten: number): TokenUsage {
  const promptWords = prompt.split(/\s+/).filter(Boolean).length;
  return { inputTokens: Math.max(1, promptWords), outputTokens: wordsWritten };
}

/** A text provider that needs no key and no network: it writes one word per step over its delay. */
export function createLocalTextProvider(options: LocalProviderOptions): TextProvider {
  return {
    name: 'local',
    models: LOCAL_TEXT_MODELS,
    defaultModel: LOCAL_TEXT_MODELS[0],
    async generateText(input, context) {
      const words = wordsFor(input.prompt, Math.min(WORDS_PER_TEXT, input.maxTokens ?? WORDS_PER_TEXT));
      const stepMs = options.delayMs / words.length;
      let text = '';
      for (const [index, word] of words.entries()) {
        await waitOneStep(stepMs, context.signal);
        const delta = index === 0 ? word[0]!.toUpperCase() + word.slice(1) : ` ${word}`;
        text += delta;
        context.onDelta(delta);
      }
      context.onDelta('.');
      return { text: `${text}.`, usage: usageOf(input.prompt, words.length) };
    },
  };
}
