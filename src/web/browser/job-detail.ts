import {
  describeWaiting,
  isTerminal,
  type GenerationBody,
  type JobEvent,
  type KilnClient,
} from '../../client/index.js';
import { placeRefusal } from './form-refusals.js';
import { NO_PROMPT, progressBar, promptOf } from './job-card.js';
import type { JobResults } from './job-results.js';
import type { JobSocket } from './job-socket.js';
import type { JobStore, JobView } from './job-store.js';
import {
  costWords,
  endingWords,
  fallbackWords,
  sizeWords,
  statusWords,
  timingWords,
  waitingWords,
} from './job-words.js';
import { element, make } from './page-elements.js';
import type { ProviderCatalog } from './provider-catalog.js';
import { rememberedSubmission } from './remembered-submissions.js';

/** What one event of the timeline says happened. */
function eventWords({ type, job }: JobEvent): string {
  if (type === 'progress') return `progress ${job.progress}%`;
  if (type === 'provider_switched') return fallbackWords(job) ?? 'moved to another provider';
  if (type === 'tier_changed')
    return job.tier === 'batch' ? 'back in the batch tier' : 'the batch tier missed: a call of its own';
  if (type === 'waiting')
    return job.waiting ? describeWaiting(job.waiting, Date.parse(job.waiting.since)) : 'stopped waiting';
  const attempt = job.status === 'running' && job.attempts > 1 ? ` (call ${job.attempts})` : '';
  return `${job.status}${attempt}`;
}

/** When it happened, as far as the job says: the event's own timestamp where the job has one. */
function eventTime({ type, job }: JobEvent): string | null {
  if (type === 'waiting') return job.waiting?.since ?? null;
  if (type !== 'status') return null;
  if (isTerminal(job.status)) return job.completedAt;
  if (job.status === 'queued') return job.createdAt;
  // A job keeps when it started and when it ended; when it began storing is not kept.
  return job.status === 'running' ? job.startedAt : null;
}

/**
 * One job in full: its prompt and parameters, its result (download, copy), its events as they come,
 * cancel or retry, and where it is in the Temporal Web UI. A modal <dialog>: Escape closes it, and
 * focus returns to the card that opened it.
 */
export class JobDetail {
  private readonly dialog = element<HTMLDialogElement>('detail');
  private jobId: string | undefined;
  private timeline: AbortController | undefined;

  constructor(
    private readonly client: KilnClient,
    private readonly store: JobStore,
    private readonly results: JobResults,
    private readonly catalog: ProviderCatalog,
    private readonly socket: JobSocket,
    private readonly retry: (body: GenerationBody) => Promise<void>,
  ) {}

  start(): void {
    this.store.onChange((view) => {
      if (view.job.id === this.jobId) this.render(view);
    });
    element('detail-close').addEventListener('click', () => this.dialog.close());
    this.dialog.addEventListener('close', () => {
      this.timeline?.abort();
      this.jobId = undefined;
    });
    element('detail-cancel').addEventListener('click', () => this.jobId && this.socket.cancel(this.jobId));
    element('detail-retry').addEventListener('click', () => {
      const body = this.jobId && rememberedSubmission(this.jobId)?.body;
      if (!body) return;
      element('detail-error').hidden = true;
      this.retry(body).then(
        () => this.dialog.close(),
        (error: unknown) => {
          element('detail-error').textContent = placeRefusal(error).words;
          element('detail-error').hidden = false;
        },
      );
    });
    element('detail-copy').addEventListener('click', () => void this.copyText());
  }

  open(jobId: string): void {
    const view = this.store.get(jobId);
    if (!view) return;
    this.jobId = jobId;
    element('detail-title').textContent = `Job ${jobId}`;
    element('detail-prompt').textContent =
      promptOf(jobId) ?? `${NO_PROMPT} (SHA-256 ${view.job.promptSha256})`;
    const temporal = element<HTMLAnchorElement>('detail-temporal');
    const workflows = document.body.dataset.temporalUi;
    temporal.hidden = !workflows;
    temporal.href = workflows ? `${workflows}${encodeURIComponent(jobId)}` : '';
    element('detail-result').replaceChildren();
    element('detail-timeline').replaceChildren();
    element('detail-copied').textContent = '';
    element('detail-error').hidden = true;
    this.render(view);
    this.dialog.showModal();
    void this.followTimeline(jobId);
  }

  private render(view: JobView): void {
    const { job } = view;
    const state = [
      statusWords(view),
      endingWords(job),
      waitingWords(view, rememberedSubmission(job.id), Date.now()),
    ];
    element('detail-state').replaceChildren(
      make('span', { class: `status status-${job.status}` }, state.filter(Boolean).join(' — ')),
      isTerminal(job.status) ? '' : progressBar(view),
    );
    element('detail-params').replaceChildren(...this.parameters(view));
    element<HTMLButtonElement>('detail-cancel').hidden = isTerminal(job.status);
    element<HTMLButtonElement>('detail-cancel').disabled = view.canceling;
    element('detail-retry').hidden = !isTerminal(job.status) || !rememberedSubmission(job.id);
    this.renderResult(view);
  }

  private parameters({ job }: JobView): HTMLElement[] {
    const submitted = rememberedSubmission(job.id);
    const params = submitted?.body.params;
    const asked = params && 'maxTokens' in params ? String(params.maxTokens) : 'the default (1024)';
    // The job does not carry its token limit: only a submission from this browser knows it.
    const maxTokens = submitted ? asked : 'not kept in this browser';
    const rows: [string, string][] = [
      ['Kind', job.kind],
      ['Provider', job.provider],
      ['Model', job.model],
      job.kind === 'image' ? ['Size', job.size ?? ''] : ['Max tokens', maxTokens],
      ['Attempts', String(job.attempts)],
      ['Submitted', new Date(job.createdAt).toLocaleString()],
      ['Timings', timingWords(job, Date.now())],
      ['Cost', costWords(job, this.catalog.creditsOf(job))],
      ['Prompt SHA-256', job.promptSha256],
    ];
    return rows.flatMap(([name, value]) => [make('dt', {}, name), make('dd', {}, value)]);
  }

  /** The image at full size or the text so far, and once it succeeded, its download. */
  private renderResult(view: JobView): void {
    const { job } = view;
    const result = element('detail-result');
    const download = element<HTMLAnchorElement>('detail-download');
    const available = this.results.available(job);
    download.hidden = !available;
    element('detail-copy').hidden = job.kind !== 'text' || (view.text.text === '' && !available);
    if (job.kind === 'text') {
      const text =
        result.querySelector('pre') ?? result.appendChild(make('pre', { 'aria-label': 'the text' }));
      text.textContent = view.text.text;
      element('detail-tokens').textContent = sizeWords(view);
      if (available) void this.results.text(job.id).then((whole) => (text.textContent = whole));
    } else if (available && !result.querySelector('img')) {
      const image = result.appendChild(make('img', { alt: `the image of ${job.id}`, class: 'full' }));
      void this.results.url(job.id).then((url) => (image.src = url));
    }
    if (available) {
      download.download = this.results.fileName(job);
      void this.results.url(job.id).then((url) => (download.href = url));
    }
  }

  private async copyText(): Promise<void> {
    const text = element('detail-result').querySelector('pre')?.textContent ?? '';
    try {
      await navigator.clipboard.writeText(text);
      element('detail-copied').textContent = 'Copied.';
    } catch {
      element('detail-copied').textContent = 'The browser did not allow copying: select the text instead.';
    }
  }

  /** The job's events from the first, as its events stream gives them, until it ends or the view closes. */
  private async followTimeline(jobId: string): Promise<void> {
    this.timeline?.abort();
    const timeline = new AbortController();
    this.timeline = timeline;
    const list = element('detail-timeline');
    try {
      for await (const event of this.client.watch(jobId, { signal: timeline.signal })) {
        const at = eventTime(event);
        const when = at ? new Date(at).toLocaleTimeString() : '';
        list.append(
          make(
            'li',
            { 'data-seq': String(event.seq) },
            make('span', { class: 'seq' }, `#${event.seq}`),
            ` ${eventWords(event)} `,
            make('time', {}, when),
          ),
        );
        this.store.put(event.job);
      }
    } catch (error) {
      if (!timeline.signal.aborted)
        list.append(make('li', { class: 'ending' }, `The events could not be read: ${String(error)}`));
    }
  }
}
