import type { ObjectStoreConfig } from '../config/index.js';
import { createFilesystemObjectStore } from './filesystem-object-store.js';
import type { ObjectStore } from './object-store.js';
import { createS3ObjectStore } from './s3-object-store.js';

export function createObjectStore(config: ObjectStoreConfig): ObjectStore {
  switch (config.driver) {
    case 'filesystem':
      return createFilesystemObjectStore(config.dir);
    case 's3':
      return createS3ObjectStore(config);
  }
}
