/** What a provider said about its request quota on a successful reply. */
export interface ProviderQuota {
  /** Requests the full window holds. */
  limit: number;
  /** Requests left in it now. */
  remaining: number;
  /** Until the window is full again. */
  resetInMs: number;
}

/**
 * How long until the provider takes one more request. Windows refill evenly (a token bucket), so one
 * request's worth comes back in `reset / (limit - remaining)`.
 */
export function nextRequestInMs({ limit, remaining, resetInMs }: ProviderQuota): number {
  return remaining > 0 ? 0 : Math.ceil(resetInMs / Math.max(1, limit - remaining));
}

/**
 * The provider's wait hint: `retry-after-ms` (OpenAI's own), else `retry-after` as seconds or an HTTP date.
 */
export function retryAfterMsFrom(headers: Headers | undefined, now = Date.now()): number | undefined {
  const millis = headers?.get('retry-after-ms');
  if (millis && Number.isFinite(Number(millis))) return Math.max(0, Number(millis));
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  if (Number.isFinite(Number(value))) return Math.max(0, Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Go-style durations as OpenAI sends them in reset headers: `20ms`, `1s`, `6m0s`, `1h2m3.5s`. */
export function durationMs(text: string): number | undefined {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== text.trim()) return undefined;
  return parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * DURATION_UNIT_MS[unit!]!, 0);
}

/** OpenAI's `x-ratelimit-{limit,remaining,reset}-requests`, when the provider sends all three. */
export function quotaFrom(headers: Headers): ProviderQuota | undefined {
  const limit = Number(headers.get('x-ratelimit-limit-requests') ?? Number.NaN);
  const remaining = Number(headers.get('x-ratelimit-remaining-requests') ?? Number.NaN);
  const resetInMs = durationMs(headers.get('x-ratelimit-reset-requests') ?? '');
  if (!Number.isInteger(limit) || !Number.isInteger(remaining) || resetInMs === undefined) return undefined;
  return { limit, remaining, resetInMs };
}

/**
 * Anthropic's `anthropic-ratelimit-requests-{limit,remaining,reset}`, when it sends all three; its reset is
 * the RFC 3339 time the window is full again.
 */
export function anthropicQuotaFrom(headers: Headers, now = Date.now()): ProviderQuota | undefined {
  const limit = Number(headers.get('anthropic-ratelimit-requests-limit') ?? Number.NaN);
  const remaining = Number(headers.get('anthropic-ratelimit-requests-remaining') ?? Number.NaN);
  const resetAt = Date.parse(headers.get('anthropic-ratelimit-requests-reset') ?? '');
  if (!Number.isInteger(limit) || !Number.isInteger(remaining) || Number.isNaN(resetAt)) return undefined;
  return { limit, remaining, resetInMs: Math.max(0, resetAt - now) };
}
