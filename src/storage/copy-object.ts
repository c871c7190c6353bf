import { buffer } from 'node:stream/consumers';
import type { ObjectStore, StoredObject } from './object-store.js';

/**
 * Copies the object at `fromKey` to `toKey` through this process (results are a few MB at most), and
 * resolves to what `toKey` then holds. Safe to repeat: the first put of a key wins. Rejects with
 * `ObjectNotFoundError` when `fromKey` holds nothing.
 */
export async function copyObject(store: ObjectStore, fromKey: string, toKey: string): Promise<StoredObject> {
  const { stream, contentType } = await store.get(fromKey);
  const bytes = await buffer(stream);
  return store.put(toKey, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), contentType);
}
