import { Router } from 'express';
import type { Kysely } from 'kysely';
import { creditTotals } from '../db/credit-repository.js';
import { countUnfinishedJobs } from '../db/job-repository.js';
import type { Database } from '../db/schema.js';
import { findUser } from '../db/user-repository.js';
import { ApiError } from './api-error.js';
import { authenticate, callerOf } from './authenticate.js';

/** `GET /v1/me`: the caller's plan, credits (balance, and reserved, settled, refunded by jobs) and unfinished jobs. */
export function meRoute(db: Kysely<Database>): Router {
  const router = Router();
  router.use(authenticate(db));
  router.get('/', async (_req, res) => {
    const userId = callerOf(res);
    const [user, totals, jobs] = await Promise.all([
      findUser(db, userId),
      creditTotals(db, userId),
      countUnfinishedJobs(db, userId),
    ]);
    if (!user) throw new ApiError('not_found', 'no such user');
    res.json({
      id: user.id,
      name: user.name,
      plan: user.plan,
      credits: { balance: user.credits, ...totals },
      jobs,
    });
  });
  return router;
}
