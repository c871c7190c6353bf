import type { TokenPrice } from '../../src/config/index.js';
import type { Job } from '../../src/jobs/job.js';
import { creditsForUsage, promptTokenBound, worstCaseCredits } from '../../src/jobs/token-pricing.js';
import { startFakeOpenAIChatServer, type FakeOpenAIChatServer } from '../../test/fakes/openai-chat-server.js';
import { getJob } from '../../test/harness/job-watcher.js';
import { allWithin, inPool, JobWatcher, submitTimed } from '../lib/jobs.js';
import { startKilnBench, type KilnBench } from '../lib/openai-setup.js';
import { repeat, type RunSettings, type Scenario } from '../lib/scenario.js';
import { textCreditsPlan, type PlannedTextJob } from '../lib/text-credits-plan.js';

const MODEL = 'gpt-4o-mini';
const TOKEN_DELAY_MS = 5;
const LANES = 8;
const jobsFor = (quick: boolean) => (quick ? 15 : 40);

/** A UTC day `offset` days from today, as TEXT_TOKEN_PRICES dates its prices. */
const dayFromToday = (offset: number) =>
  new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

/**
 * The price in force, between one it superseded and one not yet begun, each far enough from the others
 * that a job priced by the wrong one is charged differently. Dated from the bench's start: the one in
 * force stays so for a week, far longer than the bench runs.
 */
function priceTable() {
  const inForce = { since: dayFromToday(-1), inputPerMillion: 150_000, outputPerMillion: 600_000 };
  const superseded = { since: dayFromToday(-30), inputPerMillion: 1_000_000, outputPerMillion: 1_000_000 };
  const upcoming = { since: dayFromToday(7), inputPerMillion: 50_000, outputPerMillion: 200_000 };
  return { inForce, table: { [`openai:${MODEL}`]: [superseded, inForce, upcoming] } };
}

/** The fake's default reply is its words, a token each. */
const replyTokensOf = (chat: FakeOpenAIChatServer) => (prompt: string) =>
  chat.replyFor(prompt).match(/\S+\s*/g)?.length ?? 1;

/** One job's charge as the ledger, the job and the fake each tell it. */
interface Checked {
  succeeded: boolean;
  charged: number;
  expected: number;
  reserved: number;
  usageMatches: boolean;
  reservedWorstCase: boolean;
  shownAsLedger: boolean;
}

async function runJob(bench: KilnBench, watcher: JobWatcher, planned: PlannedTextJob): Promise<Job> {
  const body = { kind: 'text', provider: 'openai', model: MODEL, prompt: planned.prompt };
  const { id } = await submitTimed(bench.users[0]!, { ...body, params: { maxTokens: planned.maxTokens } });
  const [job] = await allWithin([watcher.watch(id).done], 120_000, `job ${id} ended`);
  return job!;
}

/** Each job's reservation by its ledger rows, and its charge: the reservation less what came back. */
async function ledgerOf(bench: KilnBench, jobIds: string[]) {
  const rows = await bench.ctx.database.db
    .selectFrom('credit_ledger')
    .select(['job_id', 'kind', 'amount'])
    .where('job_id', 'in', jobIds)
    .execute();
  const of = (jobId: string) => rows.filter((row) => row.job_id === jobId);
  return (jobId: string) => ({
    reserved: -of(jobId).reduce((sum, row) => sum + (row.kind === 'reserve' ? row.amount : 0), 0),
    charged: -of(jobId).reduce((sum, row) => sum + row.amount, 0),
  });
}

/** The usage the fake billed for the call that made `prompt`'s result: its last request with one. */
function billedFor(chat: FakeOpenAIChatServer, prompt: string) {
  const index = chat.requests.findLastIndex(
    (body, i) => body.messages.at(-1)?.content === prompt && chat.usage[i] !== undefined,
  );
  const billed = chat.usage[index];
  return billed && { inputTokens: billed.prompt_tokens, outputTokens: billed.completion_tokens };
}

async function check(
  bench: KilnBench,
  chat: FakeOpenAIChatServer,
  price: TokenPrice,
  planned: PlannedTextJob,
  ledger: { reserved: number; charged: number },
  jobId: string,
): Promise<Checked> {
  const shown = await getJob(bench.users[0]!, jobId);
  const billed = billedFor(chat, planned.prompt);
  const worstCase = worstCaseCredits(
    { ...price, promptTokens: promptTokenBound(planned.prompt) },
    planned.maxTokens,
  );
  const { reserved, charged } = ledger;
  return {
    succeeded: shown.status === 'succeeded',
    charged,
    expected: billed ? creditsForUsage(price, billed) : Number.NaN,
    reserved,
    usageMatches:
      billed !== undefined &&
      shown.usage?.estimated === false &&
      shown.usage.inputTokens === billed.inputTokens &&
      shown.usage.outputTokens === billed.outputTokens,
    reservedWorstCase: reserved === worstCase,
    shownAsLedger:
      shown.credits?.reserved === reserved &&
      shown.credits.settled === charged &&
      shown.credits.refunded === reserved - charged,
  };
}

function figuresOf(checked: Checked[], calls: number) {
  const count = (test: (job: Checked) => boolean) => checked.filter(test).length;
  const sum = (of: (job: Checked) => number) => checked.reduce((total, job) => total + of(job), 0);
  const exactly = count((job) => job.charged === job.expected);
  return {
    jobs: checked.length,
    failed_jobs: count((job) => !job.succeeded),
    // One call per job: more means a call was retried, and its job was matched to its last.
    repeated_calls: calls - checked.length,
    jobs_charged_exactly: exactly,
    jobs_charged_otherwise: checked.length - exactly,
    usage_differs: count((job) => !job.usageMatches),
    reserved_not_worst_case: count((job) => !job.reservedWorstCase),
    shown_not_ledger: count((job) => !job.shownAsLedger),
    credits_charged: sum((job) => job.charged),
    credits_expected: sum((job) => job.expected),
    credits_off: Math.abs(sum((job) => job.charged) - sum((job) => job.expected)),
    mean_reserved: sum((job) => job.reserved) / checked.length,
    mean_charged: sum((job) => job.charged) / checked.length,
    // What a reservation holds back from the balance while its job runs, per credit the job costs.
    reserved_per_charged: sum((job) => job.reserved) / sum((job) => job.charged),
  };
}

async function measureOnce(
  bench: KilnBench,
  chat: FakeOpenAIChatServer,
  watcher: JobWatcher,
  price: TokenPrice,
  jobs: PlannedTextJob[],
) {
  const callsBefore = chat.requests.length;
  const ended = await inPool(jobs.length, LANES, (index) => runJob(bench, watcher, jobs[index]!));
  const ledger = await ledgerOf(
    bench,
    ended.map((job) => job.id),
  );
  const checked = await inPool(jobs.length, LANES, (index) =>
    check(bench, chat, price, jobs[index]!, ledger(ended[index]!.id), ended[index]!.id),
  );
  return figuresOf(checked, chat.requests.length - callsBefore);
}

/** Text jobs priced by the tokens the provider billed: each charged exactly that, at the price in force. */
export const textCredits: Scenario = {
  name: 'text-credits',
  title: 'text charged by the tokens used',
  conditions: (quick) =>
    `${jobsFor(quick)} text jobs (${MODEL}) against the OpenAI chat fake (a token every ${TOKEN_DELAY_MS} ` +
    `ms), ${LANES} at a time; prompts of 1–300 words, a third non-ASCII (2–4-byte characters), a fifth ` +
    "with an unspaced Japanese run; maxTokens the fake's reply plus 0, 1, 20, 400 or 4,000 (the fake " +
    'ignores the limit, a real provider never passes it); TEXT_TOKEN_PRICES: one price superseded 30 days ' +
    'ago, the one in force since yesterday (150,000 / 600,000 per million), one from 7 days on. Per job: ' +
    "the ledger's reserve − refund against creditsForUsage(price in force, the usage the fake billed for " +
    "its prompt), the job's usage against the fake's, its reservation against promptTokenBound + " +
    'maxTokens at that price, its GET credits against the ledger; 1 worker process, 1 API process',
  targets: [
    { figure: 'jobs_charged_otherwise', label: 'every job charged its usage exactly', op: '<=', value: 0 },
    { figure: 'credits_off', label: 'credits charged = expected', op: '<=', value: 0 },
    { figure: 'usage_differs', label: "job's usage = the fake's", op: '<=', value: 0 },
    { figure: 'reserved_not_worst_case', label: 'reservation = worst case', op: '<=', value: 0 },
    { figure: 'failed_jobs', label: 'no job fails', op: '<=', value: 0 },
  ],
  async run(settings: RunSettings) {
    const { inForce, table } = priceTable();
    const chat = await startFakeOpenAIChatServer({ behaviour: { kind: 'ok', tokenDelayMs: TOKEN_DELAY_MS } });
    try {
      const bench = await startKilnBench(chat, { env: { TEXT_TOKEN_PRICES: JSON.stringify(table) } });
      const watcher = await JobWatcher.open(bench.users[0]!);
      try {
        return await repeat(settings, (run) => {
          const jobs = textCreditsPlan(run, jobsFor(settings.quick), replyTokensOf(chat));
          return measureOnce(bench, chat, watcher, inForce, jobs);
        });
      } finally {
        watcher.close();
        await bench.stop();
      }
    } finally {
      await chat.close();
    }
  },
};
