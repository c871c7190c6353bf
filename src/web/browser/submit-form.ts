import type { GenerationBody, ImageSize, JobDeadline, JobKind, KilnClient } from '../../client/index.js';
import { DEFAULT_MAX_TOKENS } from '../../jobs/job.js';
import { promptTokenBound, worstCaseCredits } from '../../jobs/token-pricing.js';
import { placeRefusal, REFUSAL_PLACES } from './form-refusals.js';
import { creditWords } from './job-words.js';
import { element, make } from './page-elements.js';
import type { ProviderCatalog, TokenPrice } from './provider-catalog.js';

const FORM_STORAGE = 'kiln-form';

/** The form's values, kept between visits so that the form after a reload is the one last sent. */
interface FormValues {
  prompt: string;
  kind: JobKind;
  provider: string;
  model: string;
  size: string;
  maxTokens: string;
}

const select = (id: string) => element<HTMLSelectElement>(id);

function options(
  target: HTMLSelectElement,
  values: string[],
  wanted: string | undefined,
  fallback?: string,
): void {
  target.replaceChildren(...values.map((value) => make('option', { value }, value)));
  const chosen = [wanted, fallback].find((value) => value !== undefined && values.includes(value));
  if (chosen !== undefined) target.value = chosen;
}

/**
 * The submission form: it offers what this deployment's providers make, shows the job's price beside the
 * caller's balance, remembers the last values and puts a refusal beside the field it concerns.
 */
export class SubmitForm {
  private readonly form = element<HTMLFormElement>('submit-form');

  constructor(
    private readonly client: KilnClient,
    private readonly catalog: ProviderCatalog,
    private readonly submit: (body: GenerationBody) => Promise<void>,
  ) {}

  start(): void {
    const saved = this.saved();
    element<HTMLTextAreaElement>('prompt').value = saved.prompt ?? '';
    element<HTMLInputElement>('max-tokens').value = saved.maxTokens ?? '';
    for (const kind of ['image', 'text'] as const) {
      const option = select('kind').querySelector<HTMLOptionElement>(`option[value="${kind}"]`)!;
      option.disabled = this.catalog.ofKind(kind).length === 0;
    }
    if (saved.kind && this.catalog.ofKind(saved.kind).length > 0) select('kind').value = saved.kind;
    this.offer(saved);
    select('kind').addEventListener('change', () => this.offer(this.values()));
    select('provider').addEventListener('change', () => this.offer({ ...this.values(), model: undefined }));
    select('model').addEventListener('change', () => this.offer(this.values()));
    select('size').addEventListener('change', () => this.showPrice());
    // A job priced by its tokens reserves by its prompt and its token limit.
    for (const field of ['prompt', 'max-tokens'])
      element(field).addEventListener('input', () => this.showPrice());
    this.form.addEventListener('input', () =>
      localStorage.setItem(FORM_STORAGE, JSON.stringify(this.values())),
    );
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.send();
    });
    void this.showBalance();
  }

  /** The caller's credits, read again after each submission and each job's end. */
  async showBalance(): Promise<void> {
    try {
      const { credits } = await this.client.me();
      element('balance').textContent =
        `Your balance: ${creditWords(credits.balance)} (${credits.reserved} reserved).`;
    } catch {
      element('balance').textContent = 'Your balance could not be read.';
    }
  }

  private saved(): Partial<FormValues> {
    try {
      return JSON.parse(localStorage.getItem(FORM_STORAGE) ?? '{}') as Partial<FormValues>;
    } catch {
      return {};
    }
  }

  private values(): FormValues {
    return {
      prompt: element<HTMLTextAreaElement>('prompt').value,
      kind: select('kind').value as JobKind,
      provider: select('provider').value,
      model: select('model').value,
      size: select('size').value,
      maxTokens: element<HTMLInputElement>('max-tokens').value,
    };
  }

  /** Fills provider, model and size with what the kind, provider and model chosen allow. */
  private offer(wanted: Partial<FormValues>): void {
    const kind = select('kind').value as JobKind;
    const providers = this.catalog.ofKind(kind);
    const preferred = providers.find((provider) => provider.isDefault) ?? providers[0];
    options(
      select('provider'),
      providers.map((provider) => provider.name),
      wanted.provider,
      preferred?.name,
    );
    const provider = this.catalog.find(kind, select('provider').value);
    options(
      select('model'),
      provider?.models.map((model) => model.name) ?? [],
      wanted.model,
      provider?.defaultModel,
    );
    const sizes = this.catalog.sizes(kind, select('provider').value, select('model').value);
    options(select('size'), sizes, wanted.size, sizes.includes('512x512') ? '512x512' : sizes[0]);
    element('size-field').hidden = kind !== 'image';
    element('max-tokens-field').hidden = kind !== 'text';
    // Hidden fields are disabled too, which leaves them out of the form's data and its validation.
    select('size').disabled = kind !== 'image';
    element<HTMLInputElement>('max-tokens').disabled = kind !== 'text';
    this.showPrice();
  }

  private showPrice(): void {
    const { kind, provider, model, size } = this.values();
    const tokenPrice = this.catalog.tokenPrice(kind, provider, model);
    if (tokenPrice) {
      element('price').textContent = this.tokenPriceWords(tokenPrice);
      return;
    }
    const credits = this.catalog.credits(
      kind,
      provider,
      model,
      kind === 'image' ? (size as ImageSize) : null,
    );
    element('price').textContent = credits === undefined ? '' : `This job costs ${creditWords(credits)}.`;
  }

  /** A job priced by its tokens: what it reserves (its worst case, as the server counts it), and the rates. */
  private tokenPriceWords(price: TokenPrice): string {
    const { prompt, maxTokens } = this.values();
    const pricing = { ...price, promptTokens: promptTokenBound(prompt) };
    const reserved = worstCaseCredits(pricing, Number(maxTokens) || DEFAULT_MAX_TOKENS);
    return (
      `This job reserves ${creditWords(reserved)} and is charged for the tokens it uses ` +
      `(${price.inputPerMillion} in, ${price.outputPerMillion} out per million).`
    );
  }

  /**
   * The deadlines asked for, if any. Not remembered with the rest: a deadline is set for one try, and
   * kept it would end later jobs early with nothing on the form to say why.
   */
  private deadline(): { deadline?: JobDeadline } {
    const seconds = (id: string) => element<HTMLInputElement>(id).value;
    const [start, finish] = [seconds('start-within'), seconds('finish-within')];
    const deadline = {
      ...(start ? { startWithinSeconds: Number(start) } : {}),
      ...(finish ? { finishWithinSeconds: Number(finish) } : {}),
    };
    return Object.keys(deadline).length > 0 ? { deadline } : {};
  }

  private body(): GenerationBody {
    const { prompt, kind, provider, model, size, maxTokens } = this.values();
    const common = { prompt, provider, model, ...this.deadline() };
    if (kind === 'text') {
      const params = maxTokens ? { params: { maxTokens: Number(maxTokens) } } : {};
      return { kind, ...common, ...params };
    }
    return { kind, ...common, params: { size: size as ImageSize } };
  }

  private async send(): Promise<void> {
    for (const place of REFUSAL_PLACES) element(`${place}-error`).hidden = true;
    const button = element<HTMLButtonElement>('submit');
    button.disabled = true;
    localStorage.setItem(FORM_STORAGE, JSON.stringify(this.values()));
    try {
      await this.submit(this.body());
      void this.showBalance();
    } catch (error) {
      const { place, words } = placeRefusal(error);
      const box = element(`${place}-error`);
      box.textContent = words;
      box.hidden = false;
    } finally {
      button.disabled = false;
    }
  }
}
