import { followersOf } from '../db/result-cache-repository.js';
import { sourceEndedSignal } from '../workflows/definitions.js';
import type { JobChangeContext } from './job-change-context.js';
import { wakeWorkflows } from './wake-workflows.js';

/**
 * Wakes the jobs that joined `jobId`'s call (the result cache), now that it ended: each takes its
 * result, or, if it ended without one, calls the provider itself or joins whichever identical job does.
 */
export async function wakeCacheFollowers(context: JobChangeContext, jobId: string) {
  await wakeWorkflows(context, await followersOf(context.db, jobId), sourceEndedSignal);
}
