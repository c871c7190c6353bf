import { buffer } from 'node:stream/consumers';
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from '../storage/object-store.js';
import type { ActivityDependencies } from './dependencies.js';

export interface StoreResultInput {
  jobId: string;
  stagingKey: string;
  contentType: string;
}

export function resultKeyFor(jobId: string): string {
  return `results/${jobId}`;
}

/** A retry after the staging object was removed finds the bytes already at their final key. */
async function readStagedOrStored(
  store: ObjectStore,
  stagingKey: string,
  resultKey: string,
): Promise<Buffer> {
  try {
    return await buffer((await store.get(stagingKey)).stream);
  } catch (error) {
    if (!(error instanceof ObjectNotFoundError)) throw error;
    return buffer((await store.get(resultKey)).stream);
  }
}

export function createResultStorageActivities({ store }: ActivityDependencies) {
  return {
    /**
     * Moves the staged output to its final key; the store confirms the SHA-256 before this returns.
     * Retrying is safe: the final key is fixed per job and the staging object is removed last.
     */
    async storeResult({ jobId, stagingKey, contentType }: StoreResultInput): Promise<StoredObject> {
      const bytes = await readStagedOrStored(store, stagingKey, resultKeyFor(jobId));
      const stored = await store.put(resultKeyFor(jobId), bytes, contentType);
      await store.delete(stagingKey);
      return stored;
    },
  };
}
