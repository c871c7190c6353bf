import { crc32, inflateSync } from 'node:zlib';
import { FailureCode, imageDimensions, type ImageSize } from '../jobs/job.js';
import { ProviderError } from '../providers/provider-error.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// Signature(8), then the IHDR chunk: length(4) 'IHDR'(4) width(4) height(4) depth, colour,
// compression, filter, interlace (1 each) and CRC(4).
const IHDR_END = 33;

// Room for ancillary chunks (ICC profile, EXIF/XMP text) a provider may add to an honest image.
const METADATA_HEADROOM_BYTES = 1024 * 1024;

interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
  /** Compression and filter method: 0 is the only one defined. */
  methods: number;
  interlaced: boolean;
}

/** Samples per pixel and allowed bit depths of each colour type (PNG specification, 11.2.2). */
const COLOUR_TYPES: Readonly<Record<number, { samples: number; depths: readonly number[] }>> = {
  0: { samples: 1, depths: [1, 2, 4, 8, 16] },
  2: { samples: 3, depths: [8, 16] },
  3: { samples: 1, depths: [1, 2, 4, 8] },
  4: { samples: 2, depths: [8, 16] },
  6: { samples: 4, depths: [8, 16] },
};
const PALETTE = 3;
/** Filter types a row may start with: None, Sub, Up, Average, Paeth. */
const MAX_FILTER_TYPE = 4;

/**
 * Checks a provider's output before anything is stored or charged as a success: it must decode as a
 * PNG of the requested size. A bad output is a retryable `invalid_output`: another generation may fix it.
 * The size and header are checked first: the image data is inflated up to what the header claims, so
 * a small file claiming 12000x12000 would cost gigabytes before its size could be refused.
 */
export function verifyImage(bytes: Uint8Array, size: ImageSize): void {
  const expected = imageDimensions(size);
  const limit = maxImageBytes(size);
  if (bytes.byteLength > limit) {
    refuse(`output is ${bytes.byteLength} bytes, more than ${limit} for any PNG of ${size}`);
  }
  const header = readPngHeader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (!header) refuse('output is not a PNG: no signature and IHDR chunk');
  if (header.width !== expected.width || header.height !== expected.height) {
    refuse(`output is ${header.width}x${header.height}, ${size} was requested`);
  }
  // Providers do not interlace, and an interlaced image's rows are not one run of equal rows.
  if (header.interlaced) refuse('output is an interlaced PNG, which is not accepted');
  checkStructure(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), header);
}

/**
 * The most bytes an honest PNG of this size needs: every pixel stored uncompressed at the widest
 * format (16-bit RGBA, 8 bytes), a filter byte per row, and metadata headroom. Deflate's stored blocks
 * add 5 bytes per 64 KiB, which the headroom covers. Past it an output is refused, so a download of
 * one stops there.
 */
export function maxImageBytes(size: ImageSize): number {
  const { width, height } = imageDimensions(size);
  return width * height * 8 + height + METADATA_HEADROOM_BYTES;
}

/** The IHDR fields that matter here, or undefined when the bytes do not start as a PNG does. */
function readPngHeader(bytes: Buffer): PngHeader | undefined {
  if (bytes.length < IHDR_END || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return undefined;
  if (bytes.readUInt32BE(8) !== 13 || bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return {
    width: bytes.readUInt32BE(16),
    height: bytes.readUInt32BE(20),
    bitDepth: bytes[24]!,
    colourType: bytes[25]!,
    methods: bytes[26]! | bytes[27]!,
    interlaced: bytes[28] !== 0,
  };
}

/** The chunks from IHDR to IEND, each whole and matching its CRC; what the image data needs of them. */
function readChunks(bytes: Buffer): { imageData: Buffer; hasPalette: boolean } {
  const imageData: Buffer[] = [];
  let hasPalette = false;
  for (let offset = 8; ;) {
    const dataEnd = offset + 8 + (offset + 8 <= bytes.length ? bytes.readUInt32BE(offset) : 0);
    if (dataEnd + 4 > bytes.length) undecodable('it ends inside a chunk');
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    if (crc32(bytes.subarray(offset + 4, dataEnd)) !== bytes.readUInt32BE(dataEnd)) {
      undecodable(`its ${type} chunk fails its CRC`);
    }
    if (type === 'IDAT') imageData.push(bytes.subarray(offset + 8, dataEnd));
    if (type === 'PLTE') hasPalette = true;
    if (type === 'IEND') return { imageData: Buffer.concat(imageData), hasPalette };
    offset = dataEnd + 4;
  }
}

/**
 * What decoding would find wrong, short of unfiltering every row into pixels (most of a decode's
 * cost, and it cannot fail on data that passes this): a format the header may not name, a chunk cut
 * short or corrupted, a palette image without its palette, image data that does not inflate to exactly
 * the header's rows (inflation stops one byte past them, so no claim expands it further), a row with
 * an unknown filter type.
 */
function checkStructure(bytes: Buffer, header: PngHeader): void {
  const format = COLOUR_TYPES[header.colourType];
  if (!format?.depths.includes(header.bitDepth) || header.methods !== 0) {
    undecodable(`colour type ${header.colourType} at bit depth ${header.bitDepth} is no PNG format`);
  }
  const { imageData, hasPalette } = readChunks(bytes);
  if (header.colourType === PALETTE && !hasPalette) undecodable('its palette is missing');
  const rowBytes = Math.ceil((header.width * format.samples * header.bitDepth) / 8) + 1;
  const expected = rowBytes * header.height;
  let rows: Buffer;
  try {
    rows = inflateSync(imageData, { maxOutputLength: expected + 1 });
  } catch (error) {
    undecodable(`its image data does not inflate (${(error as Error).message})`);
  }
  if (rows.length !== expected) undecodable(`its image data holds ${rows.length} bytes, not ${expected}`);
  for (let row = 0; row < expected; row += rowBytes) {
    if (rows[row]! > MAX_FILTER_TYPE) undecodable(`a row has filter type ${rows[row]}`);
  }
}

function undecodable(why: string): never {
  refuse(`output is not a decodable PNG: ${why}`);
}

function refuse(message: string): never {
  throw new ProviderError(FailureCode.invalidOutput, message, true);
}
