import { createFilesystemObjectStore } from './filesystem-object-store.js';
import type { ObjectStore } from './object-store.js';
import { createS3ObjectStore, type S3ObjectStoreOptions } from './s3-object-store.js';

/** Which object store to use and how to reach it. */
export type ObjectStoreConfig =
  | {
      driver: 'filesystem';
      /** Root folder; objects, their metadata and temporary files live below it. */
      dir: string;
    }
  | ({ driver: 's3' } & S3ObjectStoreOptions);

export function createObjectStore(config: ObjectStoreConfig): ObjectStore {
  switch (config.driver) {
    case 'filesystem':
      return createFilesystemObjectStore(config.dir);
    case 's3':
      return createS3ObjectStore(config);
  }
}
