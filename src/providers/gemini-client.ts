import { GoogleGenAI, type Fetch, type GenerateContentConfig } from '@google/genai';

/** How to reach the Gemini API (Google AI Studio's Generative Language API) or a server that speaks it. */
export interface GeminiProviderOptions {
  apiKey: string;
  /** Defaults to Google's own; tests point it at a fake server. The client adds `/v1beta`. */
  baseURL?: string;
  /** Per-request limit, in milliseconds, body included; past it the call fails as a retryable `timeout`. */
  timeoutMs: number;
}

const DEFAULT_BASE_URL = 'https://generativelanguage.googleapis.com/';

/** One client per provider, configured so that Kiln, not the library, decides about retries. */
export function createGeminiClient(options: GeminiProviderOptions): GoogleGenAI {
  return new GoogleGenAI({
    // Explicit values so the client does not fall back to GEMINI_API_KEY, GOOGLE_GEMINI_BASE_URL or
    // GOOGLE_GENAI_USE_VERTEXAI: src/config owns the environment.
    apiKey: options.apiKey,
    vertexai: false,
    httpOptions: {
      baseUrl: options.baseURL ?? DEFAULT_BASE_URL,
      timeout: options.timeoutMs,
      // Temporal owns retries: a hidden client retry would double-bill and hide rate limits from the policy.
      retryOptions: { attempts: 1 },
    },
  });
}

/**
 * The per-call part of a request's config. Automatic continuation is off because it is a retry too: the
 * client would quietly reopen a dropped stream. The fetch keeps the answer's headers, since the client's
 * ApiError carries only the status and the body, and a proxy's Retry-After lives in the headers. It is
 * Node's own fetch, so undici's 300 s limit on a silent connection applies beside `timeoutMs`.
 */
export function callConfig(signal: AbortSignal) {
  let headers: Headers | undefined;
  // The client's own Fetch type names DOM types this Node-only project does not load.
  const keepingHeaders: Fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const response = await fetch(input, init);
    headers = response.headers;
    return response;
  };
  const config = {
    abortSignal: signal,
    automaticContinuation: false,
    httpOptions: { fetch: keepingHeaders },
  } satisfies GenerateContentConfig;
  return { config, headers: () => headers };
}
