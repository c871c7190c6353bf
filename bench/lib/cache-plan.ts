import { seededRandom, type Random } from '../../test/chaos/random.js';

/** When a duplicate is sent: while its first is in flight, or once the first has succeeded. */
export type DuplicateTiming = 'in_flight' | 'after_success';

/** A repeat of a distinct request, by some user, `afterMs` after its first's 202 or success. */
export interface Duplicate {
  user: number;
  timing: DuplicateTiming;
  afterMs: number;
}

/** A request sent once first, in the plan's order, then repeated by its duplicates. */
export interface DistinctRequest {
  prompt: string;
  user: number;
  duplicates: Duplicate[];
}

/** The share of a run's jobs that repeat an earlier request. */
export const DUPLICATE_SHARE = 0.3;

function shuffled<T>(items: T[], random: Random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * `jobs` requests over `users` users, `DUPLICATE_SHARE` of them duplicates, half sent while the first
 * is in flight (at most `inFlightMs` after its 202) and half after it succeeded (up to 1 s after). The
 * same seed gives the same requests, users, duplicates and delays: runs replay. Prompts carry `label`,
 * so that no run reuses another's results.
 */
export function cachePlan(seed: number, jobs: number, users: number, inFlightMs: number, label: string) {
  const random = seededRandom(seed);
  const duplicates = Math.round(jobs * DUPLICATE_SHARE);
  const requests: DistinctRequest[] = Array.from({ length: jobs - duplicates }, (_, i) => ({
    prompt: `${label} ${i}`,
    user: random.int(0, users - 1),
    duplicates: [],
  }));
  const repeated = shuffled(requests, random).slice(0, duplicates);
  for (const [i, request] of repeated.entries()) {
    const timing: DuplicateTiming = i % 2 === 0 ? 'in_flight' : 'after_success';
    const afterMs = random.int(0, timing === 'in_flight' ? inFlightMs : 1000);
    request.duplicates.push({ user: random.int(0, users - 1), timing, afterMs });
  }
  return { requests: shuffled(requests, random), duplicates };
}
