import {
  describeWaiting,
  isTerminal,
  type Job,
  type JobFailureCode,
  type SwitchReason,
} from '../../client/index.js';
import type { JobView } from './job-store.js';
import type { RememberedSubmission } from './remembered-submissions.js';

/* What a card and the detail view say about a job, in words for a person. */

const FAILURES: Record<JobFailureCode, string> = {
  invalid_request: 'the provider refused the request as invalid',
  content_policy: 'the provider refused the prompt under its content policy',
  authentication: "the provider refused this deployment's credentials",
  rate_limited: 'the provider kept asking for a pause',
  provider_unavailable: 'the provider was unavailable',
  timeout: 'the provider took too long',
  invalid_output: 'the provider answered with something unusable',
  deadline_exceeded: 'the job did not finish by its deadline',
  internal: 'an error inside Kiln',
  illegal_transition: 'the job could not move on from where it was',
};

const SWITCH_REASONS: Record<SwitchReason, string> = {
  circuit_open: 'it kept failing',
  rate_limited: 'it asked for a longer pause than the job could wait',
  provider_unavailable: 'it was unavailable',
  authentication: "it refused this deployment's credentials",
  start_deadline: 'it could not start the job in time',
};

/**
 * Which fallback serves the job and why it left the one before: "served by local/kiln-sketch-1
 * instead of openai/dall-e-2: it kept failing"; undefined for a job on the provider it asked for.
 */
export function fallbackWords({ servedBy }: Job): string | undefined {
  if (!servedBy.switched) return undefined;
  const { from, reason } = servedBy.switched;
  return `served by ${servedBy.provider}/${servedBy.model} instead of ${from.provider}/${from.model}: ${SWITCH_REASONS[reason]}`;
}

export function statusWords(view: JobView): string {
  return view.canceling ? 'canceling…' : view.job.status;
}

/** How a job that ended without a result ended; undefined for the others. */
export function endingWords(job: Job): string | undefined {
  if (job.status === 'failed') {
    const code = job.failure?.code ?? 'internal';
    const said = job.failure?.message ? `: “${job.failure.message}”` : '';
    return `Failed: ${FAILURES[code]} (${code})${said}`;
  }
  if (job.status === 'canceled')
    return job.startedAt ? 'Canceled while it ran.' : 'Canceled before it started.';
  if (job.status === 'expired') return 'Expired: it had not started by its start deadline.';
  return undefined;
}

export function durationWords(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Queued (until it started), ran (until it ended) and total; the unfinished ones count up to `now`. */
export function timingWords(job: Job, now: number): string {
  const created = Date.parse(job.createdAt);
  const started = job.startedAt ? Date.parse(job.startedAt) : undefined;
  const ended = job.completedAt ? Date.parse(job.completedAt) : undefined;
  const parts = [`queued ${durationWords((started ?? ended ?? now) - created)}`];
  if (started !== undefined) parts.push(`ran ${durationWords((ended ?? now) - started)}`);
  if (ended !== undefined) parts.push(`total ${durationWords(ended - created)}`);
  return parts.join(' · ');
}

/** An image's size, or a text's tokens so far. */
export function sizeWords(view: JobView): string {
  if (view.job.kind === 'image') return view.job.size ?? '';
  return `${view.tokens} ${view.tokens === 1 ? 'token' : 'tokens'}`;
}

export function creditWords(credits: number): string {
  return `${credits} ${credits === 1 ? 'credit' : 'credits'}`;
}

/** A job's credits from the ledger: held while it runs; once it ended, what it was charged and given back. */
function ledgerWords({ reserved, settled, refunded }: NonNullable<Job['credits']>): string {
  if (settled === null || refunded === null) return `${creditWords(reserved)}, reserved`;
  if (settled === 0) return `${creditWords(refunded)}, refunded`;
  if (refunded === 0) return creditWords(settled);
  return `${creditWords(settled)} (${refunded} of ${reserved} reserved refunded)`;
}

/**
 * What the job costs, and whether that was charged, is held, or was given back: as its ledger says when
 * the page read it with its credits, else at today's `listedPrice`.
 */
export function costWords(job: Job, listedPrice: number | undefined): string {
  // Credits read before the job ended say nothing of its end until it is read again.
  const ended = job.credits?.settled !== null && job.credits?.settled !== undefined;
  if (job.credits && (ended || !isTerminal(job.status))) return ledgerWords(job.credits);
  const credits = listedPrice;
  if (credits === undefined) return 'price not listed';
  const amount = creditWords(credits);
  if (job.status === 'succeeded') return amount;
  if (job.status === 'failed' || job.status === 'canceled' || job.status === 'expired')
    return `${amount}, refunded`;
  return `${amount}, reserved`;
}

/** Where a job stands in its queue, and what is left of the wait estimated when that was counted. */
function queueWords(position: string, estimatedEndsAt: number, now: number): string[] {
  const left = estimatedEndsAt - now;
  return [position, left > 0 ? `about ${Math.ceil(left / 1000)} s estimated` : 'past its estimated wait'];
}

/**
 * Why a waiting job waits, with where it stands in its queue: as the page last read it, or else where
 * it stood when the page submitted it; undefined for a job that does not wait.
 */
export function waitingWords(
  { job, queue }: JobView,
  submitted: RememberedSubmission | undefined,
  now: number,
): string | undefined {
  if (job.status !== 'queued' && !job.waiting) return undefined;
  const parts = [job.waiting ? describeWaiting(job.waiting, now) : 'waiting to start'];
  if (queue) {
    const endsAt = queue.readAt + queue.estimatedWaitSeconds * 1000;
    parts.push(...queueWords(`${queue.queuePosition} ahead now`, endsAt, now));
  } else if (submitted && job.status === 'queued') {
    const endsAt = Date.parse(job.createdAt) + submitted.estimatedWaitSeconds * 1000;
    parts.push(...queueWords(`${submitted.queuePosition} ahead at submission`, endsAt, now));
  }
  return parts.join(' · ');
}
