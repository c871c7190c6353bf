import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { ObjectStoreConfig, S3ObjectStoreOptions } from '../src/config/index.js';
import { createObjectStore } from '../src/storage/create-object-store.js';
import { InvalidObjectKeyError } from '../src/storage/filesystem-object-store.js';
import { ObjectNotFoundError, type ObjectStore } from '../src/storage/object-store.js';
import { createS3Client, ensureBucket } from '../src/storage/s3-object-store.js';
import { startMinio, type MinioServer } from './harness/minio.js';

async function readAll(stream: Readable): Promise<Buffer> {
  return Buffer.concat((await stream.toArray()) as Buffer[]);
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A key no other test uses, so tests share one store without seeing each other's objects. */
function uniqueKey(): string {
  return `jobs/${randomUUID()}/result.png`;
}

/** The behaviour every adapter promises; `store` is read lazily because it is built in a `before` hook. */
function itBehavesLikeAnObjectStore(store: () => ObjectStore): void {
  it('put confirms the SHA-256, size and content type of the bytes', async () => {
    const key = uniqueKey();
    const bytes = randomBytes(70_000);
    const stored = await store().put(key, bytes, 'image/png');
    assert.deepEqual(stored, {
      key,
      contentType: 'image/png',
      byteSize: bytes.length,
      sha256: sha256Hex(bytes),
    });
  });

  it('get streams back the same bytes with their content type and size', async () => {
    const key = uniqueKey();
    const bytes = randomBytes(300_000);
    await store().put(key, bytes, 'image/webp');
    const body = await store().get(key);
    assert.equal(body.contentType, 'image/webp');
    assert.equal(body.byteSize, bytes.length);
    assert.deepEqual(await readAll(body.stream), bytes);
  });

  it('stat says what put confirmed, and undefined where nothing is', async () => {
    const key = uniqueKey();
    const stored = await store().put(key, randomBytes(5_000), 'text/plain; charset=utf-8');
    assert.deepEqual(await store().stat(key), stored);
    await store().delete(key);
    assert.equal(await store().stat(key), undefined);
  });

  it('stores an empty object', async () => {
    const key = uniqueKey();
    const stored = await store().put(key, new Uint8Array(), 'application/octet-stream');
    assert.equal(stored.sha256, sha256Hex(new Uint8Array()));
    const body = await store().get(key);
    assert.equal(body.byteSize, 0);
    assert.equal((await readAll(body.stream)).length, 0);
  });

  it('the first write of a key wins: a later put resolves to the object already there', async () => {
    const key = uniqueKey();
    const first = Buffer.from('first attempt');
    const stored = await store().put(key, first, 'text/plain');
    const again = await store().put(key, Buffer.from('second attempt, longer'), 'application/json');
    assert.deepEqual(again, stored);
    assert.equal(again.sha256, sha256Hex(first));
    const body = await store().get(key);
    assert.equal(body.contentType, 'text/plain');
    assert.deepEqual(await readAll(body.stream), first);
  });

  it('puts of one key at once all resolve to the one object the key keeps', async () => {
    const key = uniqueKey();
    const outputs = Array.from({ length: 5 }, () => randomBytes(100_000));
    const answers = await Promise.all(outputs.map((bytes) => store().put(key, bytes, 'image/png')));
    const kept = await readAll((await store().get(key)).stream);
    for (const answer of answers) assert.equal(answer.sha256, sha256Hex(kept));
    assert.ok(outputs.some((bytes) => bytes.equals(kept)));
  });

  it('get of a missing key rejects with ObjectNotFoundError', async () => {
    const key = uniqueKey();
    await assert.rejects(
      store().get(key),
      (error) => error instanceof ObjectNotFoundError && error.key === key,
    );
  });

  it('delete removes the object, and deleting a missing key is fine', async () => {
    const key = uniqueKey();
    await store().put(key, Buffer.from('short-lived'), 'text/plain');
    await store().delete(key);
    await assert.rejects(store().get(key), ObjectNotFoundError);
    await store().delete(key);
    await store().delete(uniqueKey());
  });
}

describe('filesystem object store', () => {
  let rootDir = '';
  let store: ObjectStore | undefined;

  before(async () => {
    rootDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-storage-'));
    store = createObjectStore({ driver: 'filesystem', dir: rootDir });
  });
  after(() => rm(rootDir, { recursive: true, force: true }));

  const current = (): ObjectStore => store ?? assert.fail('store not created');
  itBehavesLikeAnObjectStore(current);

  it('rejects keys that would escape the root or are not plain paths', async () => {
    for (const key of ['../outside', 'jobs/../../outside', '/etc/passwd', '', 'a//b', './a']) {
      await assert.rejects(current().put(key, Buffer.from('x'), 'text/plain'), InvalidObjectKeyError, key);
      await assert.rejects(current().get(key), InvalidObjectKeyError, key);
      await assert.rejects(current().delete(key), InvalidObjectKeyError, key);
    }
  });

  it('a key that names a folder of other keys is not an object', async () => {
    const parent = `jobs/${randomUUID()}`;
    await current().put(`${parent}/child`, Buffer.from('x'), 'text/plain');
    await assert.rejects(current().get(parent), ObjectNotFoundError);
  });

  it('leaves no temporary files behind', async () => {
    await current().put(uniqueKey(), randomBytes(1_000), 'image/png');
    assert.deepEqual(await readdir(path.join(rootDir, 'tmp')), []);
  });
});

describe('S3 object store (MinIO)', () => {
  let minio: MinioServer | undefined;
  let options: S3ObjectStoreOptions | undefined;
  let store: ObjectStore | undefined;

  before(async () => {
    minio = await startMinio();
    const { endpoint, region, accessKeyId, secretAccessKey } = minio;
    options = {
      bucket: `kiln-test-${randomUUID()}`,
      endpoint,
      region,
      accessKeyId,
      secretAccessKey,
      forcePathStyle: true,
    };
    await ensureBucket(options);
    // A second call must be harmless: `npm start` runs it on every boot.
    await ensureBucket(options);
    const config: ObjectStoreConfig = { driver: 's3', ...options };
    store = createObjectStore(config);
  });
  after(() => minio?.stop());

  const current = (): ObjectStore => store ?? assert.fail('store not created');
  itBehavesLikeAnObjectStore(current);

  it('the server refuses a body whose SHA-256 does not match the one sent', async () => {
    const s3Options = options ?? assert.fail('options not created');
    const client = createS3Client(s3Options);
    const key = uniqueKey();
    const wrongChecksum = createHash('sha256').update('other bytes').digest('base64');
    try {
      await assert.rejects(
        client.send(
          new PutObjectCommand({
            Bucket: s3Options.bucket,
            Key: key,
            Body: Buffer.from('bytes'),
            ChecksumSHA256: wrongChecksum,
          }),
        ),
        // MinIO's name for the mismatch; AWS S3 calls it BadDigest.
        (error: Error) => error.name === 'XAmzContentChecksumMismatch' || error.name === 'BadDigest',
      );
    } finally {
      client.destroy();
    }
    await assert.rejects(current().get(key), ObjectNotFoundError);
  });
});
