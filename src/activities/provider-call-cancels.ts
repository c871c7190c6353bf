/**
 * The provider calls in flight in this worker process, by job, so that a cancel announced on
 * `CALL_CANCELS_CHANNEL` can abort one at once.
 * Temporal tells an activity it is canceled only in answer to a heartbeat, and sends heartbeats at
 * most every 0.8 × the heartbeat timeout (8 s by default): a cancel that waited for that let short
 * calls run to their end, and be paid. The workflow still owns the cancel; this only stops the paid
 * request early.
 */
export interface ProviderCallCancels {
  /** A signal that aborts when `jobId`'s cancel is announced; `release()` once the call is over. */
  watch(jobId: string): { signal: AbortSignal; release(): void };
  /** Aborts `jobId`'s call in flight here, if there is one. */
  cancel(jobId: string): void;
}

export function createProviderCallCancels(): ProviderCallCancels {
  const inFlight = new Map<string, AbortController>();
  return {
    watch(jobId) {
      const controller = new AbortController();
      inFlight.set(jobId, controller);
      return {
        signal: controller.signal,
        release: () => {
          if (inFlight.get(jobId) === controller) inFlight.delete(jobId);
        },
      };
    },
    cancel(jobId) {
      inFlight.get(jobId)?.abort(new Error(`job ${jobId} was canceled`));
    },
  };
}
