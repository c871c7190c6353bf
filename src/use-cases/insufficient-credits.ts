import type { InsufficientCreditsError } from '../db/credit-repository.js';

/** A job its user cannot pay for, on submission or retry: nothing was created or re-queued. */
export interface InsufficientCredits {
  kind: 'refused';
  reason: 'insufficient_credits';
  /** What the job costs, in credits. */
  cost: number;
  /** The user's balance when the reservation was refused. */
  balance: number;
}

export function insufficientCredits({
  cost,
  balance,
}: Pick<InsufficientCreditsError, 'cost' | 'balance'>): InsufficientCredits {
  return { kind: 'refused', reason: 'insufficient_credits', cost, balance };
}
