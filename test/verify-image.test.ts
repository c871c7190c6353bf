import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { PNG } from 'pngjs';
import { verifyImage } from '../src/outputs/verify-image.js';
import { ProviderError } from '../src/providers/provider-error.js';

// The IHDR chunk follows the 8-byte signature: length(4) type(4) data(13) CRC(4).
const IHDR_DATA = 16;
const IHDR_CRC = IHDR_DATA + 13;

function pngOf(width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  png.data.fill(0x80);
  return PNG.sync.write(png);
}

/** `png` with its IHDR data edited by `edit` and the chunk's CRC made right again, so only the edit is wrong. */
function withIhdr(png: Buffer, edit: (data: Buffer) => void): Buffer {
  const copy = Buffer.from(png);
  edit(copy.subarray(IHDR_DATA, IHDR_CRC));
  copy.writeUInt32BE(crc32(copy.subarray(IHDR_DATA - 4, IHDR_CRC)), IHDR_CRC);
  return copy;
}

function claiming(width: number, height: number): Buffer {
  return withIhdr(pngOf(256, 256), (data) => {
    data.writeUInt32BE(width, 0);
    data.writeUInt32BE(height, 4);
  });
}

/** Asserts `verifyImage` refuses `bytes` as a retryable invalid_output whose message matches `message`. */
function assertRefused(bytes: Uint8Array, message: RegExp): void {
  assert.throws(
    () => verifyImage(bytes, '256x256'),
    (error: unknown) =>
      error instanceof ProviderError &&
      error.code === 'invalid_output' &&
      error.retryable &&
      message.test(error.message),
  );
}

describe('verifyImage checks a PNG before decoding it', () => {
  test('a PNG of the requested size passes', () => {
    verifyImage(pngOf(256, 256), '256x256');
  });

  test('a small PNG whose header claims 12000x12000 is refused by its header, without being decoded', () => {
    const rssBefore = process.memoryUsage.rss();
    const startedAt = Date.now();
    assertRefused(claiming(12_000, 12_000), /12000x12000/);
    assert.ok(Date.now() - startedAt < 500, `took ${Date.now() - startedAt} ms`);
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.ok(grown < 100 * 1024 * 1024, `RSS grew by ${Math.round(grown / 2 ** 20)} MB`);
  });

  test('a PNG of another size is refused with both sizes', () => {
    assertRefused(pngOf(512, 512), /512x512, 256x256 was requested/);
  });

  test('more bytes than any PNG of the requested size needs are refused before they are read', () => {
    const oversized = Buffer.concat([pngOf(256, 256), Buffer.alloc(2 * 1024 * 1024)]);
    assertRefused(oversized, /bytes/);
  });

  test('an interlaced PNG is refused: its decoder inflates without a bound', () => {
    assertRefused(
      withIhdr(pngOf(256, 256), (data) => data.writeUInt8(1, 12)),
      /interlaced/,
    );
  });

  test('truncated or garbage bytes are refused', () => {
    const png = pngOf(256, 256);
    assertRefused(png.subarray(0, png.length / 2), /not a decodable PNG/);
    assertRefused(png.subarray(0, 20), /not a PNG/);
    assertRefused(randomBytes(4096), /not a PNG/);
    assertRefused(new Uint8Array(0), /not a PNG/);
  });
});
