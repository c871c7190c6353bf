import { Context } from '@temporalio/activity';
import type { Kysely } from 'kysely';
import type { ProviderLimit } from '../config/index.js';
import {
  releaseProviderSlot,
  renewProviderSlot,
  takeProviderSlot,
  type SlotAsk,
} from '../db/provider-capacity-repository.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import { callIntervalMs } from './provider-limits.js';

/** Waits shorter than this are spent in the activity, keeping the job's place; longer ones go back to the workflow. */
const WAIT_IN_PLACE_MS = 30_000;
/** A slot whose worker died frees itself after this; live calls renew it well before. */
const LEASE_MS = 30_000;
const RENEW_EVERY_MS = LEASE_MS / 3;
/** While queued for a slot the activity is alive: it says so at least this often. */
const HEARTBEAT_WHILE_QUEUED_MS = 1000;

/**
 * Takers of one limit key in this process, one at a time. The advisory lock serialises them across the
 * fleet anyway; queueing here keeps all but one of them off the connection pool, which the job-table
 * activities share, instead of each holding a connection while it waits for the lock.
 */
const takersByKey = new Map<string, Promise<unknown>>();

function oneTakerAtATime<T>(limitKey: string, take: () => Promise<T>): Promise<T> {
  const previous = takersByKey.get(limitKey) ?? Promise.resolve();
  const mine = previous.then(take, take);
  const settled = mine.then(
    () => undefined,
    () => undefined,
  );
  takersByKey.set(limitKey, settled);
  void settled.then(() => {
    if (takersByKey.get(limitKey) === settled) takersByKey.delete(limitKey);
  });
  return mine;
}

export interface HeldSlot {
  /**
   * Frees the slot; once only, however often it is called. A failed write is logged, not thrown: the
   * slot then frees itself when its lease lapses, and the call that held it goes on.
   */
  release(): Promise<void>;
}

export interface SlotRequest {
  db: Kysely<Database>;
  limitKey: string;
  jobId: string;
  /** The key's fleet-wide concurrency, and the rate its calls are spaced to. */
  limit: ProviderLimit;
  /** Keeps the activity alive while it waits; given by the caller, who owns the heartbeat details. */
  heartbeat(): void;
  /** Told once, when the call first finds no slot free, how long it will be at least. */
  onWait(retryInMs: number): Promise<void>;
  /** Asked after each wait in place: true ends it, the call no longer wanting this provider's slot. */
  giveUp?(): Promise<boolean>;
  logger: Logger;
}

function hold({ db, jobId, limitKey, logger }: SlotRequest): HeldSlot {
  const renewal = setInterval(() => {
    // A failed renewal is tried again next interval; one that never lands frees the slot a little early.
    renewProviderSlot(db, jobId, LEASE_MS).catch(() => undefined);
  }, RENEW_EVERY_MS);
  let released: Promise<void> | undefined;
  return {
    release: () => {
      clearInterval(renewal);
      released ??= releaseProviderSlot(db, jobId).catch((error: unknown) =>
        logger.warn({ jobId, limitKey, err: error }, 'provider slot not freed: it lapses with its lease'),
      );
      return released;
    },
  };
}

function slotAsk({ limitKey, jobId, limit }: SlotRequest): SlotAsk {
  const intervalMs = callIntervalMs(limit);
  return { limitKey, jobId, capacity: limit.concurrency, intervalMs, leaseMs: LEASE_MS };
}

/**
 * One of the provider's fleet-wide call slots for this job, at its turn in the key's pacing, waited for
 * in place while the wait is short (a full house, a brief pause, the next turn); otherwise how long the
 * workflow should sleep before asking again.
 */
export async function acquireProviderSlot(request: SlotRequest): Promise<HeldSlot | { retryInMs: number }> {
  const context = Context.current();
  const giveUpAt = Date.now() + WAIT_IN_PLACE_MS;
  const ask = slotAsk(request);
  // Queued behind other takers the activity sends no heartbeat of its own: without these, a burst of
  // calls outwaits the heartbeat timeout and Temporal starts each again while the first still runs. None
  // at once: the first beat is the SDK's one unthrottled send, a server round trip that a call done
  // within the interval does not need.
  const beat = setInterval(() => request.heartbeat(), HEARTBEAT_WHILE_QUEUED_MS);
  let waited = false;
  try {
    for (;;) {
      const verdict = await oneTakerAtATime(ask.limitKey, () => takeProviderSlot(request.db, ask));
      if (verdict.taken) return hold(request);
      if (!waited) await request.onWait(verdict.retryInMs);
      waited = true;
      if (Date.now() + verdict.retryInMs > giveUpAt) return { retryInMs: verdict.retryInMs };
      await context.sleep(verdict.retryInMs);
      if (await request.giveUp?.()) return { retryInMs: 0 };
    }
  } finally {
    clearInterval(beat);
  }
}
