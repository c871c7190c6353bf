/*
 * OpenAI-compatible servers (LiteLLM, older OpenAI models) may answer `data[].url` instead of `b64_json`.
 * The image is fetched from there once, and every failure of that fetch is classified here:
 * - the URL's host is, or resolves to, an address Kiln may not reach: invalid_output, final (the server
 *   hands out such URLs; another call would pay for another one);
 * - a URL that is not http(s), a file that is gone (any 3xx or 4xx but 408 and 429: redirects are not
 *   followed, since they could lead where the guard did not look) or bigger than any honest PNG of the
 *   size: invalid_output, retryable, as any bad output is;
 * - no connection, a reset, 408, 429 or 5xx: provider_unavailable, retryable; past the request limit: timeout.
 */
import type { LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  AddressRefused,
  pinnedLookup,
  resolveAllowedHost,
  type AddressGuardOptions,
} from '../egress/address-guard.js';
import { FailureCode } from '../jobs/job.js';
import { ProviderError } from './provider-error.js';

export interface ImageUrlDownload {
  guard: AddressGuardOptions;
  /** Bytes past this end the download: no honest image is larger. */
  maxBytes: number;
  /** The whole download, connection included. */
  timeoutMs: number;
  /** The call's own signal: an abort is cancellation, rethrown as it is. */
  signal: AbortSignal;
}

const invalidOutput = (message: string, retryable = true) =>
  new ProviderError(FailureCode.invalidOutput, `image URL: ${message}`, retryable);

function statusFailure(status: number): ProviderError {
  const message = `the image URL answered ${status}`;
  if (status === 408 || status === 429 || status >= 500) {
    return new ProviderError(FailureCode.providerUnavailable, message, true);
  }
  return invalidOutput(`answered ${status}${status < 400 ? ' (redirects are not followed)' : ''}`);
}

/** The body, read no further than `maxBytes`. */
function readBounded(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooBig = () => invalidOutput(`the image is more than ${maxBytes} bytes`);
    if (Number(response.headers['content-length']) > maxBytes) return response.destroy(tooBig());
    const chunks: Buffer[] = [];
    let read = 0;
    response.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > maxBytes) response.destroy(tooBig());
      else chunks.push(chunk);
    });
    response.on('end', () => resolve(Buffer.concat(chunks)));
    response.on('error', reject);
  });
}

function get(
  target: URL,
  addresses: LookupAddress[],
  maxBytes: number,
  signal: AbortSignal,
): Promise<Buffer> {
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(target, {
      lookup: pinnedLookup(addresses),
      signal,
      headers: { accept: 'image/*' },
    });
    outgoing.on('response', (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) readBounded(response, maxBytes).then(resolve, reject);
      else {
        response.destroy();
        reject(statusFailure(status));
      }
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

function classify(error: unknown, timedOut: boolean): ProviderError {
  if (error instanceof ProviderError) return error;
  if (error instanceof AddressRefused) return invalidOutput(`refused: ${error.message}`, false);
  if (timedOut) return new ProviderError(FailureCode.timeout, 'the image URL timed out', true);
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(FailureCode.providerUnavailable, `the image URL failed: ${message}`, true);
}

/** Downloads the image at `url` through the address guard; throws a ProviderError, or the call's abort. */
export async function fetchImageUrl(url: string, download: ImageUrlDownload): Promise<Buffer> {
  const target = URL.canParse(url) ? new URL(url) : undefined;
  if (!target || !['http:', 'https:'].includes(target.protocol)) {
    throw invalidOutput(`${url.slice(0, 100)} is not an http(s) URL`);
  }
  const timeout = AbortSignal.timeout(download.timeoutMs);
  try {
    const addresses = await resolveAllowedHost(target, download.guard);
    return await get(target, addresses, download.maxBytes, AbortSignal.any([download.signal, timeout]));
  } catch (error) {
    // The call's own abort is cancellation, not a failure of the provider.
    if (download.signal.aborted) throw error;
    throw classify(error, timeout.aborted);
  }
}
