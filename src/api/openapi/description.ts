import { STREAM_PATH } from '../job-stream.js';
import { STREAM_KEY_PROTOCOL_PREFIX, STREAM_PROTOCOL } from '../stream-key-protocol.js';
import { WEBHOOK_SECRET_PATH } from '../webhook-secret-routes.js';

/** The document's introduction: what OpenAPI cannot say, the WebSocket and webhooks above all. */
export const DESCRIPTION = `Kiln runs AI image and text generations as durable jobs: submit one, get \`202\` and a job id at \
once, then read the job, or its content once it has succeeded. Errors come as \
\`{ "error": { "code", "message", "details"? } }\`; a method a path does not take is answered \`405\` \
\`method_not_allowed\` with an \`Allow\` header listing those it does.

Each change of a job is an event numbered \`seq\` 1, 2, 3… per job (the job's \`version\` after it). Events \
stream as Server-Sent Events from \`/v1/generations/{id}/events\`, and over a WebSocket at \`${STREAM_PATH}\`, \
which OpenAPI cannot describe: connect with the same \`Authorization\` header (a browser, which cannot set it, \
offers the subprotocols \`${STREAM_PROTOCOL}\` and \`${STREAM_KEY_PROTOCOL_PREFIX}\` followed by the key, and is answered \`${STREAM_PROTOCOL}\`), send \
\`{ "type": "subscribe", "id", "since"? }\` and receive \`{ "type": "job", "seq", "event", "job" }\` (\`event\` is \
\`status\` or \`progress\`, \`job\` a \`Job\`) for every event after \`since\` until the job ends, then \
\`{ "type": "subscription_ended", "id", "status" }\` (at once for a job that has ended with nothing after \
\`since\`), after which nothing more comes for that id; a client too slow to read is closed with code 4008 and \
resumes with \`since\`, and a socket whose API key is revoked is closed with code 4001. A text job's tokens come between its events as \
\`{ "type": "text", "id", "attempt", "offset", "delta" }\` (\`delta\` goes at \`offset\`, in UTF-16 units, of \
that attempt's text; the first one after subscribing is the text so far, at offset 0) and \
\`{ "type": "reset", "id", "attempt" }\` when a retried attempt starts the text again. \`{ "type": "unsubscribe", "id" }\` stops that, \
\`{ "type": "cancel", "id" }\` cancels the job (answered \`{ "type": "canceling", "id" }\`), and errors come as \
\`{ "type": "error", "error": { "code", "message" }, "id"? }\`.

A job submitted with \`webhook: { url, events? }\` has each event it asks for (default: the terminal statuses) \
POSTed to \`url\` as \`{ type, timestamp, seq, data }\` (\`data\` a \`Job\`), signed the Standard Webhooks way: \
\`webhook-id\` (the delivery id, the same on every attempt), \`webhook-timestamp\` (unix seconds) and \
\`webhook-signature\` (\`v1,\` and the base64 HMAC-SHA256 of \`{id}.{timestamp}.{body}\` under the user's \
\`whsec_…\` secret, \`${WEBHOOK_SECRET_PATH}\`; while a rotation overlaps, a second \`v1,\` entry under the \
replaced one: accept when any entry matches). Any 2xx is success; anything else, a redirect included, is \
retried with backoff for at least 24 h, after which the delivery is \`failed\`: \
\`/v1/generations/{id}/webhooks\` lists deliveries and attempts.`;

/** The areas operations are grouped in, in the order a reader meets them. */
export const TAGS = [
  { name: 'generations', description: 'Submit jobs, read them and their results, cancel them' },
  { name: 'events', description: "A job's events as they happen" },
  { name: 'webhooks', description: "A job's webhook deliveries" },
  { name: 'account', description: "The caller's plan, credits and webhook signing secret" },
  { name: 'service', description: 'Health, metrics and this document; no key needed' },
  { name: 'admin', description: 'The operator API, behind ADMIN_API_KEY; absent when it is not set' },
] as const;

export type Tag = (typeof TAGS)[number]['name'];
