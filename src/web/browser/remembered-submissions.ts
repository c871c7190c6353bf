import type { AcceptedJob, GenerationBody } from '../../client/index.js';

/*
 * The API never gives a prompt back: a job carries only its hash, so a prompt sent to a provider is not
 * kept readable server-side for anyone holding the key. The page keeps what it submitted, in this
 * browser's localStorage, keyed by job id: its cards and details show the prompt of every job sent from
 * here, and say so for the others.
 */

const STORAGE = 'kiln-submissions';
/** The newest are kept; older jobs show no prompt rather than localStorage filling up. */
const MAX_KEPT = 500;

/** What the page sent, and where the job stood in the queue when it was accepted. */
export interface RememberedSubmission {
  body: GenerationBody;
  queuePosition: number;
  estimatedWaitSeconds: number;
}

/** Read once per page: cards ask on every render. Another tab's submissions show after a reload. */
let remembered: Map<string, RememberedSubmission> | undefined;

function all(): Map<string, RememberedSubmission> {
  if (remembered) return remembered;
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(STORAGE) ?? '{}');
    const entries = typeof stored === 'object' && stored !== null ? Object.entries(stored) : [];
    remembered = new Map(entries as [string, RememberedSubmission][]);
  } catch {
    remembered = new Map();
  }
  return remembered;
}

export function rememberSubmission(body: GenerationBody, accepted: AcceptedJob): void {
  const kept = all();
  kept.set(accepted.id, {
    body,
    queuePosition: accepted.queuePosition,
    estimatedWaitSeconds: accepted.estimatedWaitSeconds,
  });
  // A Map keeps insertion order: the first are the oldest.
  for (const id of [...kept.keys()].slice(0, Math.max(0, kept.size - MAX_KEPT))) kept.delete(id);
  localStorage.setItem(STORAGE, JSON.stringify(Object.fromEntries(kept)));
}

export function rememberedSubmission(jobId: string): RememberedSubmission | undefined {
  return all().get(jobId);
}
