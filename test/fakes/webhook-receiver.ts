import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Job } from '../../src/jobs/job.js';

/** One request the receiver got on a webhook path. */
export interface ReceivedWebhook {
  path: string;
  id: string;
  timestamp: number;
  /** The `webhook-signature` header as sent: one or more space-separated `v1,<base64>` entries. */
  signature: string;
  body: string;
  /** The parsed body, when it was JSON. */
  payload: { type: string; timestamp: string; seq: number; data: Job } | undefined;
  /** Whether the Standard Webhooks signature checked out against the secret. */
  verified: boolean;
  /** What the receiver answered. */
  status: number;
  at: number;
}

export interface FakeWebhookReceiver {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The URL of one endpoint (`/hooks/<name>`): each endpoint is told how to behave on its own. */
  endpoint(name: string): string;
  /** The `whsec_…` secret that signatures are checked against. */
  setSecret(secret: string): void;
  /** The next `times` requests to the endpoint answer `status`. */
  failNext(name: string, times: number, status?: number): void;
  /** From now on, every request to the endpoint answers 503, until told otherwise. */
  setDown(name: string, down: boolean): void;
  /** The next `times` requests answer 307 to `/elsewhere`. */
  redirectNext(name: string, times: number): void;
  received(name?: string): ReceivedWebhook[];
  /** Requests that reached `/elsewhere` (a followed redirect would). */
  redirectTargetHits(): number;
  close(): Promise<void>;
}

/** Tolerance of the timestamp, as the Standard Webhooks libraries have it. */
const TOLERANCE_SECONDS = 5 * 60;

/**
 * Checks `webhook-signature` the way the Standard Webhooks specification describes it, written apart
 * from Kiln's signer: the key is the base64 after `whsec_`, the signed content `{id}.{timestamp}.{body}`,
 * and any one of the space-separated `v1,<base64>` signatures may match.
 */
export function verifyStandardWebhook(
  secret: string,
  headers: Record<string, string | undefined>,
  body: string,
) {
  const id = headers['webhook-id'];
  const timestamp = Number(headers['webhook-timestamp']);
  const signatures = headers['webhook-signature'];
  if (!id || !Number.isInteger(timestamp) || !signatures) return false;
  if (Math.abs(Date.now() / 1000 - timestamp) > TOLERANCE_SECONDS) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.split(' ').some((entry) => {
    const [version, signature] = entry.split(',');
    const given = Buffer.from(signature ?? '', 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

function parse(body: string): ReceivedWebhook['payload'] {
  try {
    return JSON.parse(body) as ReceivedWebhook['payload'];
  } catch {
    return undefined;
  }
}

/** A webhook receiver on 127.0.0.1 that verifies signatures and fails or redirects when told to. */
export async function startWebhookReceiver(): Promise<FakeWebhookReceiver> {
  let secret = '';
  const received: ReceivedWebhook[] = [];
  const failures = new Map<string, { times: number; status: number }>();
  const redirects = new Map<string, number>();
  const down = new Set<string>();
  let elsewhere = 0;

  const answerFor = (path: string, verified: boolean): number => {
    if (!verified) return 401;
    if (down.has(path)) return 503;
    const failure = failures.get(path);
    if (failure && failure.times > 0) {
      failure.times -= 1;
      return failure.status;
    }
    const redirectsLeft = redirects.get(path) ?? 0;
    if (redirectsLeft > 0) {
      redirects.set(path, redirectsLeft - 1);
      return 307;
    }
    return 204;
  };

  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const path = new URL(req.url ?? '/', 'http://receiver').pathname;
      if (path === '/elsewhere') {
        elsewhere += 1;
        res.writeHead(200).end();
        return;
      }
      const headers = req.headers as Record<string, string | undefined>;
      const verified = verifyStandardWebhook(secret, headers, body);
      const status = answerFor(path, verified);
      received.push({
        path,
        id: headers['webhook-id'] ?? '',
        timestamp: Number(headers['webhook-timestamp']),
        signature: headers['webhook-signature'] ?? '',
        body,
        payload: parse(body),
        verified,
        status,
        at: Date.now(),
      });
      if (status === 307) res.writeHead(307, { Location: '/elsewhere' }).end();
      else res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pathOf = (name: string) => `/hooks/${name}`;
  return {
    url,
    endpoint: (name) => `${url}${pathOf(name)}`,
    setSecret: (value) => {
      secret = value;
    },
    failNext: (name, times, status = 500) => failures.set(pathOf(name), { times, status }),
    setDown: (name, isDown) => (isDown ? down.add(pathOf(name)) : down.delete(pathOf(name))),
    redirectNext: (name, times) => redirects.set(pathOf(name), times),
    received: (name) =>
      name === undefined ? [...received] : received.filter((r) => r.path === pathOf(name)),
    redirectTargetHits: () => elsewhere,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
