/*
 * A browser cannot set headers on a WebSocket, so the page offers its API key as a subprotocol instead:
 * `new WebSocket(url, [STREAM_PROTOCOL, STREAM_KEY_PROTOCOL_PREFIX + key])`, as Kubernetes takes a bearer
 * token. The key stays out of the URL, and so out of access logs. The server answers with
 * STREAM_PROTOCOL only, never echoing the key.
 */

/** The protocol a socket that offered one is answered with. */
export const STREAM_PROTOCOL = 'kiln';
export const STREAM_KEY_PROTOCOL_PREFIX = 'kiln.key.';

/** The key a `Sec-WebSocket-Protocol` header offers, if it offers one. */
export function keyOfStreamProtocols(header: string | undefined): string | undefined {
  const offered = (header ?? '').split(',').map((protocol) => protocol.trim());
  const keyed = offered.find((protocol) => protocol.startsWith(STREAM_KEY_PROTOCOL_PREFIX));
  const key = keyed?.slice(STREAM_KEY_PROTOCOL_PREFIX.length);
  return key || undefined;
}

/** ws's `handleProtocols`: the plain protocol when offered; otherwise none, and the browser gives up. */
export function chooseStreamProtocol(offered: Set<string>): string | false {
  return offered.has(STREAM_PROTOCOL) ? STREAM_PROTOCOL : false;
}
