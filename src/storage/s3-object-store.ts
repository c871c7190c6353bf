import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  BucketAlreadyOwnedByYou,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3ObjectStoreOptions } from '../config/index.js';
import { ObjectNotFoundError, type ObjectBody, type ObjectStore, type StoredObject } from './object-store.js';

/** The server stored an object whose SHA-256 is not the one we sent, or would not say which it stored. */
export class ChecksumMismatchError extends Error {
  override readonly name = 'ChecksumMismatchError';

  constructor(
    readonly key: string,
    /** Base64 SHA-256 of the bytes we sent. */
    readonly expected: string,
    /** Base64 SHA-256 the server reported, if it reported one. */
    readonly confirmed: string | undefined,
  ) {
    super(`object ${key}: sent SHA-256 ${expected}, server confirmed ${confirmed ?? 'nothing'}`);
  }
}

/** A client for the server in `options`; callers own it and `destroy()` it when done. */
export function createS3Client(options: S3ObjectStoreOptions): S3Client {
  const { accessKeyId, secretAccessKey } = options;
  return new S3Client({
    region: options.region,
    endpoint: options.endpoint,
    forcePathStyle: options.forcePathStyle,
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
  });
}

/** Creates the bucket unless it already exists and is ours; for development stacks and tests. */
export async function ensureBucket(options: S3ObjectStoreOptions): Promise<void> {
  const client = createS3Client(options);
  try {
    await client.send(new CreateBucketCommand({ Bucket: options.bucket }));
  } catch (error) {
    if (!(error instanceof BucketAlreadyOwnedByYou)) throw error;
  } finally {
    client.destroy();
  }
}

/**
 * A conditional put found the key taken: 412, an object is there; 409, another conditional write to it
 * is in flight (S3's ConditionalRequestConflict).
 */
function isTakenKey(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 412 || status === 409;
}

function isNotFound(error: unknown): boolean {
  // HeadObject has no body, so a missing key arrives as a bare 404 named `NotFound`.
  return error instanceof NoSuchKey || (error instanceof Error && error.name === 'NotFound');
}

/**
 * An object store on an S3-compatible bucket. Every put carries the SHA-256 of its bytes, so the server
 * rejects a body damaged in transit instead of storing it.
 */
export function createS3ObjectStore(options: S3ObjectStoreOptions): ObjectStore {
  const client = createS3Client(options);
  const Bucket = options.bucket;

  async function confirmedChecksum(key: string, fromPut: string | undefined): Promise<string | undefined> {
    if (fromPut) return fromPut;
    // Some servers only report checksums when asked for them explicitly.
    const head = await client.send(new HeadObjectCommand({ Bucket, Key: key, ChecksumMode: 'ENABLED' }));
    return head.ChecksumSHA256;
  }

  /** What a put that found its key taken resolves to: the object there, unless it went meanwhile. */
  async function heldAt(key: string): Promise<StoredObject> {
    const held = await store.stat(key);
    if (!held) throw new Error(`object ${key}: taken by another write, then gone before it could be read`);
    return held;
  }

  const store: ObjectStore = {
    async put(key, bytes, contentType): Promise<StoredObject> {
      const expected = createHash('sha256').update(bytes).digest('base64');
      let output;
      try {
        output = await client.send(
          new PutObjectCommand({
            Bucket,
            Key: key,
            Body: bytes,
            ContentType: contentType,
            ChecksumSHA256: expected,
            IfNoneMatch: '*',
          }),
        );
      } catch (error) {
        if (!isTakenKey(error)) throw error;
        return heldAt(key);
      }
      const confirmed = await confirmedChecksum(key, output.ChecksumSHA256);
      if (confirmed !== expected) throw new ChecksumMismatchError(key, expected, confirmed);
      const sha256 = Buffer.from(confirmed, 'base64').toString('hex');
      return { key, contentType, byteSize: bytes.byteLength, sha256 };
    },

    async get(key): Promise<ObjectBody> {
      try {
        const output = await client.send(new GetObjectCommand({ Bucket, Key: key }));
        if (!(output.Body instanceof Readable) || output.ContentLength === undefined) {
          throw new Error(`object ${key}: S3 response has no readable body or no Content-Length`);
        }
        return {
          stream: output.Body,
          contentType: output.ContentType ?? 'application/octet-stream',
          byteSize: output.ContentLength,
        };
      } catch (error) {
        if (isNotFound(error)) throw new ObjectNotFoundError(key);
        throw error;
      }
    },

    async stat(key): Promise<StoredObject | undefined> {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket, Key: key, ChecksumMode: 'ENABLED' }));
        // Every put here carries a SHA-256; an object without one was not written by this store.
        if (!head.ChecksumSHA256 || head.ContentLength === undefined) return undefined;
        return {
          key,
          contentType: head.ContentType ?? 'application/octet-stream',
          byteSize: head.ContentLength,
          sha256: Buffer.from(head.ChecksumSHA256, 'base64').toString('hex'),
        };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },

    async delete(key): Promise<void> {
      // S3 answers 204 for a missing key too, which is exactly the contract.
      await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
    },
  };
  return store;
}
