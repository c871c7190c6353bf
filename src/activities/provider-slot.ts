import { Context } from '@temporalio/activity';
import type { Kysely } from 'kysely';
import {
  releaseProviderSlot,
  renewProviderSlot,
  takeProviderSlot,
} from '../db/provider-capacity-repository.js';
import type { Database } from '../db/schema.js';

/** Waits shorter than this are spent in the activity, keeping the job's place; longer ones go back to the workflow. */
const WAIT_IN_PLACE_MS = 30_000;
/** A slot whose worker died frees itself after this; live calls renew it well before. */
const LEASE_MS = 30_000;
const RENEW_EVERY_MS = LEASE_MS / 3;

export interface HeldSlot {
  release(): Promise<void>;
}

export interface SlotRequest {
  db: Kysely<Database>;
  limitKey: string;
  jobId: string;
  capacity: number;
  /** Keeps the activity alive while it waits; given by the caller, who owns the heartbeat details. */
  heartbeat(): void;
}

function hold({ db, jobId }: SlotRequest): HeldSlot {
  const renewal = setInterval(() => {
    // A failed renewal is tried again next interval; one that never lands frees the slot a little early.
    renewProviderSlot(db, jobId, LEASE_MS).catch(() => undefined);
  }, RENEW_EVERY_MS);
  return {
    release: async () => {
      clearInterval(renewal);
      await releaseProviderSlot(db, jobId);
    },
  };
}

/**
 * One of the provider's fleet-wide call slots for this job, waited for in place while the wait is
 * short (a full house, a brief pause); otherwise how long the workflow should sleep before asking again.
 */
export async function acquireProviderSlot(request: SlotRequest): Promise<HeldSlot | { retryInMs: number }> {
  const context = Context.current();
  const giveUpAt = Date.now() + WAIT_IN_PLACE_MS;
  for (;;) {
    const verdict = await takeProviderSlot(
      request.db,
      request.limitKey,
      request.jobId,
      request.capacity,
      LEASE_MS,
    );
    if (verdict.taken) return hold(request);
    if (Date.now() + verdict.retryInMs > giveUpAt) return { retryInMs: verdict.retryInMs };
    request.heartbeat();
    await context.sleep(verdict.retryInMs);
  }
}
