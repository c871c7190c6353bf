import { createHash } from 'node:crypto';
import type { GenerationRequest } from './job.js';

// Not among the modules the workflow bundle may import (node:crypto): workflows get the seed in their input.

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Derived from the key, so every retry of a submission lands on the same job and workflow id. */
export function jobIdFor(userId: string, idempotencyKey: string): string {
  return `job_${sha256Hex(`${userId}\u0000${idempotencyKey}`).slice(0, 32)}`;
}

/** Whether `id` has the shape `jobIdFor` gives every job id. */
export function isJobId(id: string): boolean {
  return /^job_[0-9a-f]{32}$/.test(id);
}

/** The job's seed for providers that take one: from its id, so every run of the job uses the same. */
export function seedFor(jobId: string): number {
  return Number.parseInt(jobId.slice(4, 12), 16);
}

/** Stable across key order, so the same request always hashes the same. */
export function requestFingerprint(request: GenerationRequest): string {
  const { kind, prompt, provider, model, size, maxTokens, deadline, webhook, fallback, cache } = request;
  const limits = [deadline?.startWithinSeconds ?? null, deadline?.finishWithinSeconds ?? null];
  // Appended only when present, so that image requests without a webhook keep the fingerprints they had.
  const hook = webhook ? [[webhook.url, webhook.events]] : [];
  const tokens = maxTokens === null ? [] : [['maxTokens', maxTokens]];
  // What the client asked for, not the chain it resolves to: a changed configuration is no other request.
  const chain =
    fallback === undefined
      ? []
      : [['fallback', fallback && fallback.map((c) => [c.provider, c.model, c.size, c.maxTokens])]];
  const reuse = cache === undefined ? [] : [['cache', cache]];
  return sha256Hex(
    JSON.stringify([kind, prompt, provider, model, size, limits, ...hook, ...tokens, ...chain, ...reuse]),
  );
}

/**
 * What names a request's output for the result cache: what was asked of which provider, and nothing
 * about its delivery (deadline, webhook). The prompt is compared in Unicode NFC (and trimmed, as the
 * parse left it), so that the same text typed two ways is one request. The fallback chain is part of
 * it, as asked: a job of another chain could have been served by a provider this one does not accept.
 * No seed: requests carry none, and the one each job derives from its id would make no two alike; a
 * job that opts in takes the output another job's seed made.
 */
export function cacheFingerprint(request: GenerationRequest): string {
  const { kind, prompt, provider, model, size, maxTokens, fallback } = request;
  const chain =
    fallback === undefined
      ? null
      : fallback && fallback.map((c) => [c.provider, c.model, c.size, c.maxTokens]);
  return sha256Hex(
    JSON.stringify(['cache/1', kind, prompt.normalize('NFC'), provider, model, size, maxTokens, chain]),
  );
}
