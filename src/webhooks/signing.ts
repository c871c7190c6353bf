import { createHmac, randomBytes } from 'node:crypto';

/** Standard Webhooks secrets are shown as `whsec_` and the base64 of the key. */
const SECRET_PREFIX = 'whsec_';

/** 256 random bits, as a `whsec_…` secret. */
export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`;
}

/** `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the secret's decoded bytes. */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(
    secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret,
    'base64',
  );
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

/**
 * The secrets one attempt is signed with: the current one first, then a previous one while a rotation's
 * overlap lasts. A receiver accepts when any signature matches, so it may hold either secret meanwhile.
 */
export type SigningSecrets = readonly [current: string, ...previous: string[]];

/**
 * The three Standard Webhooks headers of one attempt: the id is the delivery's, the time the attempt's,
 * and one space-separated `v1,` signature per secret.
 */
export function webhookHeaders(
  secrets: SigningSecrets,
  id: string,
  body: string,
  now = Date.now(),
): Record<string, string> {
  const timestamp = Math.floor(now / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map((secret) => signWebhook(secret, id, timestamp, body)).join(' '),
  };
}
