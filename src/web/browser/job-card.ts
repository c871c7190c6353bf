import { isTerminal } from '../../client/index.js';
import type { JobResults } from './job-results.js';
import type { JobView } from './job-store.js';
import {
  costWords,
  endingWords,
  fallbackWords,
  sizeWords,
  statusWords,
  timingWords,
  waitingWords,
} from './job-words.js';
import { make } from './page-elements.js';
import type { ProviderCatalog } from './provider-catalog.js';
import { rememberedSubmission } from './remembered-submissions.js';

/** What a card needs besides its job. */
export interface CardContext {
  results: JobResults;
  catalog: ProviderCatalog;
  cancel(jobId: string): void;
  open(jobId: string): void;
}

export const NO_PROMPT = 'Prompt not kept in this browser';

export function promptOf(jobId: string): string | undefined {
  return rememberedSubmission(jobId)?.body.prompt;
}

/**
 * A bar for the provider's progress; a text job's is indeterminate while it runs, since a model does not
 * say how long its answer will be: its token count tells how far it got instead.
 */
export function progressBar(view: JobView): HTMLProgressElement {
  const bar = make('progress', { max: '100', 'aria-label': 'progress' });
  if (view.job.kind === 'text' && view.job.status === 'running') return bar;
  bar.value = view.job.status === 'succeeded' ? 100 : view.job.progress;
  return bar;
}

/** The result, or while there is none the text streamed so far; kept across renders of the same card. */
function renderMedia(media: HTMLElement, view: JobView, context: CardContext): void {
  const { job } = view;
  if (job.kind === 'text') {
    const shown = media.querySelector('p') ?? media.appendChild(make('p', { class: 'text-result' }));
    if (context.results.available(job)) {
      void context.results.text(job.id).then((text) => (shown.textContent = text));
    } else shown.textContent = view.text.text;
    return;
  }
  if (!context.results.available(job) || media.querySelector('img')) return;
  const image = make('img', { alt: `result of ${job.id}` });
  media.append(image);
  void context.results.url(job.id).then((url) => (image.src = url));
}

function details(view: JobView, context: CardContext, now: number): HTMLElement[] {
  const { job } = view;
  const submitted = rememberedSubmission(job.id);
  const status = make('span', { class: `status status-${job.status}` }, statusWords(view));
  const ending = endingWords(job);
  const waiting = waitingWords(view, submitted, now);
  const fallback = fallbackWords(job);
  const unfinished = !isTerminal(job.status);
  return [
    make('p', { class: 'meta' }, `${job.kind} · ${job.provider}/${job.model} · ${sizeWords(view)}`),
    make('p', { class: 'state' }, status, unfinished && progressBar(view)),
    fallback && make('p', { class: 'fallback' }, fallback),
    ending && make('p', { class: 'ending' }, ending),
    waiting && make('p', { class: 'waiting' }, waiting),
    make('p', { class: 'timings' }, timingWords(job, now)),
    make('p', { class: 'cost' }, costWords(job, context.catalog.creditsOf(job))),
  ].filter((part) => part instanceof HTMLElement);
}

/** A new card for the job: its result or text, its prompt (which opens the detail), and its state. */
export function createCard(view: JobView, context: CardContext): HTMLLIElement {
  const { id } = view.job;
  const prompt = promptOf(id);
  const open = make(
    'button',
    { type: 'button', class: 'card-open', 'aria-haspopup': 'dialog' },
    prompt ?? NO_PROMPT,
  );
  if (!prompt) open.classList.add('unknown-prompt');
  open.addEventListener('click', () => context.open(id));
  // Made once and kept across renders, so that keyboard focus on it survives the job's updates.
  const cancel = make('button', { type: 'button', class: 'secondary cancel' }, 'Cancel');
  cancel.addEventListener('click', () => context.cancel(id));
  const parts = [make('div', { class: 'media' }), open, make('div', { class: 'details' }), cancel];
  const card = make('li', { class: 'card', 'data-job-id': id }, ...parts);
  // The whole card opens the detail for a pointer; the keyboard has the prompt's button.
  card.addEventListener('click', (event) => {
    if (!(event.target instanceof HTMLButtonElement)) context.open(id);
  });
  renderCard(card, view, context, Date.now());
  return card;
}

export function renderCard(card: HTMLElement, view: JobView, context: CardContext, now: number): void {
  card.dataset.status = view.canceling ? 'canceling' : view.job.status;
  renderMedia(card.querySelector<HTMLElement>('.media')!, view, context);
  card.querySelector('.details')!.replaceChildren(...details(view, context, now));
  const cancel = card.querySelector<HTMLButtonElement>('.cancel')!;
  cancel.hidden = isTerminal(view.job.status);
  cancel.disabled = view.canceling;
}
