import { z } from 'zod';
import { JOB_KINDS, JobStatus } from '../jobs/job.js';
import type { ListQuery } from '../use-cases/list-generations.js';
import { validationError } from './invalid-request.js';
import { queryInteger } from './query-integer.js';

/** The query of `GET /v1/generations`. */
export const listQuerySchema = z
  .object({
    status: z.enum(Object.values(JobStatus) as [JobStatus, ...JobStatus[]]).optional(),
    kind: z.enum(JOB_KINDS).optional(),
    limit: queryInteger(1, 100, 20),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export function parseListQuery(query: unknown): ListQuery {
  const parsed = listQuerySchema.safeParse(query);
  if (!parsed.success) throw validationError(parsed.error, '(query)');
  return parsed.data;
}
