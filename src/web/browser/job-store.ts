import type { Job, StreamedText, TextUpdate } from '../../client/index.js';

/** Where a waiting job stood when the page last read it, and when that was (epoch ms). */
export interface LiveQueue {
  queuePosition: number;
  estimatedWaitSeconds: number;
  readAt: number;
}
import { applyTextUpdate, NO_TEXT } from '../../client/text-updates.js';

/** A job as the page shows it: the job, and what the page knows beside it. */
export interface JobView {
  job: Job;
  /** A text job's text as streamed so far (NO_TEXT for image jobs and before the first token). */
  text: StreamedText;
  /**
   * Tokens of the text as they arrived, one per streamed piece. A piece at offset 0 is the whole text so
   * far (the first after subscribing or polling), counted by its words, which is what a token is for the
   * local model and near it for the others.
   */
  tokens: number;
  /** A cancel was asked for and the job has not ended yet. */
  canceling: boolean;
  /** While the job waits in a queue, where its last read found it; events leave it as it was. */
  queue: LiveQueue | null;
}

export const waitsInQueue = (job: Job) => job.status === 'queued' || job.waiting?.reason === 'provider_queue';

const wordsIn = (text: string) => text.match(/\S+/g)?.length ?? 0;

/** The jobs the page knows, by id; every change is told to the listeners, with the view as it now is. */
export class JobStore {
  private readonly views = new Map<string, JobView>();
  private readonly listeners = new Set<(view: JobView) => void>();

  get(id: string): JobView | undefined {
    return this.views.get(id);
  }

  onChange(listener: (view: JobView) => void): void {
    this.listeners.add(listener);
  }

  /**
   * Keeps the job unless the page already has a newer version of it (events and polls can cross). An
   * event carries no credits: the ones read before stay until the job is read again.
   */
  put(job: Job): void {
    const known = this.views.get(job.id);
    if (known && known.job.version > job.version) return;
    const canceling = (known?.canceling ?? false) && job.status !== 'canceled' && job.completedAt === null;
    const credits = job.credits ?? known?.job.credits;
    const withCredits = credits ? { ...job, credits } : job;
    const read = job.queue && { ...job.queue, readAt: Date.now() };
    const queue = waitsInQueue(job) ? (read ?? known?.queue ?? null) : null;
    this.change({ text: NO_TEXT, tokens: 0, ...known, job: withCredits, canceling, queue });
  }

  takeText(id: string, update: TextUpdate): void {
    const known = this.views.get(id);
    if (!known) return;
    const text = applyTextUpdate(known.text, update);
    if (text === known.text) return;
    const restarted = text.attempt !== known.text.attempt || update.type === 'reset';
    const counted = restarted ? 0 : known.tokens;
    const tokens = update.type === 'text' && update.offset === 0 ? wordsIn(update.delta) : counted + 1;
    this.change({ ...known, text, tokens: update.type === 'reset' ? 0 : tokens });
  }

  setCanceling(id: string, canceling: boolean): void {
    const known = this.views.get(id);
    if (known && known.canceling !== canceling) this.change({ ...known, canceling });
  }

  private change(view: JobView): void {
    this.views.set(view.job.id, view);
    for (const listener of this.listeners) listener(view);
  }
}
