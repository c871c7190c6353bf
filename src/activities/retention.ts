import { Context } from '@temporalio/activity';
import type { RetentionPolicy } from '../config/index.js';
import { findPurgeCandidates, markPurged } from '../db/retention-repository.js';
import type { ActivityDependencies } from './dependencies.js';
import { resultKeyFor } from '../storage/job-object-keys.js';

/** Jobs handled per batch: small enough that one batch's deletes finish well inside a heartbeat. */
const BATCH_SIZE = 100;

export function createRetentionActivities({ db, store, logger, retention }: ActivityDependencies) {
  async function purgeBatch(policy: RetentionPolicy): Promise<number> {
    const candidates = await findPurgeCandidates(db, policy, BATCH_SIZE);
    // Objects first, rows last: a crash in between leaves rows to retry, never an orphaned object.
    // A job that did not succeed has no storage key; its result key goes all the same, in case an
    // output written as it ended outlived the workflow's discard.
    for (const { id, storageKey } of candidates) await store.delete(storageKey ?? resultKeyFor(id));
    await markPurged(
      db,
      candidates.map((c) => c.id),
    );
    return candidates.length;
  }

  return {
    /** Removes results and details of jobs past their retention period; returns how many it purged. */
    async purgeExpiredJobs(): Promise<number> {
      let purged = 0;
      for (;;) {
        const count = await purgeBatch(retention);
        purged += count;
        Context.current().heartbeat(purged);
        if (count < BATCH_SIZE) break;
      }
      if (purged > 0) logger.info({ purged }, 'retention purged expired jobs');
      return purged;
    },
  };
}
