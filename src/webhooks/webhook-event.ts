import type { JobEvent } from '../events/job-event.js';
import { TERMINAL_STATUSES, type JobWebhook, type WebhookEvent } from '../jobs/job.js';

/** What a webhook is told when a request names no events: how the job ended. */
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEvent[] = TERMINAL_STATUSES;

/** Whether `event` is one the webhook asked for: a status it lists, or another type of event it lists. */
export function webhookWants(webhook: JobWebhook, event: JobEvent): boolean {
  const name: WebhookEvent = event.type === 'status' ? event.job.status : event.type;
  return webhook.events.includes(name);
}

/** The body of a delivery, Standard Webhooks style (`type`, `timestamp`, `data`), with the event's `seq`. */
export interface WebhookPayload {
  type: `job.${JobEvent['type']}`;
  timestamp: string;
  seq: number;
  data: JobEvent['job'];
}

export function webhookPayload(event: JobEvent, at = new Date()): string {
  const payload: WebhookPayload = {
    type: `job.${event.type}`,
    timestamp: at.toISOString(),
    seq: event.seq,
    data: event.job,
  };
  return JSON.stringify(payload);
}
