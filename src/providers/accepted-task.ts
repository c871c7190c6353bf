import type { ProviderCallContext } from './provider.js';
import { ProviderError } from './provider-error.js';

/*
 * Following a task a submit-then-poll provider (Replicate, fal) has accepted, and may bill for: what its
 * adapters do alike, so that a lost attempt neither pays twice nor leaves a task running for nobody.
 */

/**
 * Runs `work` on a task the provider accepted; if the caller aborts meanwhile, the task is stopped
 * (`cancel`), unless a later attempt is to resume it: that one would find it canceled and pay for a
 * fresh one.
 */
export async function cancelingOnAbort<T>(
  context: ProviderCallContext,
  cancel: () => Promise<void>,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (context.signal.aborted && !context.taskOutlivesAbort?.()) await cancel();
    throw error;
  }
}

/**
 * A read that follows an accepted task (a poll): its ProviderError says the task lives on (see
 * `taskLivesOn`); anything else, an abort's reason included, passes as it is.
 */
export async function followingTask<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (!(error instanceof ProviderError) || error.taskLivesOn) throw error;
    const { code, message, retryable, retryAfterMs, requestId } = error;
    throw new ProviderError(code, message, retryable, retryAfterMs, requestId, true);
  }
}
