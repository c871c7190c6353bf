import { PNG } from 'pngjs';
import { FailureCode, imageDimensions, type ImageSize } from '../jobs/job.js';
import { ProviderError } from '../providers/provider-error.js';

/**
 * Checks a provider's output before anything is stored or charged as a success: it must decode as a
 * PNG of the requested size. A bad output is a retryable `invalid_output`: another generation may fix it.
 */
export function verifyImage(bytes: Uint8Array, size: ImageSize): void {
  const expected = imageDimensions(size);
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw new ProviderError(
      FailureCode.invalidOutput,
      `output is not a decodable PNG: ${String(error)}`,
      true,
    );
  }
  if (png.width !== expected.width || png.height !== expected.height) {
    throw new ProviderError(
      FailureCode.invalidOutput,
      `output is ${png.width}x${png.height}, ${size} was requested`,
      true,
    );
  }
}
