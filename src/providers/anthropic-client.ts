import Anthropic from '@anthropic-ai/sdk';

/** How to reach Anthropic or a proxy that speaks its Messages API. */
export interface AnthropicProviderOptions {
  apiKey: string;
  /** Defaults to the public API; tests point it at a fake server. */
  baseURL?: string;
  /** Limit until the reply starts, in milliseconds; past it the call fails as a retryable `timeout`. */
  timeoutMs: number;
}

const DEFAULT_BASE_URL = 'https://api.anthropic.com';

/** One client per provider, configured so that Kiln, not the library, decides about retries. */
export function createAnthropicClient(options: AnthropicProviderOptions): Anthropic {
  return new Anthropic({
    // Explicit values so the client does not fall back to ANTHROPIC_* variables: src/config owns the
    // environment. `null` keeps a credential the SDK would otherwise look for unread.
    apiKey: options.apiKey,
    authToken: null,
    webhookKey: null,
    baseURL: options.baseURL ?? DEFAULT_BASE_URL,
    logLevel: 'warn',
    timeout: options.timeoutMs,
    // Temporal owns retries: a hidden client retry would double-bill and hide rate limits from the policy.
    maxRetries: 0,
    // The SDK's own span (model, usage, stop reason) nests under Kiln's provider span when tracing is on,
    // never with the prompt or the reply: no span of Kiln's carries a user's content. No traceparent
    // goes to Anthropic, which joins no trace of ours.
    openTelemetry: { propagation: false, traces: { enabled: true, contentMode: 'metadata_only' } },
  });
}
