import { PNG } from 'pngjs';
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
  interlaced: boolean;
}

/**
 * Checks a provider's output before anything is stored or charged as a success: it must decode as a
 * PNG of the requested size. A bad output is a retryable `invalid_output`: another generation may fix it.
 * The size and header are checked by hand first: the decoder allocates what the header claims, so a
 * small file claiming 12000x12000 would cost gigabytes before its size could be refused.
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
  // pngjs bounds inflation by the header's size only for non-interlaced images; an interlaced one is
  // inflated whole, so a small file could still expand to gigabytes. Providers do not interlace.
  if (header.interlaced) refuse('output is an interlaced PNG, which is not accepted');
  decodes(bytes);
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
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20), interlaced: bytes[28] !== 0 };
}

function decodes(bytes: Uint8Array): void {
  try {
    PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    refuse(`output is not a decodable PNG: ${String(error)}`);
  }
}

function refuse(message: string): never {
  throw new ProviderError(FailureCode.invalidOutput, message, true);
}
