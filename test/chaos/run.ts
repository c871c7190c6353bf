import { parseArgs } from 'node:util';
import type { JobRow } from '../../src/db/schema.js';
import { FAULTS, PROVIDER_BASELINE } from './faults.js';
import { explainJobs } from './job-evidence.js';
import { drainedRows, INVARIANTS, type TimedFault } from './invariants.js';
import { runLoad, type SubmittedJob } from './load.js';
import { seededRandom, type Random } from './random.js';
import { startChaosStack, type ChaosStack } from './stack.js';

const USAGE = `npm run test:chaos [-- [--seed N | --seeds K] [--seconds S] [--clients C]]
  --seed N     one campaign with this seed (what a failure prints, to replay it)
  --seeds K    K campaigns with fresh seeds (default 1)
  --seconds S  seconds of load and faults per campaign (default 45)
  --clients C  clients submitting at once (default 4)`;

/** How long every job gets to end once the load and the faults have stopped. */
const DRAIN_TIMEOUT_MS = 180_000;
/** Webhook deliveries retry on their own schedule: this long for the last ones to land. */
const WEBHOOK_GRACE_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function log(line: string): void {
  console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);
}

/** Draws and injects faults one after another, a few seconds apart, until `until`. */
async function runFaults(
  stack: ChaosStack,
  random: Random,
  until: number,
  origin: number,
): Promise<TimedFault[]> {
  const timeline: TimedFault[] = [];
  while (Date.now() < until) {
    await sleep(random.int(500, 4000));
    if (Date.now() >= until) break;
    const fault = random.weighted(FAULTS);
    const startedAt = Date.now();
    const { detail, killedWorker = false } = await fault.inject(stack, random);
    timeline.push({ name: fault.name, detail, killedWorker, startedAt, endedAt: Date.now() });
    log(`t+${((startedAt - origin) / 1000).toFixed(1)} s  ${fault.name} (${detail})`);
  }
  return timeline;
}

async function webhooksSettled(stack: ChaosStack, jobs: SubmittedJob[]): Promise<void> {
  const deadline = Date.now() + WEBHOOK_GRACE_MS;
  const wanted = jobs.filter((job) => job.webhook && job.accepted).length;
  while (Date.now() < deadline) {
    const ended = new Set(
      stack.webhooks
        .received('chaos')
        .filter(
          (hook) =>
            hook.status < 300 &&
            ['job.succeeded', 'job.failed', 'job.canceled', 'job.expired'].includes(hook.payload?.type ?? ''),
        )
        .map((hook) => hook.payload?.data.id),
    );
    if (ended.size >= wanted) return;
    await sleep(1000);
  }
}

function printTable(header: string[], rows: (string | number)[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells: (string | number)[]) =>
    `| ${cells.map((c, i) => String(c).padEnd(widths[i]!)).join(' | ')} |`;
  console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'));
}

/** One campaign: load and faults for `seconds`, a drain, then every invariant over every job. */
async function campaign(seed: number, seconds: number, clients: number): Promise<boolean> {
  log(`seed ${seed}: starting the stack`);
  const stack = await startChaosStack();
  try {
    stack.images.setBehaviour(PROVIDER_BASELINE.images);
    stack.chat.setBehaviour(PROVIDER_BASELINE.chat);
    const origin = Date.now();
    const until = origin + seconds * 1000;
    // Two streams of randomness, so the fault schedule replays whatever the load's timing does.
    const [submitted, faults] = await Promise.all([
      runLoad(stack, seededRandom(seed ^ 0x5bd1e995), { clients, durationMs: seconds * 1000 }),
      runFaults(stack, seededRandom(seed), until, origin),
    ]);
    log(`load over: ${submitted.length} submissions, ${faults.length} faults; draining`);
    const rows = await drainedRows(stack, DRAIN_TIMEOUT_MS);
    await webhooksSettled(stack, submitted);
    const outcome = { stack, submitted, rows, faults };
    const results = [];
    for (const invariant of INVARIANTS) results.push({ invariant, broken: await invariant.check(outcome) });

    const count = (status: string) => rows.filter((row) => row.status === status).length;
    console.log(
      `\nseed ${seed}: ${submitted.filter((job) => job.accepted).length} accepted of ${submitted.length} submitted; ${rows.length} rows`,
    );
    console.log(
      `  succeeded ${count('succeeded')}, failed ${count('failed')}, canceled ${count('canceled')}, expired ${count('expired')}`,
    );
    const reasons = new Map<string, number>();
    for (const row of rows) {
      const reason = row.served_by?.switched?.reason;
      if (reason) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    const switched = [...reasons.values()].reduce((sum, n) => sum + n, 0);
    const why = [...reasons].map(([reason, n]) => `${reason} ${n}`).join(', ');
    console.log(`  ${switched} of ${rows.length} moved on to a fallback${why ? ` (${why})` : ''}`);
    console.log(`  ${await batchTierSummary(stack, rows)}`);
    const injected = new Map<string, number>();
    for (const fault of faults) injected.set(fault.name, (injected.get(fault.name) ?? 0) + 1);
    printTable(
      ['fault', 'injected'],
      [...injected].sort(([a], [b]) => a.localeCompare(b)),
    );
    console.log('');
    printTable(
      ['invariant', 'result'],
      results.map(({ invariant, broken }) => [
        invariant.name,
        broken.length === 0 ? 'ok' : `BROKEN (${broken.length})`,
      ]),
    );
    for (const { invariant, broken } of results.filter((result) => result.broken.length > 0)) {
      console.log(`\n${invariant.name}:\n  ${broken.slice(0, 20).join('\n  ')}`);
    }
    const passed = results.every((result) => result.broken.length === 0);
    if (!passed)
      console.log(
        `\n${await explainJobs(
          stack,
          results.flatMap((result) => result.broken),
        )}`,
      );
    if (!passed)
      console.log(`\nreplay: npm run test:chaos -- --seed ${seed} --seconds ${seconds} --clients ${clients}`);
    return passed;
  } finally {
    await stack.stop();
  }
}

/** What the batch tier did: lines pooled, batches the provider made of them, how the lines ended. */
async function batchTierSummary(stack: ChaosStack, rows: JobRow[]): Promise<string> {
  const members = await stack.ctx.database.db
    .selectFrom('batch_members')
    .select(['job_id', 'outcome'])
    .execute();
  const ended = new Map<string, number>();
  for (const { outcome } of members) {
    const said = outcome
      ? outcome.outcome === 'unrun'
        ? `unrun ${outcome.reason}`
        : outcome.outcome
      : 'none';
    ended.set(said, (ended.get(said) ?? 0) + 1);
  }
  const pooled = new Set(members.map((member) => member.job_id));
  const moved = rows.filter((row) => pooled.has(row.id) && row.tier === 'standard').length;
  const how = [...ended].map(([said, n]) => `${said} ${n}`).join(', ');
  return `${members.length} batch lines in ${stack.batches.batchesCreated.length} provider batches (${how || 'none'}); ${moved} moved to the standard tier`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      seeds: { type: 'string', default: '1' },
      seconds: { type: 'string', default: '45' },
      clients: { type: 'string', default: '4' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const seconds = Number(values.seconds);
  const clients = Number(values.clients);
  const seeds = values.seed
    ? [Number(values.seed)]
    : Array.from({ length: Number(values.seeds) }, () => Math.floor(Math.random() * 2 ** 31));
  if ([seconds, clients, ...seeds].some((n) => !Number.isInteger(n) || n < 0)) {
    console.error(USAGE);
    return 2;
  }
  let failed = 0;
  for (const seed of seeds) if (!(await campaign(seed, seconds, clients))) failed += 1;
  console.log(
    `\n${seeds.length - failed} of ${seeds.length} campaigns kept every invariant (seeds ${seeds.join(', ')})`,
  );
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
