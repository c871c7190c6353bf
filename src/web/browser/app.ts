import {
  createKilnClient,
  isTerminal,
  KilnApiError,
  type GenerationBody,
  type KilnClient,
} from '../../client/index.js';
import { JobDetail } from './job-detail.js';
import { JobGrid } from './job-grid.js';
import { JobResults } from './job-results.js';
import { JobSocket } from './job-socket.js';
import { JobStore } from './job-store.js';
import { element } from './page-elements.js';
import { ProviderCatalog } from './provider-catalog.js';
import { rememberSubmission } from './remembered-submissions.js';
import { SubmitForm } from './submit-form.js';

/*
 * The page: submit prompts, follow every unfinished job live over one socket, open any job in full. A
 * reload picks the jobs up again from the API; the prompts come from this browser's memory of what it
 * sent (remembered-submissions.ts).
 */

const KEY_STORAGE = 'kiln-api-key';

/** `#key=…` in the address (what `npm start` prints) wins, then the saved key. */
function apiKey(): string | null {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromHash) {
    localStorage.setItem(KEY_STORAGE, fromHash);
    history.replaceState(null, '', location.pathname);
  }
  return localStorage.getItem(KEY_STORAGE);
}

function showError(error: unknown): void {
  const box = element('page-error');
  box.hidden = false;
  box.textContent = `Something went wrong: ${error instanceof Error ? error.message : String(error)}`;
}

function askForKey(reason?: string): void {
  element('app').hidden = true;
  const form = element<HTMLFormElement>('key-form');
  form.hidden = false;
  if (reason) element('key-reason').textContent = reason;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORAGE, element<HTMLInputElement>('api-key').value.trim());
    location.reload();
  });
}

async function start(client: KilnClient, key: string): Promise<void> {
  const offered = await client.providers().catch((error: unknown) => {
    if (error instanceof KilnApiError && error.status === 401) askForKey('That API key was not accepted.');
    throw error;
  });
  const catalog = new ProviderCatalog(offered.data);
  const store = new JobStore();
  const results = new JobResults(client);
  const socket = new JobSocket(client, key, store, {
    onConnection: (open) => (element('reconnecting').hidden = open),
    onRefusal: (id, error) => showError(new Error(`${id}: ${error.message}`)),
    onKeyRevoked: () => askForKey('This API key was revoked: enter another.'),
  });
  const context = {
    results,
    catalog,
    cancel: (id: string) => socket.cancel(id),
    // The detail is made below; a card is opened only once the page runs.
    open: (id: string) => detail.open(id),
  };
  const grid = new JobGrid(client, store, socket, context, showError);
  const submit = async (body: GenerationBody) => {
    const accepted = await client.submit(body);
    rememberSubmission(body, accepted);
    store.put(await client.get(accepted.id));
    grid.prepend(accepted.id);
    socket.follow(accepted.id);
  };
  const form = new SubmitForm(client, catalog, submit);
  const detail = new JobDetail(client, store, results, catalog, socket, submit);
  // A job's end settles or refunds its credits: the balance, and the job with what it was charged, are
  // read again when one is seen ending.
  const unfinished = new Set<string>();
  const readCharged = async (id: string) => store.put(await client.get(id));
  store.onChange(({ job }) => {
    if (!isTerminal(job.status)) unfinished.add(job.id);
    else if (unfinished.delete(job.id)) {
      void form.showBalance();
      readCharged(job.id).catch(showError);
    }
  });
  element('app').hidden = false;
  form.start();
  grid.start();
  detail.start();
  socket.open();
}

const key = apiKey();
if (key) start(createKilnClient({ baseUrl: '', apiKey: key }), key).catch(showError);
else askForKey();
