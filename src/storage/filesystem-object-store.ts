import { createHash, randomUUID } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
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

/**
 * Writes `bytes` to a temporary file in the same filesystem, flushes it, then renames it over `target`:
 * rename is atomic, so readers (and a restart after a crash) see the old file or the whole new one.
 */
async function writeAtomically(tmpDir: string, target: string, bytes: Uint8Array | string): Promise<void> {
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
    await rename(tmpFile, target);
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
 * the commit point: metadata is written before it and removed after it, so a data file always has its
 * metadata beside it.
 */
export function createFilesystemObjectStore(rootDir: string): ObjectStore {
  const root = path.resolve(rootDir);
  const tmpDir = path.join(root, 'tmp');

  const store: ObjectStore = {
    async put(key, bytes, contentType): Promise<StoredObject> {
      const paths = pathsFor(root, key);
      await mkdir(tmpDir, { recursive: true });
      const metadata: ObjectMetadata = { contentType };
      await writeAtomically(tmpDir, paths.metadata, JSON.stringify(metadata));
      await writeAtomically(tmpDir, paths.data, bytes);
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

    // On one disk the bytes pass through this process anyway: a read and a put, checked like any put.
    async copy(fromKey, toKey, sha256): Promise<StoredObject> {
      const source = await store.get(fromKey);
      const stored = await store.put(toKey, await buffer(source.stream), source.contentType);
      if (stored.sha256 !== sha256)
        throw new Error(`object ${toKey}: copied SHA-256 ${stored.sha256}, not ${sha256}`);
      return stored;
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
