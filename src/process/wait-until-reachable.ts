import type { Logger } from '../logger.js';

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

/**
 * Runs `step` (connecting to a dependency, or a first query) until it succeeds, waiting longer after
 * each failure that `isUnreachable` says is the dependency being away, with a log line each time: a
 * process started before its database or Temporal is up waits for them instead of exiting. Any other
 * failure is thrown at once.
 */
export async function waitUntilReachable<T>(
  what: string,
  step: () => Promise<T>,
  {
    logger,
    isUnreachable,
    hint,
  }: { logger: Logger; isUnreachable: (error: unknown) => boolean; hint: string },
): Promise<T> {
  for (let delayMs = FIRST_DELAY_MS; ; delayMs = Math.min(MAX_DELAY_MS, delayMs * 2)) {
    try {
      return await step();
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      logger.warn({ err: error, retryInMs: delayMs }, `${what} unreachable; waiting for it (${hint})`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
