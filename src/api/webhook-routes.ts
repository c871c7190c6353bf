import type { Request, Response, Router } from 'express';
import type { Kysely } from 'kysely';
import type { Config } from '../config/index.js';
import type { Database, JobRow } from '../db/schema.js';
import { findWebhookDelivery, listWebhookDeliveries, reopenDelivery } from '../db/webhook-repository.js';
import { startDeliveryRun } from '../webhooks/dispatch-deliveries.js';
import type { Client } from '@temporalio/client';
import { ApiError } from './api-error.js';

export interface WebhookRouteDependencies {
  db: Kysely<Database>;
  temporal: Client;
  config: Pick<Config, 'temporal' | 'webhooks'>;
}

type OwnedJob = (req: Request, res: Response) => Promise<JobRow>;

/**
 * `GET /:id/webhooks`: the job's deliveries with every attempt. `POST /:id/webhooks/:deliveryId/redeliver`:
 * a delivery that has ended (failed, or succeeded) is sent again in a new run with a fresh retry window.
 */
export function addWebhookRoutes(router: Router, deps: WebhookRouteDependencies, ownedJob: OwnedJob): void {
  router.get('/:id/webhooks', async (req, res) => {
    const job = await ownedJob(req, res);
    res.json({ data: await listWebhookDeliveries(deps.db, job.id) });
  });

  router.post('/:id/webhooks/:deliveryId/redeliver', async (req, res) => {
    const job = await ownedJob(req, res);
    const deliveryId = String(req.params.deliveryId);
    const reopened = await reopenDelivery(deps.db, job.id, deliveryId);
    if (reopened === 'not_found') throw new ApiError('not_found', 'no such delivery');
    if (reopened === 'pending') {
      throw new ApiError('delivery_pending', 'the delivery is still being attempted');
    }
    const { temporal, webhooks } = deps.config;
    await startDeliveryRun(
      { db: deps.db, temporal: deps.temporal, taskQueue: temporal.taskQueue, retry: webhooks.retry },
      reopened.id,
      reopened.run,
    );
    res.status(202).json(await findWebhookDelivery(deps.db, job.id, deliveryId));
  });
}
