import { isTerminal, type JobKind, type JobStatus, type KilnClient } from '../../client/index.js';
import { createCard, renderCard, type CardContext } from './job-card.js';
import type { JobSocket } from './job-socket.js';
import { waitsInQueue, type JobStore } from './job-store.js';
import { element } from './page-elements.js';

const PAGE_SIZE = 12;
/** Unfinished cards count their time up, and a waiting one its estimate down, this often. */
const TICK_MS = 1000;
/** A job waiting in a queue is read again this often: where it stands moves without an event. */
const QUEUE_READ_MS = 5000;

/**
 * The caller's jobs, newest first, a page at a time by the API's cursor, filtered by status and kind.
 * Every unfinished job shown is followed on the socket, so its card moves live.
 */
export class JobGrid {
  private readonly cards = new Map<string, HTMLLIElement>();
  private nextCursor: string | null = null;
  /** Answers of an older filter's pages are dropped when they arrive after a newer one was asked for. */
  private generation = 0;

  constructor(
    private readonly client: KilnClient,
    private readonly store: JobStore,
    private readonly socket: JobSocket,
    private readonly context: CardContext,
    private readonly showError: (error: unknown) => void,
  ) {}

  start(): void {
    this.store.onChange((view) => {
      const card = this.cards.get(view.job.id);
      if (card) renderCard(card, view, this.context, Date.now());
    });
    for (const filter of ['filter-status', 'filter-kind'])
      element(filter).addEventListener('change', () => void this.reload());
    element('more').addEventListener('click', () => void this.loadPage());
    setInterval(() => this.tick(), TICK_MS);
    setInterval(() => void this.readQueued(), QUEUE_READ_MS);
    void this.reload();
  }

  /** A job just submitted here: first in the grid, whatever the filter, so that its submitter sees it. */
  prepend(jobId: string): void {
    const view = this.store.get(jobId);
    if (!view || this.cards.has(jobId)) return;
    const card = createCard(view, this.context);
    this.cards.set(jobId, card);
    element('jobs').prepend(card);
    this.showEmptiness();
  }

  private filter(): { status?: JobStatus; kind?: JobKind } {
    const status = element<HTMLSelectElement>('filter-status').value as JobStatus | '';
    const kind = element<HTMLSelectElement>('filter-kind').value as JobKind | '';
    return { ...(status ? { status } : {}), ...(kind ? { kind } : {}) };
  }

  private async reload(): Promise<void> {
    this.generation += 1;
    this.cards.clear();
    element('jobs').replaceChildren();
    this.nextCursor = null;
    await this.loadPage();
  }

  private async loadPage(): Promise<void> {
    const generation = this.generation;
    const more = element<HTMLButtonElement>('more');
    more.disabled = true;
    try {
      const cursor = this.nextCursor ?? undefined;
      const page = await this.client.list({ ...this.filter(), limit: PAGE_SIZE, cursor });
      if (generation !== this.generation) return;
      for (const job of page.data) {
        this.store.put(job);
        if (!isTerminal(job.status)) this.socket.follow(job.id);
        if (this.cards.has(job.id)) continue;
        const card = createCard(this.store.get(job.id)!, this.context);
        this.cards.set(job.id, card);
        element('jobs').append(card);
      }
      this.nextCursor = page.nextCursor;
    } catch (error) {
      this.showError(error);
    } finally {
      more.disabled = false;
      more.hidden = this.nextCursor === null;
      this.showEmptiness();
    }
  }

  private showEmptiness(): void {
    element('empty').hidden = this.cards.size > 0;
  }

  private async readQueued(): Promise<void> {
    const waiting = [...this.cards.keys()].filter((id) => {
      const view = this.store.get(id);
      return view !== undefined && waitsInQueue(view.job);
    });
    try {
      for (const job of await Promise.all(waiting.map((id) => this.client.get(id)))) this.store.put(job);
    } catch (error) {
      // Offline, the socket's own retry says so; the next read tries again.
      if (!(error instanceof TypeError)) this.showError(error);
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const [id, card] of this.cards) {
      const view = this.store.get(id);
      if (view && !isTerminal(view.job.status)) renderCard(card, view, this.context, now);
    }
  }
}
