import { setTimeout as sleep } from 'node:timers/promises';
import {
  earlierFirstAttemptPending,
  findDeliveryToSend,
  markDeliveryFailed,
  recordWebhookAttempt,
} from '../db/webhook-repository.js';
import { sendWebhook } from '../webhooks/send-webhook.js';
import type { ActivityDependencies } from './dependencies.js';

/** One attempt of one run of a delivery. */
export interface AttemptWebhookInput {
  deliveryId: string;
  run: number;
}

/**
 * `delivered`: the receiver answered 2xx (now or on an earlier try of this activity). `settled`: this run
 * is no longer the delivery's current pending one. `failed`: try again later, unless `permanent`.
 */
export type AttemptWebhookOutcome =
  { kind: 'delivered' } | { kind: 'settled' } | { kind: 'failed'; error: string; permanent: boolean };

export interface MarkWebhookFailedInput extends AttemptWebhookInput {
  reason: string;
}

const ORDER_POLL_MS = 100;

export function createWebhookDeliveryActivities({ db, logger, webhooks }: ActivityDependencies) {
  const timeoutMs = webhooks.retry.attemptTimeoutSeconds * 1000;

  /**
   * A first attempt waits (a little) for the first attempts of the job's earlier deliveries, so that a
   * receiver that answers sees a job's events in seq order. Bounded: an earlier delivery whose workflow a
   * crash has not started yet holds no one up for long. Retries are not ordered; `seq` says the order.
   */
  async function awaitEarlierFirstAttempts(delivery: Parameters<typeof earlierFirstAttemptPending>[1]) {
    const until = Date.now() + timeoutMs + 5000;
    while (Date.now() < until && (await earlierFirstAttemptPending(db, delivery))) {
      await sleep(ORDER_POLL_MS);
    }
  }

  return {
    async attemptWebhookDelivery({ deliveryId, run }: AttemptWebhookInput): Promise<AttemptWebhookOutcome> {
      const delivery = await findDeliveryToSend(db, deliveryId);
      if (delivery?.status === 'succeeded' && delivery.run === run) return { kind: 'delivered' };
      if (!delivery || delivery.run !== run || delivery.status !== 'pending') return { kind: 'settled' };
      if (delivery.attempts === 0) await awaitEarlierFirstAttempts(delivery);
      const { webhook_secret: current, previous_webhook_secret: previous } = delivery;
      if (!current) return { kind: 'failed', error: 'user has no webhook secret', permanent: true };
      const result = await sendWebhook({
        url: delivery.url,
        id: delivery.id,
        body: delivery.payload,
        secrets: previous ? [current, previous] : [current],
        timeoutMs,
        allowPrivate: webhooks.allowPrivate,
      });
      if (!(await recordWebhookAttempt(db, deliveryId, run, result))) return { kind: 'settled' };
      if (result.error === null) return { kind: 'delivered' };
      logger.info({ deliveryId, run, error: result.error }, 'webhook attempt failed');
      return { kind: 'failed', error: result.error, permanent: result.permanent };
    },

    async markWebhookDeliveryFailed({ deliveryId, run, reason }: MarkWebhookFailedInput): Promise<void> {
      await markDeliveryFailed(db, deliveryId, run, reason);
      logger.warn({ deliveryId, run, reason }, 'webhook delivery gave up');
    },
  };
}
