import { condition, setHandler } from '@temporalio/workflow';
import { WaitReason, type JobEnding } from '../jobs/job.js';
import { resultCache } from './activity-stubs.js';
import { sourceEndedSignal, type ResultCacheInput } from './definitions.js';
import { JobExpired, JobFailure, type CallLimits } from './provider-calls.js';

/** A wake-up lost to a crash costs at most this long: a job that joined another's call looks again. */
const RECHECK_MS = 15_000;

/**
 * Waits for the end of the job this one joined (its signal, or the next look), as an `identical_job`
 * wait. Before that job left the queue, this one's start deadline still holds: a job that has not
 * started cannot start this one either.
 */
async function waitForSource(
  limits: Pick<CallLimits, 'deadlines' | 'waits'>,
  sourceStarted: boolean,
  woken: () => boolean,
): Promise<void> {
  const { deadlines, waits } = limits;
  const startBy = sourceStarted ? Infinity : deadlines.startBy();
  const left = startBy - Date.now();
  if (left <= 0) throw new JobExpired('start deadline passed while the identical job it joined was queued');
  await waits.enter(WaitReason.identicalJob, 1, startBy);
  await condition(woken, Math.min(RECHECK_MS, left));
  waits.leave();
}

/**
 * Serves the job from an identical one if it can (see claimGeneration): the stored result of one that
 * succeeded, or the call of one in flight, waited for. Resolves to how the job ended when it was
 * served, or to undefined when the job is to call the provider itself: no identical job could serve
 * it, or the one it joined ended without a result (failed, canceled, expired) and this job took its
 * place. Throws the failure of the job it joined when that was the request's own fault (it would meet
 * it again). A job whose source was purged meanwhile claims again.
 */
export async function serveFromIdentical(
  jobId: string,
  cache: ResultCacheInput,
  limits: Pick<CallLimits, 'deadlines' | 'waits'>,
): Promise<JobEnding | undefined> {
  let wakes = 0;
  setHandler(sourceEndedSignal, () => {
    wakes += 1;
  });
  for (;;) {
    // Counted before the claim: an end signalled while the claim ran is not waited for again.
    const seen = wakes;
    const claim = await resultCache.claimGeneration({ jobId, cache });
    switch (claim.kind) {
      case 'lead':
        return undefined;
      case 'fail':
        throw new JobFailure(claim.code, claim.message);
      case 'reuse': {
        const { sourceJobId, outcome } = claim;
        const served = await resultCache.serveFromCache({ jobId, sourceJobId, outcome, cache });
        if (served.kind === 'served') return served.ending;
        if (served.leading) return undefined;
        break;
      }
      case 'join':
        await waitForSource(limits, claim.sourceStarted, () => wakes !== seen);
        break;
    }
  }
}
