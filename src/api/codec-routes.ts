import type { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import express, { Router, type Request, type RequestHandler } from 'express';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Config } from '../config/index.js';
import type { Database } from '../db/schema.js';
import { PayloadDecryptionError } from '../encryption/payload-codec.js';
import { decodePayloads, encodePayloads } from '../temporal-client.js';
import { requireAdminKey } from './admin-auth.js';
import { ApiError } from './api-error.js';
import { validationError } from './invalid-request.js';

/**
 * Temporal's codec server protocol, for the Web UI and the CLI (`--codec-endpoint`): `POST
 * /codec/decode` and `/codec/encode` take `{ payloads }` in protobuf JSON (metadata values and data
 * in base64) and answer the same, run through the data converter's codecs.
 */
export const CODEC_PATH = '/codec';

export interface CodecRouteDependencies {
  db: Kysely<Database>;
  temporal: Client;
  config: Pick<Config, 'codecServer'> & { temporal: Pick<Config['temporal'], 'namespace'> };
}

/** A browser asked for the admin key under this name remembers it for the UI's codec calls. */
const BASIC_REALM = 'Kiln codec';
/** A 2 MiB payload, Temporal's limit, is 2.8 MB in base64; the UI may send several at once. */
const BODY_LIMIT = '16mb';

const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'not base64');
const codecRequestSchema = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), base64).nullish(), data: base64.nullish() })),
});
type JsonPayload = z.infer<typeof codecRequestSchema>['payloads'][number];

/** Each metadata value through `convert`. */
function mapMetadata<A, B>(metadata: Record<string, A> | null | undefined, convert: (value: A) => B) {
  return Object.fromEntries(Object.entries(metadata ?? {}).map(([key, value]) => [key, convert(value)]));
}

function fromJson({ metadata, data }: JsonPayload): Payload {
  return {
    metadata: mapMetadata(metadata, (value) => Buffer.from(value, 'base64')),
    data: Buffer.from(data ?? '', 'base64'),
  };
}

function toJson({ metadata, data }: Payload): JsonPayload {
  return {
    metadata: mapMetadata(metadata, (value) => Buffer.from(value).toString('base64')),
    data: Buffer.from(data ?? []).toString('base64'),
  };
}

function parsePayloads(body: unknown): Payload[] {
  const parsed = codecRequestSchema.safeParse(body);
  if (parsed.success) return parsed.data.payloads.map(fromJson);
  throw validationError(parsed.error, '(body)');
}

/**
 * CORS for the Web UI, which calls from its own origin: the preflight (no credentials) is answered
 * here, before authentication. Requests without an Origin (CLI, curl) pass; a listed origin gets
 * credentials allowed, so the browser may send the remembered admin key; any other origin is refused.
 */
function codecCors(allowedOrigins: readonly string[]): RequestHandler {
  const allowed = new Set(allowedOrigins);
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined) return next();
    res.vary('Origin');
    if (!allowed.has(origin)) {
      throw new ApiError('origin_not_allowed', `origin ${origin} is not in CODEC_ALLOWED_ORIGINS`);
    }
    res.set({ 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true' });
    if (req.method !== 'OPTIONS') return next();
    res.set({
      'Access-Control-Allow-Methods': 'GET, POST',
      'Access-Control-Allow-Headers': 'Authorization, Content-Type, X-Namespace',
      'Access-Control-Max-Age': '600',
    });
    res.status(204).end();
  };
}

/** Kiln has keys for its own namespace only: another's payloads (the UI asks per namespace) pass as they are. */
function isOwnNamespace(deps: CodecRouteDependencies, req: Request): boolean {
  const namespace = req.get('X-Namespace');
  return namespace === undefined || namespace === deps.config.temporal.namespace;
}

/** The codec endpoint, behind the admin key (Bearer, or a browser's Basic). Mounted with the operator API. */
export function codecRoutes(deps: CodecRouteDependencies, adminKey: string): Router {
  const converter = deps.temporal.options.loadedDataConverter;
  const router = Router();
  router.use(codecCors(deps.config.codecServer.allowedOrigins));
  // Only the sign-in page challenges: a challenge on the UI's own calls would leave them waiting on a
  // browser dialog (the page stays blank); refused, they show the payloads still encrypted.
  router.get('/', requireAdminKey(adminKey, deps.db, { basicRealm: BASIC_REALM }), (_req, res) => {
    res.json({ namespace: deps.config.temporal.namespace, encrypted: converter.payloadCodecs.length > 0 });
  });
  router.use(requireAdminKey(adminKey, deps.db, { acceptBasic: true }));
  router.use(express.json({ limit: BODY_LIMIT }));
  router.post('/decode', async (req, res) => {
    const payloads = parsePayloads(req.body);
    try {
      const decoded = isOwnNamespace(deps, req) ? await decodePayloads(converter, payloads) : payloads;
      res.json({ payloads: decoded.map(toJson) });
    } catch (error) {
      if (!(error instanceof PayloadDecryptionError)) throw error;
      throw new ApiError('undecryptable_payload', error.message);
    }
  });
  router.post('/encode', async (req, res) => {
    const payloads = parsePayloads(req.body);
    const encoded = isOwnNamespace(deps, req) ? await encodePayloads(converter, payloads) : payloads;
    res.json({ payloads: encoded.map(toJson) });
  });
  return router;
}
