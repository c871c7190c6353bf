import { randomUUID } from 'node:crypto';
import { jobIdFor } from '../../src/jobs/job-identity.js';
import type { Random } from './random.js';
import type { ChaosStack } from './stack.js';

/** One job the load asked for, and what happened to its submission. */
export interface SubmittedJob {
  /** Known before the first try: it derives from the caller and the Idempotency-Key. */
  id: string;
  prompt: string;
  kind: 'image' | 'text';
  /** A 202 came back: the promise applies. */
  accepted: boolean;
  webhook: boolean;
  canceled: boolean;
}

export interface LoadOptions {
  clients: number;
  durationMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a careful client does: the same key again, a little later, until a 202 (or it gives up). */
async function submitWithRetries(
  stack: ChaosStack,
  random: Random,
  body: object,
  key: string,
): Promise<boolean> {
  for (let attempt = 0; attempt < 6; attempt += 1) {
    const urls = stack.apiUrls();
    if (urls.length > 0) {
      const response = await fetch(`${random.pick(urls)}/v1/generations`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${stack.ctx.apiKey}`,
          'Content-Type': 'application/json',
          'Idempotency-Key': key,
        },
        body: JSON.stringify(body),
      }).catch(() => undefined);
      await response?.body?.cancel();
      if (response?.status === 202) return true;
    }
    await sleep(500 * 2 ** attempt);
  }
  return false;
}

/** A cancel sent the way a client would: retried while no API answers. */
async function cancelLater(stack: ChaosStack, random: Random, id: string): Promise<void> {
  await sleep(random.int(200, 4000));
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const urls = stack.apiUrls();
    const response =
      urls.length > 0
        ? await fetch(`${random.pick(urls)}/v1/generations/${id}/cancel`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${stack.ctx.apiKey}` },
          }).catch(() => undefined)
        : undefined;
    await response?.body?.cancel();
    if (response && response.status < 500) return;
    await sleep(1000);
  }
}

function requestFor(random: Random, prompt: string, webhookUrl: string | undefined) {
  const kind = random.chance(0.3) ? ('text' as const) : ('image' as const);
  const body: Record<string, unknown> =
    kind === 'text'
      ? { kind, prompt, model: 'gpt-4o-mini' }
      : { kind, prompt, model: 'dall-e-2', params: { size: '256x256' } };
  if (webhookUrl) body.webhook = { url: webhookUrl };
  // The batch tier: pooled, sent, polled, expiring part done; some fail rather than move on when missed.
  if (kind === 'text' && random.chance(0.3)) {
    body.tier = 'batch';
    if (random.chance(0.3)) body.onBatchMiss = 'fail';
  }
  // The local provider never fails: a job that falls back on it ends served, whatever the fake does.
  if (random.chance(0.3)) body.fallback = [{ provider: 'local' }];
  if (random.chance(0.1)) body.deadline = { finishWithinSeconds: random.int(3, 20) };
  return { kind, body };
}

/**
 * `clients` clients submitting a mix of image and text jobs for `durationMs` (some with webhooks, some
 * with a finish deadline, some canceled after a while); resolves with every job asked for, once every
 * submission and cancel has had its answer.
 */
export async function runLoad(
  stack: ChaosStack,
  random: Random,
  { clients, durationMs }: LoadOptions,
): Promise<SubmittedJob[]> {
  const jobs: SubmittedJob[] = [];
  const cancels: Promise<void>[] = [];
  const endsAt = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let n = 0; Date.now() < endsAt; n += 1) {
        const prompt = `chaos ${client}-${n} ${randomUUID()}`;
        const webhook = random.chance(0.2);
        const { kind, body } = requestFor(
          random,
          prompt,
          webhook ? stack.webhooks.endpoint('chaos') : undefined,
        );
        const key = randomUUID();
        const id = jobIdFor(stack.ctx.userId, key);
        const job: SubmittedJob = { id, prompt, kind, accepted: false, webhook, canceled: false };
        jobs.push(job);
        job.accepted = await submitWithRetries(stack, random, body, key);
        if (job.accepted && random.chance(0.15)) {
          job.canceled = true;
          cancels.push(cancelLater(stack, random, id));
        }
        await sleep(random.int(100, 1200));
      }
    }),
  );
  await Promise.all(cancels);
  return jobs;
}
