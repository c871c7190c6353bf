import { WorkflowNotFoundError } from '@temporalio/client';
import { toJob } from '../../src/db/job-repository.js';
import type { JobRow } from '../../src/db/schema.js';
import { isTerminal, type Job } from '../../src/jobs/job.js';
import { balanceProblems, isLost, jobLedgerProblems, listObjectKeys } from '../harness/fault-checks.js';
import type { SubmittedJob } from './load.js';
import type { ChaosStack } from './stack.js';
import { describeStuckJobs } from './stuck-jobs.js';
import { defaultReply, promptTokens, type ChatBody } from '../fakes/openai-chat-server.js';

/** A fault as the timeline recorded it, with when it ran. */
export interface TimedFault {
  name: string;
  detail: string;
  killedWorker: boolean;
  startedAt: number;
  endedAt: number;
}

/** Everything the checks look at, read once after the load has drained. */
export interface CampaignOutcome {
  stack: ChaosStack;
  submitted: SubmittedJob[];
  /** Every row of the campaign's user: accepted jobs, and rows whose submission never got its 202. */
  rows: JobRow[];
  faults: TimedFault[];
}

/** One invariant: a name, and the jobs (or other things) that break it, each said in a line. */
export interface Invariant {
  name: string;
  check(outcome: CampaignOutcome): Promise<string[]>;
}

/** Provider calls by prompt: how many reached the provider, and how many were answered in full (billed). */
function callsByPrompt(stack: ChaosStack): Map<string, { made: number; paid: number }> {
  const calls = new Map<string, { made: number; paid: number }>();
  const count = (prompt: string | undefined, wasPaid: boolean | undefined) => {
    if (prompt === undefined) return;
    const seen = calls.get(prompt) ?? { made: 0, paid: 0 };
    calls.set(prompt, { made: seen.made + 1, paid: seen.paid + (wasPaid ? 1 : 0) });
  };
  stack.images.requests.forEach((body, i) => count(body.prompt, stack.images.paid[i]));
  stack.chat.requests.forEach((body, i) => count(body.messages.at(-1)?.content, stack.chat.paid[i]));
  const ran = new Set(stack.batches.linesRun);
  for (const [jobId, body] of batchLines(stack)) count(promptOf(body), ran.has(jobId));
  return calls;
}

const promptOf = (body: ChatBody) => body.messages.at(-1)?.content;

/**
 * Every line uploaded for a batch, by its job: a line uploaded twice (two files for one batch) would
 * count as two calls made.
 */
function batchLines(stack: ChaosStack): [string, ChatBody][] {
  return stack.batches.filesUploaded.flatMap((file) =>
    file.content
      .split('\n')
      .filter(Boolean)
      .map((line): [string, ChatBody] => {
        const { custom_id: jobId, body } = JSON.parse(line) as { custom_id: string; body: ChatBody };
        return [jobId, body];
      }),
  );
}

/** The usage the chat fake billed, as `input+output`, by the prompt of each completion it streamed whole. */
function billedUsageByPrompt(stack: ChaosStack): Map<string, string[]> {
  const billed = new Map<string, string[]>();
  stack.chat.requests.forEach((body, i) => {
    const usage = stack.chat.usage[i];
    const prompt = body.messages.at(-1)?.content;
    if (!usage || prompt === undefined) return;
    billed.set(prompt, [...(billed.get(prompt) ?? []), `${usage.prompt_tokens}+${usage.completion_tokens}`]);
  });
  // A batch line the fake ran is billed as the chat fake counts a completion of its prompt.
  const ran = new Set(stack.batches.linesRun);
  for (const [jobId, body] of batchLines(stack)) {
    const prompt = promptOf(body);
    if (!ran.has(jobId) || prompt === undefined) continue;
    const usage = `${promptTokens(body)}+${defaultReply(prompt).length}`;
    billed.set(prompt, [...(billed.get(prompt) ?? []), usage]);
  }
  return billed;
}

/** Worker kills while the job was unfinished: each may lose a call that was answered but not yet kept. */
function workerKillsDuring(row: JobRow, faults: TimedFault[]): number {
  const endedAt = row.completed_at?.getTime() ?? Infinity;
  return faults.filter(
    (fault) => fault.killedWorker && fault.endedAt >= row.created_at.getTime() && fault.startedAt <= endedAt,
  ).length;
}

/** The row and its workflow disagree, or the row has no workflow though one must have run. */
async function disagrees(stack: ChaosStack, row: JobRow): Promise<boolean> {
  try {
    return await isLost(stack.ctx, toJob(row));
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError)) throw error;
    // The orphan sweep ends a row whose workflow never started (Temporal away at submit, the client
    // gone) as expired; no other row may be without a workflow.
    return !(row.status === 'expired' && row.workflow_seen_at === null);
  }
}

const byId = (outcome: CampaignOutcome) => new Map(outcome.rows.map((row) => [row.id, row]));

/**
 * The promise, checked over every job, whatever the faults were. A new invariant is one entry here.
 */
export const INVARIANTS: readonly Invariant[] = [
  {
    name: 'every row ends terminal (202 or not)',
    check: async ({ stack, rows }) => {
      const unfinished = rows.filter((row) => !isTerminal(row.status));
      if (unfinished.length === 0) return [];
      const described = await describeStuckJobs(stack.ctx.temporal, unfinished);
      return [...described, ...unfinished.slice(described.length).map((row) => `${row.id} is ${row.status}`)];
    },
  },
  {
    name: 'every 202 has its row',
    check: async (outcome) => {
      const rows = byId(outcome);
      return Promise.resolve(
        outcome.submitted
          .filter((job) => job.accepted && !rows.has(job.id))
          .map((job) => `${job.id}: no row`),
      );
    },
  },
  {
    name: 'table status = workflow status',
    check: async ({ stack, rows }) => {
      const lost = await Promise.all(
        rows.map(async (row) => ((await disagrees(stack, row)) ? [`${row.id} (${row.status})`] : [])),
      );
      return lost.flat();
    },
  },
  {
    name: 'paid once (more only for a worker killed mid-job)',
    check: async (outcome) => {
      const calls = callsByPrompt(outcome.stack);
      const rows = byId(outcome);
      return Promise.resolve(
        outcome.submitted.flatMap((job) => {
          const row = rows.get(job.id);
          if (!row) return [];
          const { made, paid: paidAtFakes } = calls.get(job.prompt) ?? { made: 0, paid: 0 };
          // The local provider, which some jobs fall back on, is paid nothing but counts as a payment.
          const servedLocally = row.status === 'succeeded' && row.served_by?.provider === 'local';
          const paid = paidAtFakes + (servedLocally ? 1 : 0);
          const allowed = 1 + workerKillsDuring(row, outcome.faults);
          const said = `${job.id} (${job.kind}, ${row.status}, ${row.attempts} attempts): ${made} calls, ${paid} paid`;
          if (paid > allowed) return [`${said}, ${allowed} allowed`];
          if (row.status === 'succeeded' && paid === 0) return [`${said}: succeeded unpaid`];
          return [];
        }),
      );
    },
  },
  {
    name: 'a text job served by OpenAI records the usage OpenAI billed for its prompt',
    check: async (outcome) => {
      const billed = billedUsageByPrompt(outcome.stack);
      const rows = byId(outcome);
      return Promise.resolve(
        outcome.submitted.flatMap((job) => {
          const row = rows.get(job.id);
          if (row?.status !== 'succeeded' || row.kind !== 'text' || row.served_by?.provider === 'local')
            return [];
          const { usage } = row;
          if (!usage) return [`${row.id}: succeeded without usage`];
          // Estimated only when a worker died between keeping the result and recording its usage.
          if (usage.estimated) return [];
          const said = `${usage.inputTokens}+${usage.outputTokens}`;
          const known = billed.get(job.prompt) ?? [];
          return known.includes(said)
            ? []
            : [`${row.id}: usage ${said}, billed ${known.join(', ') || 'none'}`];
        }),
      );
    },
  },
  {
    name: 'ledger = balance, one settle-or-refund per job',
    check: async ({ stack, rows }) => [
      ...(await balanceProblems(stack.ctx.database.db)),
      ...(await jobLedgerProblems(stack.ctx.database.db, rows.map(toJob), stack.ctx.config.costs)),
    ],
  },
  {
    name: 'an ended job waits for nothing; a waiting event is a waiting job',
    check: async ({ stack, rows }) => {
      const told = await stack.ctx.database.db
        .selectFrom('job_events')
        .select(['job_id', 'seq', 'data'])
        .where('type', '=', 'waiting')
        .execute();
      const waitingEnded = rows.filter((row) => row.waiting !== null).map((row) => `${row.id} ended waiting`);
      const empty = told
        .filter((event) => (event.data as { waiting: unknown }).waiting === null)
        .map((event) => `${event.job_id}: waiting event ${event.seq} says no wait`);
      return [...waitingEnded, ...empty];
    },
  },
  {
    name: 'every switch to a fallback is one event, in chain order',
    check: async ({ stack, rows }) => {
      const told = await stack.ctx.database.db
        .selectFrom('job_events')
        .select(['job_id', 'data'])
        .where('type', '=', 'provider_switched')
        .orderBy('seq')
        .execute();
      return rows.flatMap((row) => {
        const entries = told
          .filter((event) => event.job_id === row.id)
          .map((event) => (event.data as Job).servedBy.entry);
        const expected = Array.from({ length: row.served_by?.entry ?? 0 }, (_, i) => i + 1);
        return JSON.stringify(entries) === JSON.stringify(expected)
          ? []
          : [`${row.id}: switch events to entries ${entries.join(',')}, row at entry ${expected.length}`];
      });
    },
  },
  {
    name: 'event seqs gapless, last = row version',
    check: async ({ stack, rows }) => {
      const events = await stack.ctx.database.db.selectFrom('job_events').select(['job_id', 'seq']).execute();
      return rows.flatMap((row) => {
        const seqs = events
          .filter((event) => event.job_id === row.id)
          .map((event) => event.seq)
          .sort((a, b) => a - b);
        const gapless = seqs.every((seq, i) => seq === i + 1) && seqs.at(-1) === row.version;
        return gapless ? [] : [`${row.id}: seqs ${seqs.join(',')}, version ${row.version}`];
      });
    },
  },
  {
    name: 'storage: a result per succeeded job, nothing else',
    check: async ({ stack, rows }) => {
      const keys = new Set(await listObjectKeys(stack.ctx));
      const expected = new Set(
        rows.filter((row) => row.status === 'succeeded').map((row) => `results/${row.id}`),
      );
      return [
        ...[...keys].filter((key) => !expected.has(key)).map((key) => `orphan object ${key}`),
        ...[...expected].filter((key) => !keys.has(key)).map((key) => `missing ${key}`),
      ];
    },
  },
  {
    name: 'webhooks: the end of each job delivered, signed',
    check: async (outcome) => {
      const delivered = outcome.stack.webhooks
        .received('chaos')
        .filter((hook) => hook.verified && hook.status < 300 && hook.payload);
      const rows = byId(outcome);
      return Promise.resolve(
        outcome.submitted.flatMap((job) => {
          const row = rows.get(job.id);
          if (!job.webhook || !row) return [];
          const ended = delivered.some(
            (hook) => hook.payload?.data.id === job.id && hook.payload.data.status === row.status,
          );
          return ended ? [] : [`${job.id}: no signed ${row.status} delivery`];
        }),
      );
    },
  },
];

/** The rows of the campaign's user, once each is terminal or `timeoutMs` has passed. */
export async function drainedRows(stack: ChaosStack, timeoutMs: number): Promise<JobRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await stack.ctx.database.db
      .selectFrom('jobs')
      .selectAll()
      .where('user_id', '=', stack.ctx.userId)
      .execute()
      .catch(() => undefined);
    if (rows && (rows.every((row) => isTerminal(row.status)) || Date.now() > deadline)) return rows;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
