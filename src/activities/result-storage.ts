import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { buffer } from 'node:stream/consumers';
import { FailureCode } from '../jobs/job.js';
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from '../storage/object-store.js';
import type { ActivityDependencies } from './dependencies.js';
import { resultKeyFor, stagingKeyFor } from '../storage/job-object-keys.js';

export interface StoreResultInput {
  jobId: string;
  /** The provider's output as its staging put confirmed it. */
  staged: StoredObject;
}

/**
 * The staging object is removed only after its copy was confirmed: once it is gone, an earlier attempt
 * stored the result. Read back and checked all the same, on this rare path. Neither object there, or
 * another output at the result key, is for good: no retry helps, and the job must end.
 */
async function storedEarlier(
  store: ObjectStore,
  resultKey: string,
  staged: StoredObject,
): Promise<StoredObject> {
  const body = await store.get(resultKey).catch((error: unknown) => {
    if (!(error instanceof ObjectNotFoundError)) throw error;
    throw ApplicationFailure.nonRetryable(
      `${staged.key} and ${resultKey} are both gone`,
      FailureCode.internal,
    );
  });
  const sha256 = createHash('sha256')
    .update(await buffer(body.stream))
    .digest('hex');
  if (sha256 !== staged.sha256) {
    const message = `${resultKey}: holds SHA-256 ${sha256}, staged ${staged.sha256}`;
    throw ApplicationFailure.nonRetryable(message, FailureCode.internal);
  }
  return { key: resultKey, contentType: body.contentType, byteSize: body.byteSize, sha256 };
}

/**
 * Copies the staged output to its final key inside the store (the bytes do not come back through the
 * worker), confirmed by the SHA-256 the staging put reported. Repeating is safe: the final key is fixed
 * per job and the staging object is removed last.
 */
export async function storeStagedResult(
  store: ObjectStore,
  { jobId, staged }: StoreResultInput,
): Promise<StoredObject> {
  const resultKey = resultKeyFor(jobId);
  let stored: StoredObject;
  try {
    stored = await store.copy(staged.key, resultKey, staged.sha256);
  } catch (error) {
    if (!(error instanceof ObjectNotFoundError && error.key === staged.key)) throw error;
    stored = await storedEarlier(store, resultKey, staged);
  }
  await store.delete(staged.key);
  return stored;
}

export function createResultStorageActivities({ store }: ActivityDependencies) {
  return {
    /**
     * Removes what a job that did not succeed left behind: its staged output, and a result stored by a
     * worker lost before it could write `succeeded`. Removing nothing is fine, so it is safe to repeat.
     */
    async discardOutputs(jobId: string): Promise<void> {
      await Promise.all([store.delete(stagingKeyFor(jobId)), store.delete(resultKeyFor(jobId))]);
    },
  };
}
