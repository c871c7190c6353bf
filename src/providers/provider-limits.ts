import type { Config, ProviderLimit } from '../config.js';

type Limits = Config['providerLimits'];

/**
 * Which configured limit a call counts against: the model's own when it has one, else its provider's.
 * Each limit key has its own Temporal task queue, rate and slots.
 */
export function limitKeyFor(limits: Limits, provider: string, model: string): string {
  const modelKey = `${provider}:${model}`;
  return Object.hasOwn(limits.byKey, modelKey) ? modelKey : provider;
}

export function limitOf(limits: Limits, key: string): ProviderLimit {
  return limits.byKey[key] ?? limits.fallback;
}

/**
 * Kiln dispatches a little under the provider's rate. At exactly the rate, the jitter between dispatch
 * and arrival (a few ms of database and network) sometimes lands two calls closer than the provider's
 * refill, and a bucket emptied by an early burst never recovers; 5% lets it refill.
 */
const RATE_HEADROOM = 0.95;

/** Activity tasks per second the server hands out for one limit key, across every worker. */
export function dispatchesPerSecond(limit: ProviderLimit): number {
  return (limit.rpm / 60) * RATE_HEADROOM;
}

/** The task queue whose server-side rate limit paces the calls of one limit key, fleet-wide. */
export function providerTaskQueue(baseTaskQueue: string, limitKey: string): string {
  return `${baseTaskQueue}.provider.${limitKey}`;
}

/** Every limit key a worker with these providers polls: each provider, and each model limited apart. */
export function limitKeysToPoll(limits: Limits, providerNames: readonly string[]): string[] {
  const modelKeys = Object.keys(limits.byKey).filter((key) =>
    providerNames.some((name) => key.startsWith(`${name}:`)),
  );
  return [...providerNames, ...modelKeys];
}
