import { z } from 'zod';
import { ApiErrorStatus, type ApiErrorCode } from '../api-error-codes.js';

/* The parts every area's paths are written with: references, parameters, answers. */

export type JsonSchema = z.core.JSONSchema.BaseSchema;

export const ref = (id: string) => `#/components/schemas/${id}`;

/** OpenAPI 3.1 schemas default to draft 2020-12, and a `$id` with a fragment is not valid there. */
export function bare({ $schema: _dialect, $id: _id, ...schema }: JsonSchema): JsonSchema {
  return schema;
}

export function queryParameters(schema: z.ZodObject) {
  const { properties = {}, required = [] } = z.toJSONSchema(schema, { io: 'input' });
  return Object.entries(properties).map(([name, property]) => ({
    name,
    in: 'query',
    required: required.includes(name),
    schema: property,
  }));
}

export const header = (description: string) => ({ description, schema: { type: 'string' } });

export function json(description: string, schemaId: string, headers?: Record<string, unknown>) {
  const content = { 'application/json': { schema: { $ref: ref(schemaId) } } };
  return headers ? { description, content, headers } : { description, content };
}

/** The headers an error answer of this status comes with. */
function errorHeaders(status: number): Record<string, unknown> | undefined {
  if (status === 401) return { 'WWW-Authenticate': header('`Bearer`') };
  if (status === 429) return { 'Retry-After': header('Seconds to wait') };
  return undefined;
}

/**
 * An operation's error answers, from the codes it may send (each with what its description adds after
 * it): grouped under the status `ApiErrorStatus` gives each code, so the document cannot list a code
 * the API does not have, or under another status.
 */
export function errors(codes: Partial<Record<ApiErrorCode, string>>) {
  const byStatus = new Map<number, string[]>();
  for (const [code, note] of Object.entries(codes)) {
    const status = ApiErrorStatus[code as ApiErrorCode];
    byStatus.set(status, [...(byStatus.get(status) ?? []), `\`${code}\`${note}`]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, described]) => [
      status,
      json(described.join(', '), 'Error', errorHeaders(status)),
    ]),
  );
}

export const unauthorized = errors({ unauthorized: ': no valid API key' });

export const jobId = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
