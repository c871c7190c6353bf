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
 * Where results live. Keys are opaque `/`-separated paths chosen by the caller; writing the same key
 * twice replaces the object, which makes every write safe to retry.
 */
export interface ObjectStore {
  /** Stores `bytes` and resolves only once the store has confirmed their SHA-256. */
  put(key: string, bytes: Uint8Array, contentType: string): Promise<StoredObject>;
  /** Opens an object for reading; rejects with `ObjectNotFoundError` when there is none. */
  get(key: string): Promise<ObjectBody>;
  /**
   * Copies an object inside the store (a remote store does it without the bytes coming back here) and
   * resolves only once the store has confirmed the copy's SHA-256 is `sha256` (lowercase hex). Rejects
   * with `ObjectNotFoundError` when there is nothing at `fromKey`.
   */
  copy(fromKey: string, toKey: string, sha256: string): Promise<StoredObject>;
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
