import { Router, type Request } from 'express';
import { z } from 'zod';
import { findJob, toJob } from '../db/job-repository.js';
import type { JobRow } from '../db/schema.js';
import { listStuckJobs } from '../db/stuck-job-repository.js';
import { JobStatus, UNFINISHED_STATUSES, type Job } from '../jobs/job.js';
import type { Config } from '../config/index.js';
import { requireAdminKey } from './admin-auth.js';
import { ApiError } from './api-error.js';
import { isJobId } from '../jobs/job-identity.js';
import { cancelJob } from '../use-cases/cancel-generation.js';
import { providerStates } from '../use-cases/provider-states.js';
import { retryFailedJob, type RetryDependencies } from '../use-cases/retry-job.js';
import { validationError } from './invalid-request.js';
import { queryInteger } from './query-integer.js';
import { cancelRefusal, retryRefusal } from './refusals.js';

export const ADMIN_PATH = '/v1/admin';

export interface AdminRouteDependencies extends RetryDependencies {
  config: RetryDependencies['config'] & Pick<Config, 'providerLimits'>;
}

const MAX_IDLE_SECONDS = 30 * 86_400;

export const stuckQuerySchema = z
  .object({
    status: z
      .enum([JobStatus.queued, JobStatus.running, JobStatus.storing])
      .optional()
      .describe('One unfinished status; all three when absent'),
    idleSeconds: queryInteger(0, MAX_IDLE_SECONDS, 300).describe(
      'Listed when the job has not changed (status or progress) for at least this long',
    ),
    limit: queryInteger(1, 500, 100),
  })
  .strict();

/** A job the operator may want to act on, longest idle first. */
export interface StuckJob {
  job: Job;
  userId: string;
  workflowId: string;
  idleSeconds: number;
}

export interface StuckJobList {
  data: StuckJob[];
  /** More jobs match than `limit`: narrow by status or raise `idleSeconds`. */
  hasMore: boolean;
}

function parseStuckQuery(query: unknown): z.infer<typeof stuckQuerySchema> {
  const parsed = stuckQuerySchema.safeParse(query);
  if (parsed.success) return parsed.data;
  throw validationError(parsed.error, '(query)');
}

async function anyJob(deps: AdminRouteDependencies, req: Request): Promise<JobRow> {
  const id = String(req.params.id);
  const row = isJobId(id) ? await findJob(deps.db, id) : undefined;
  if (!row) throw new ApiError('not_found', 'no such job');
  return row;
}

/** The operator API: every job of every user, behind the admin key. Mounted only when one is configured. */
export function adminRoutes(deps: AdminRouteDependencies, adminKey: string): Router {
  const router = Router();
  router.use(requireAdminKey(adminKey, deps.db));

  router.get('/jobs/stuck', async (req, res) => {
    const { status, idleSeconds, limit } = parseStuckQuery(req.query);
    const statuses = status ? [status] : UNFINISHED_STATUSES;
    // One row more than asked tells whether more match, without a count.
    const found = await listStuckJobs(deps.db, { statuses, idleSeconds, limit: limit + 1 });
    const data = found.slice(0, limit).map(({ row, idleSeconds: idle }) => ({
      job: toJob(row),
      userId: row.user_id,
      workflowId: row.workflow_id,
      idleSeconds: idle,
    }));
    res.json({ data, hasMore: found.length > limit } satisfies StuckJobList);
  });

  router.post('/jobs/:id/retry', async (req, res) => {
    const outcome = await retryFailedJob(deps, await anyJob(deps, req));
    if (outcome.kind === 'refused') throw retryRefusal(outcome);
    res.status(202).json(toJob(outcome.row));
  });

  router.post('/jobs/:id/cancel', async (req, res) => {
    const row = await anyJob(deps, req);
    const outcome = await cancelJob(deps, row);
    if (outcome !== 'canceling') throw cancelRefusal(outcome, row);
    res.status(202).json(toJob(row));
  });

  router.get('/providers', async (_req, res) => {
    res.json({ data: await providerStates(deps.db, deps.providers, deps.config.providerLimits) });
  });

  return router;
}
