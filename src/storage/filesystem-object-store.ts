import { createHash, randomUUID } from 'node:crypto';
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { ObjectNotFoundError, type ObjectBody, type ObjectStore, type StoredObject } from './object-store.js';

/** A key the filesystem store refuses because it is empty, absolute or would climb out of the root. */
export class InvalidObjectKeyError extends Error {
  override readonly name = 'InvalidObjectKeyError';

  constructor(readonly key: string) {
    super(
      `invalid object key ${JSON.stringify(key)}: use non-empty '/'-separated segments without '.' or '..'`,
    );
  }
}

interface ObjectMetadata {
  contentType: string;
}

/** Where one key lives: bytes and metadata sit in separate trees so no key can collide with a sidecar. */
interface ObjectPaths {
  data: string;
  metadata: string;
}

function isExisting(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'EEXIST';
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function pathsFor(rootDir: string, key: string): ObjectPaths {
  const segments = key.split('/');
  const isValid = segments.every((s) => s !== '' && s !== '.' && s !== '..' && !s.includes('\0'));
  if (!isValid) throw new InvalidObjectKeyError(key);
  return {
    data: path.join(rootDir, 'objects', ...segments),
    metadata: `${path.join(rootDir, 'metadata', ...segments)}.json`,
  };
}

/** How a written temporary file becomes `target`: renamed over what is there, or linked if nothing is. */
type Commit = (tmpFile: string, target: string) => Promise<void>;

/**
 * Writes `bytes` to a temporary file in the same filesystem, flushes it, then commits it to `target`.
 * Both commits are atomic, so readers (and a restart after a crash) see the old file or the whole new
 * one; `link` refuses with EEXIST when `target` exists.
 */
async function writeAtomically(
  tmpDir: string,
  target: string,
  bytes: Uint8Array | string,
  commit: Commit = rename,
): Promise<void> {
  const tmpFile = path.join(tmpDir, randomUUID());
  await mkdir(path.dirname(target), { recursive: true });
  try {
    const handle = await open(tmpFile, 'wx');
    try {
      await writeFile(handle, bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await commit(tmpFile, target);
  } finally {
    await rm(tmpFile, { force: true });
  }
}

async function unlinkIfPresent(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
}

async function openData(key: string, file: string): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (error) {
    if (isMissing(error)) throw new ObjectNotFoundError(key);
    throw error;
  }
}

async function readMetadata(key: string, file: string): Promise<ObjectMetadata> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as ObjectMetadata;
  } catch (error) {
    // Deleted between opening the bytes and reading this: the object is gone.
    if (isMissing(error)) throw new ObjectNotFoundError(key);
    throw error;
  }
}

/**
 * An object store on the local disk, for development and single-machine deployments. The data file is
 * the commit point, and the first one linked wins: metadata is written before it and removed after it,
 * so a data file always has its metadata beside it. Two puts of one key at the same instant may leave
 * the later one's content type beside the earlier one's bytes; a job's outputs all share theirs.
 */
export function createFilesystemObjectStore(rootDir: string): ObjectStore {
  const root = path.resolve(rootDir);
  const tmpDir = path.join(root, 'tmp');

  const store: ObjectStore = {
    async put(key, bytes, contentType): Promise<StoredObject> {
      const paths = pathsFor(root, key);
      const held = await store.stat(key);
      if (held) return held;
      await mkdir(tmpDir, { recursive: true });
      const metadata: ObjectMetadata = { contentType };
      await writeAtomically(tmpDir, paths.metadata, JSON.stringify(metadata));
      try {
        await writeAtomically(tmpDir, paths.data, bytes, link);
      } catch (error) {
        if (!isExisting(error)) throw error;
        const winner = await store.stat(key);
        if (!winner) throw error;
        return winner;
      }
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      return { key, contentType, byteSize: bytes.byteLength, sha256 };
    },

    async get(key): Promise<ObjectBody> {
      const paths = pathsFor(root, key);
      const handle = await openData(key, paths.data);
      try {
        // Size and stream both come from the open handle, so a concurrent overwrite cannot mix versions.
        const stats = await handle.stat();
        if (!stats.isFile()) throw new ObjectNotFoundError(key);
        const { contentType } = await readMetadata(key, paths.metadata);
        return { stream: handle.createReadStream(), contentType, byteSize: stats.size };
      } catch (error) {
        await handle.close();
        throw error;
      }
    },

    // The bytes are hashed here: nothing on disk vouches for them.
    async stat(key): Promise<StoredObject | undefined> {
      let body: ObjectBody;
      try {
        body = await store.get(key);
      } catch (error) {
        if (error instanceof ObjectNotFoundError) return undefined;
        throw error;
      }
      const sha256 = createHash('sha256')
        .update(await buffer(body.stream))
        .digest('hex');
      return { key, contentType: body.contentType, byteSize: body.byteSize, sha256 };
    },

    async delete(key): Promise<void> {
      const paths = pathsFor(root, key);
      await unlinkIfPresent(paths.data);
      await unlinkIfPresent(paths.metadata);
    },
  };
  return store;
}
