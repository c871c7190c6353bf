import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
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

/** The chunks of `png` as [type, data] pairs, after the signature. */
function chunksOf(png: Buffer): [string, Buffer][] {
  const chunks: [string, Buffer][] = [];
  for (let offset = 8; offset < png.length; offset += 12 + png.readUInt32BE(offset)) {
    const length = png.readUInt32BE(offset);
    chunks.push([
      png.toString('latin1', offset + 4, offset + 8),
      png.subarray(offset + 8, offset + 8 + length),
    ]);
  }
  return chunks;
}

function chunk(type: string, data: Buffer): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const framed = Buffer.alloc(12 + data.length);
  framed.writeUInt32BE(data.length, 0);
  typeAndData.copy(framed, 4);
  framed.writeUInt32BE(crc32(typeAndData), 8 + data.length);
  return framed;
}

/** `png` with its image data (the inflated, filtered rows) replaced by `edit`'s, in whole chunks. */
function withRows(png: Buffer, edit: (rows: Buffer) => Buffer): Buffer {
  const chunks = chunksOf(png);
  const rows = inflateSync(Buffer.concat(chunks.filter(([type]) => type === 'IDAT').map(([, data]) => data)));
  const others = chunks.filter(([type]) => type !== 'IDAT' && type !== 'IEND');
  return Buffer.concat([
    png.subarray(0, 8),
    ...others.map(([type, data]) => chunk(type, data)),
    chunk('IDAT', deflateSync(edit(Buffer.from(rows)))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
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

  test('a PNG rebuilt from its own rows passes, so the edits below are what is refused', () => {
    verifyImage(
      withRows(pngOf(256, 256), (rows) => rows),
      '256x256',
    );
  });

  test('a chunk whose bytes do not match its CRC is refused', () => {
    const png = Buffer.from(pngOf(256, 256));
    png[IHDR_CRC + 12] = png[IHDR_CRC + 12]! ^ 0xff;
    assertRefused(png, /not a decodable PNG: its \w+ chunk fails its CRC/);
  });

  test("image data that inflates past the header's rows is refused, and inflated no further", () => {
    const bomb = withRows(pngOf(256, 256), (rows) => Buffer.concat([rows, Buffer.alloc(64 * 1024 * 1024)]));
    const rssBefore = process.memoryUsage.rss();
    assertRefused(bomb, /not a decodable PNG: its image data/);
    const grown = process.memoryUsage.rss() - rssBefore;
    assert.ok(grown < 32 * 1024 * 1024, `RSS grew by ${Math.round(grown / 2 ** 20)} MB`);
  });

  test("image data short of the header's rows, or a row of an unknown filter type, is refused", () => {
    const png = pngOf(256, 256);
    assertRefused(
      withRows(png, (rows) => rows.subarray(0, rows.length - 1)),
      /image data holds \d+ bytes, not \d+/,
    );
    assertRefused(
      withRows(png, (rows) => {
        rows[0] = 7;
        return rows;
      }),
      /filter type 7/,
    );
  });

  test('a bit depth its colour type does not allow is refused', () => {
    assertRefused(
      withIhdr(pngOf(256, 256), (data) => data.writeUInt8(4, 8)),
      /colour type 6 at bit depth 4/,
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
