import {
  createKilnClient,
  describeWaiting,
  KilnApiError,
  type GenerationBody,
  type ImageSize,
  type KilnClient,
} from '../../client/index.js';
import { isTerminal, type Job } from '../../jobs/job.js';

/*
 * The page: submit a prompt, watch the job live, see the result and past jobs. The job being watched
 * is remembered in localStorage, so a reload resumes it from its events.
 */

const KEY_STORAGE = 'kiln-api-key';
const CURRENT_JOB_STORAGE = 'kiln-current-job';

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

/** `#key=…` in the address (what `npm start` prints) wins, then the saved key. */
function apiKey(): string | null {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromHash) {
    localStorage.setItem(KEY_STORAGE, fromHash);
    history.replaceState(null, '', location.pathname);
  }
  return localStorage.getItem(KEY_STORAGE);
}

/** Results never change once a job has succeeded: each is fetched once per page. */
const imageUrls = new Map<string, string>();
const texts = new Map<string, string>();

async function imageUrl(client: KilnClient, jobId: string): Promise<string> {
  const known = imageUrls.get(jobId);
  if (known) return known;
  const url = URL.createObjectURL(await client.content(jobId));
  imageUrls.set(jobId, url);
  return url;
}

async function resultText(client: KilnClient, jobId: string): Promise<string> {
  const known = texts.get(jobId);
  if (known !== undefined) return known;
  const text = await (await client.content(jobId)).text();
  texts.set(jobId, text);
  return text;
}

/** An image, or a text job's first lines. */
async function resultElement(client: KilnClient, job: Job): Promise<HTMLElement> {
  if (job.kind === 'text') {
    const text = document.createElement('p');
    text.textContent = await resultText(client, job.id);
    return text;
  }
  const image = document.createElement('img');
  image.alt = `result of ${job.id}`;
  image.src = await imageUrl(client, job.id);
  return image;
}

/** What the status alone does not say: how the job failed, or why it waits. */
function detailOf(job: Job): string {
  if (job.failure) return `(${job.failure.code}: ${job.failure.message})`;
  return job.waiting ? `(${describeWaiting(job.waiting)})` : '';
}

function renderCurrent(job: Job): void {
  element('current').hidden = false;
  element('current-status').textContent = job.status;
  element('current-status').className = `status-${job.status}`;
  element('current-detail').textContent = detailOf(job);
  element<HTMLProgressElement>('current-progress').value = job.status === 'succeeded' ? 100 : job.progress;
  element<HTMLButtonElement>('cancel').disabled = isTerminal(job.status);
}

async function renderHistory(client: KilnClient): Promise<void> {
  const { data } = await client.list({ limit: 24 });
  const items = await Promise.all(
    data.map(async (job) => {
      const item = document.createElement('li');
      item.dataset.jobId = job.id;
      if (job.status === 'succeeded' && !job.purgedAt) item.append(await resultElement(client, job));
      const status = document.createElement('span');
      status.className = `status-${job.status}`;
      const time = new Date(job.createdAt).toLocaleTimeString();
      status.textContent = `${job.status} · ${job.size ?? job.kind} · ${time}`;
      item.append(status);
      return item;
    }),
  );
  element('history').replaceChildren(...items);
}

async function watch(client: KilnClient, jobId: string): Promise<void> {
  localStorage.setItem(CURRENT_JOB_STORAGE, jobId);
  element('current').dataset.jobId = jobId;
  element('current-image').hidden = true;
  const currentText = element('current-text');
  currentText.hidden = true;
  currentText.textContent = '';
  const reconnecting = element('reconnecting');
  let last: Job | undefined;
  const events = client.watch(jobId, {
    onReconnecting: () => (reconnecting.hidden = false),
    onConnected: () => (reconnecting.hidden = true),
    onText: ({ text }) => {
      currentText.textContent = text;
      currentText.hidden = false;
    },
  });
  for await (const event of events) {
    last = event.job;
    renderCurrent(event.job);
  }
  reconnecting.hidden = true;
  localStorage.removeItem(CURRENT_JOB_STORAGE);
  if (last?.status === 'succeeded' && last.kind === 'text') {
    currentText.textContent = await resultText(client, jobId);
    currentText.hidden = false;
  } else if (last?.status === 'succeeded') {
    const image = element<HTMLImageElement>('current-image');
    image.src = await imageUrl(client, jobId);
    image.hidden = false;
  }
  await renderHistory(client);
}

function requestFrom(form: HTMLFormElement): GenerationBody {
  const field = (name: string) => {
    const value = new FormData(form).get(name);
    return typeof value === 'string' ? value : '';
  };
  const provider = field('provider');
  const common = { prompt: field('prompt'), ...(provider ? { provider } : {}) };
  return field('kind') === 'text'
    ? { kind: 'text', ...common }
    : { kind: 'image', ...common, params: { size: field('size') as ImageSize } };
}

function showError(error: unknown): void {
  const box = element('submit-error');
  box.hidden = false;
  box.textContent = error instanceof KilnApiError ? `${error.code}: ${error.message}` : String(error);
}

function start(client: KilnClient): void {
  element('app').hidden = false;
  const form = element<HTMLFormElement>('submit-form');
  const kind = element<HTMLSelectElement>('kind');
  // Text has no size: the field is disabled (and left out of the form's data) while text is chosen.
  kind.addEventListener(
    'change',
    () => (element<HTMLSelectElement>('size').disabled = kind.value === 'text'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    element('submit-error').hidden = true;
    const button = element<HTMLButtonElement>('submit');
    button.disabled = true;
    client
      .submit(requestFrom(form))
      .then((submitted) => watch(client, submitted.id))
      .catch(showError)
      .finally(() => (button.disabled = false));
  });
  element('cancel').addEventListener('click', () => {
    const jobId = element('current').dataset.jobId;
    if (jobId) client.cancel(jobId).catch(showError);
  });
  const unfinished = localStorage.getItem(CURRENT_JOB_STORAGE);
  if (unfinished) watch(client, unfinished).catch(showError);
  renderHistory(client).catch(showError);
}

function askForKey(): void {
  const form = element<HTMLFormElement>('key-form');
  form.hidden = false;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORAGE, element<HTMLInputElement>('api-key').value.trim());
    location.reload();
  });
}

const key = apiKey();
if (key) start(createKilnClient({ baseUrl: '', apiKey: key }));
else askForKey();
