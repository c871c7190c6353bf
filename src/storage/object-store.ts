import type { Readable } from 'node:stream';

/** What the store confirmed about an object it holds. */
export interface StoredObject {
  key: string;
  contentType: string;
  byteSize: number;
  /** Lowercase hex SHA-256 of the bytes, as the store confirmed it. */
  sha256: string;
}

export interface ObjectBody {
  stream: Readable;
  contentType: string;
  byteSize: number;
}

/**
 * Where results live. Keys are opaque `/`-separated paths chosen by the caller, and each is written
 * once: the first put wins, and a later put of the same key resolves to the object already there. Two
 * attempts of one job may each produce an output; its key keeps one of them, whole, and every attempt
 * learns which.
 */
export interface ObjectStore {
  /**
   * Stores `bytes` at `key` unless the key holds an object already, and resolves to what it holds then
   * (these bytes or the earlier ones), with the SHA-256 the store confirmed.
   */
  put(key: string, bytes: Uint8Array, contentType: string): Promise<StoredObject>;
  /** Opens an object for reading; rejects with `ObjectNotFoundError` when there is none. */
  get(key: string): Promise<ObjectBody>;
  /** What the store holds at `key` (its SHA-256 as the store confirms it), or undefined if nothing. */
  stat(key: string): Promise<StoredObject | undefined>;
  /** Removes an object; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';

  constructor(readonly key: string) {
    super(`no object at key ${key}`);
  }
}
