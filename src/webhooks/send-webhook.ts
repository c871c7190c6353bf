import type { LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { webhookHeaders, type SigningSecrets } from './signing.js';
import {
  AddressRefused,
  pinnedLookup,
  resolveAllowedHost,
  type AddressGuardOptions,
} from '../egress/address-guard.js';

/** One attempt to POST a delivery. */
export interface WebhookSend extends AddressGuardOptions {
  url: string;
  /** The delivery id: the `webhook-id` of every attempt. */
  id: string;
  body: string;
  secrets: SigningSecrets;
  /** The whole attempt, connection included. */
  timeoutMs: number;
}

/** What came of one attempt. */
export interface WebhookAttemptResult {
  startedAt: Date;
  durationMs: number;
  /** The receiver's status; null when it gave none (refused address, timeout, reset). */
  statusCode: number | null;
  /** Why the attempt failed; null when it succeeded (a 2xx). */
  error: string | null;
  /** No later attempt could succeed: the address is refused. */
  permanent: boolean;
}

/** Receivers answer with a status; their body is read no further than this, then dropped. */
const MAX_BODY_READ = 4096;

/**
 * POSTs the body once, signed. Redirects are not followed: a 3xx is a failed attempt, like any other
 * non-2xx answer, since following one could lead anywhere the address check did not look.
 */
function post(target: URL, addresses: LookupAddress[], send: WebhookSend): Promise<number> {
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const outgoing = request(target, {
      method: 'POST',
      lookup: pinnedLookup(addresses),
      signal: AbortSignal.timeout(send.timeoutMs),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Kiln-Webhooks/1',
        ...webhookHeaders(send.secrets, send.id, send.body),
      },
    });
    outgoing.on('response', (response: IncomingMessage) => {
      let read = 0;
      response.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_BODY_READ) response.destroy();
      });
      response.on('close', () => resolve(response.statusCode ?? 0));
      response.on('error', () => resolve(response.statusCode ?? 0));
    });
    outgoing.on('error', reject);
    outgoing.end(send.body);
  });
}

function describe(error: unknown): string {
  if (error instanceof Error && error.name === 'AbortError') return 'timed out';
  if (error instanceof Error && error.name === 'TimeoutError') return 'timed out';
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Sends one attempt; never throws: every outcome is a result to record. */
export async function sendWebhook(send: WebhookSend): Promise<WebhookAttemptResult> {
  const startedAt = new Date();
  const done = (statusCode: number | null, error: string | null, permanent = false) => ({
    startedAt,
    durationMs: Date.now() - startedAt.getTime(),
    statusCode,
    error,
    permanent,
  });
  try {
    const target = new URL(send.url);
    const addresses = await resolveAllowedHost(target, send);
    const status = await post(target, addresses, send);
    if (status >= 200 && status < 300) return done(status, null);
    if (status >= 300 && status < 400) return done(status, `redirect (${status}) not followed`);
    return done(status, `receiver answered ${status}`);
  } catch (error) {
    if (error instanceof AddressRefused) return done(null, `refused: ${error.message}`, true);
    return done(null, describe(error));
  }
}
