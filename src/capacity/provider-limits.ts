import type { Config, ProviderLimit } from '../config/index.js';

type Limits = Config['providerLimits'];

/**
 * Which configured limit a call counts against: the model's own when it has one, else its provider's.
 * Each limit key has its own Temporal task queue, pacing and slots.
 */
export function limitKeyFor(limits: Limits, provider: string, model: string): string {
  const modelKey = `${provider}:${model}`;
  return Object.hasOwn(limits.byKey, modelKey) ? modelKey : provider;
}

export function limitOf(limits: Limits, key: string): ProviderLimit {
  return limits.byKey[key] ?? limits.fallback;
}

/**
 * Activity tasks per second the server hands out for one limit key, across every worker: the key's own
 * rate. This limit does not space the calls (the server lets a burst through when a backlog appears);
 * `takeProviderSlot` does, one call per `callIntervalMs`. Here it only keeps a backlog from being handed
 * to the workers all at once.
 */
export function dispatchesPerSecond(limit: ProviderLimit): number {
  return limit.rpm / 60;
}

/** GCRA's emission interval for one limit key: the time between two calls' starts at its rate, fleet-wide. */
export function callIntervalMs(limit: ProviderLimit): number {
  return 60_000 / limit.rpm;
}

/** The task queue of one limit key's calls, whose server-side rate limit bounds their dispatch fleet-wide. */
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
