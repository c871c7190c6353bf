import { createHash, timingSafeEqual } from 'node:crypto';

/** Digests have one length whatever was sent, so comparing them leaks neither the secret nor its length. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Whether a presented value is `secret`, compared in constant time; nothing presented is no match. */
export function secretMatcher(secret: string): (presented: string | undefined) => boolean {
  const expected = digest(secret);
  return (presented) => presented !== undefined && timingSafeEqual(digest(presented), expected);
}
