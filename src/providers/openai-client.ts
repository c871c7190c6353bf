import OpenAI from 'openai';

/** How to reach OpenAI or any server that speaks its API. */
export interface OpenAIProviderOptions {
  apiKey: string;
  /** Defaults to the public API; tests point it at a fake server. */
  baseURL?: string;
  /** Per-request limit, in milliseconds; past it the call fails as a retryable `timeout`. */
  timeoutMs: number;
}

const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/** One client per provider, configured so that Kiln, not the library, decides about retries. */
export function createOpenAIClient(options: OpenAIProviderOptions): OpenAI {
  return new OpenAI({
    apiKey: options.apiKey,
    // Explicit values so the client does not fall back to OPENAI_* variables: src/config owns the environment.
    baseURL: options.baseURL ?? DEFAULT_BASE_URL,
    organization: null,
    project: null,
    timeout: options.timeoutMs,
    // Temporal owns retries: a hidden client retry would double-bill and hide rate limits from the policy.
    maxRetries: 0,
  });
}
