import { findJob, transitionJob } from '../db/job-repository.js';
import { claimGeneration, takeOverFrom, type CacheClaim } from '../db/result-cache-repository.js';
import type { JobRow } from '../db/schema.js';
import { afterJobChange } from '../job-changes/after-job-change.js';
import { admitAndWake } from '../job-changes/admission-wake.js';
import { isTerminal, JobStatus, type CacheOutcome, type JobEnding } from '../jobs/job.js';
import { countServedFromCache } from '../observability/cache-metrics.js';
import { copyObject } from '../storage/copy-object.js';
import { resultKeyFor } from '../storage/job-object-keys.js';
import { ObjectNotFoundError, type StoredObject } from '../storage/object-store.js';
import type { ResultCacheInput } from '../workflows/definitions.js';
import { jobChangeContextOf, type ActivityDependencies } from './dependencies.js';
import { endingOf } from './job-table.js';
import { jobTableFailure } from './temporal-failure.js';

export interface ClaimGenerationInput {
  jobId: string;
  cache: ResultCacheInput;
}

export interface ServeFromCacheInput {
  jobId: string;
  /** The succeeded job whose result serves this one. */
  sourceJobId: string;
  outcome: CacheOutcome;
  cache: ResultCacheInput;
}

/**
 * `served`: the job ended (succeeded, or as it had ended meanwhile). `source_gone`: the source's result
 * was purged since the claim; `leading` if this job took the entry over and is to call the provider,
 * else another job did and the job claims again.
 */
export type ServeFromCacheOutcome =
  { kind: 'served'; ending: JobEnding } | { kind: 'source_gone'; leading: boolean };

/**
 * The result cache's activities (see claimGeneration). Both are safe to repeat at any later point of
 * the job: a claim keeps the entry a job holds, and every write of a cache-served end is a transition
 * the job is then at or past.
 */
export function createResultCacheActivities(deps: ActivityDependencies) {
  const { db, store, logger } = deps;

  /** The job's path through `running` and `storing` to `succeeded`, as a call of its own would take. */
  async function succeedWith(input: ServeFromCacheInput, source: JobRow, output: StoredObject) {
    const { jobId, sourceJobId, outcome, cache } = input;
    const started = { started_at: new Date(), cache_outcome: outcome, cache_source_job_id: sourceJobId };
    await transitionJob(db, jobId, JobStatus.running, started);
    await transitionJob(db, jobId, JobStatus.storing, { progress: 100 });
    const endedAt = new Date();
    const stored = {
      completed_at: endedAt,
      storage_key: output.key,
      content_type: output.contentType,
      byte_size: output.byteSize,
      result_sha256: output.sha256,
      // Whoever made the result: the request was the same, the chain too, so its entry is this job's.
      served_by: source.served_by,
    };
    // The cache price is charged, at most what was reserved (see closeReservationParts).
    const row = await transitionJob(db, jobId, JobStatus.succeeded, stored, undefined, cache.price);
    if (row.completed_at?.getTime() === endedAt.getTime()) {
      countServedFromCache(row, outcome, cache);
      logger.info({ jobId, sourceJobId, outcome }, 'job served by the result cache');
    }
    await afterJobChange(jobChangeContextOf(deps), { row, endedAt });
    return row;
  }

  async function sourceGone(input: ServeFromCacheInput): Promise<ServeFromCacheOutcome> {
    const { scope, fingerprint } = input.cache;
    const leading = await takeOverFrom(db, { scope, fingerprint }, input.sourceJobId, input.jobId);
    return { kind: 'source_gone', leading };
  }

  return {
    /** Whether the job calls the provider, joins an identical job in flight, or reuses its result. */
    async claimGeneration({ jobId, cache }: ClaimGenerationInput): Promise<CacheClaim> {
      const { scope, fingerprint, maxAgeSeconds } = cache;
      const claim = await claimGeneration(db, jobId, { scope, fingerprint }, maxAgeSeconds).catch(
        (error: unknown) => {
          throw jobTableFailure(error, logger, jobId);
        },
      );
      // A running slot the job gave back goes on to its user's next waiting job. The same call marks
      // its workflow seen, so the orphan sweep passes it by while it waits.
      if (claim.kind === 'join') await admitAndWake(jobChangeContextOf(deps), jobId);
      return claim;
    },
    /**
     * Copies the source's result to the job's own result key (each job's result lives and is purged on
     * its own) and ends the job `succeeded`, charged the cache price.
     */
    async serveFromCache(input: ServeFromCacheInput): Promise<ServeFromCacheOutcome> {
      // A repeat after the job ended (served, or canceled) finds it as it ended.
      const job = await findJob(db, input.jobId);
      if (job && isTerminal(job.status)) return { kind: 'served', ending: endingOf(job) };
      const source = await findJob(db, input.sourceJobId);
      if (!source?.storage_key || source.purged_at || source.status !== JobStatus.succeeded) {
        return sourceGone(input);
      }
      let output: StoredObject;
      try {
        output = await copyObject(store, source.storage_key, resultKeyFor(input.jobId));
      } catch (error) {
        // Retention deletes the object before it marks the row purged.
        if (error instanceof ObjectNotFoundError) return sourceGone(input);
        throw error;
      }
      const row = await succeedWith(input, source, output).catch((error: unknown) => {
        throw jobTableFailure(error, logger, input.jobId);
      });
      return { kind: 'served', ending: endingOf(row) };
    },
  };
}
