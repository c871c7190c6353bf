import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import type { Config, TokenPrice } from '../../src/config/index.js';
import { costOf } from '../../src/credits/job-cost.js';
import { createS3Client } from '../../src/storage/s3-object-store.js';
import { isTerminal, type Job, type JobStatus } from '../../src/jobs/job.js';
import { creditsForUsage, tokenPriceOf } from '../../src/jobs/token-pricing.js';
import { findJob, toJob } from '../../src/db/job-repository.js';
import type { TestContext } from './test-context.js';

/** One scenario's outcome, as the fault suite's table prints it. */
export interface ScenarioReport {
  scenario: string;
  submitted: number;
  succeeded: number;
  failed: number;
  /** Jobs not ended, or whose row disagrees with their workflow. */
  lost: number;
  /** Provider calls beyond what the scenario allows. */
  duplicateCalls: number;
  /** Balances that disagree with the ledger, and jobs not settled or refunded exactly once. */
  ledgerErrors: number;
}

const WORKFLOW_STATUS_FOR: Partial<Record<JobStatus, string>> = {
  succeeded: 'COMPLETED',
  failed: 'FAILED',
  canceled: 'CANCELLED',
  expired: 'COMPLETED',
};

/** How long a workflow may take to close after its last job-table write (one more workflow task). */
const WORKFLOW_CLOSE_GRACE_MS = 15_000;

/** A job is lost unless it ended and its workflow ended the same way. */
export async function isLost(ctx: TestContext, job: Job | undefined): Promise<boolean> {
  if (!job || !isTerminal(job.status)) return true;
  const handle = ctx.temporal.workflow.getHandle(job.id);
  const deadline = Date.now() + WORKFLOW_CLOSE_GRACE_MS;
  for (;;) {
    const { status } = await handle.describe();
    if (status.name === WORKFLOW_STATUS_FOR[job.status]) return false;
    if (status.name !== 'RUNNING' || Date.now() > deadline) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Every object key in the context's bucket. */
export async function listObjectKeys(ctx: TestContext): Promise<string[]> {
  if (ctx.config.storage.driver !== 's3') throw new Error('fault checks read an S3 bucket');
  const client = createS3Client(ctx.config.storage);
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: ctx.config.storage.bucket, ContinuationToken: token }),
    );
    keys.push(...(page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : [])));
    token = page.NextContinuationToken;
  } while (token);
  client.destroy();
  return keys;
}

/** Storage holds exactly one result per succeeded job, and nothing else. */
export async function storageMatches(ctx: TestContext, jobs: Job[]): Promise<boolean> {
  const keys = (await listObjectKeys(ctx)).sort();
  const expected = jobs
    .filter((job) => job.status === 'succeeded')
    .map((job) => `results/${job.id}`)
    .sort();
  return JSON.stringify(keys) === JSON.stringify(expected);
}

/** A job's ledger entries in the order written, as `kind:amount`. */
export async function ledgerEntriesOf(db: Kysely<Database>, jobId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('credit_ledger')
    .select(['kind', 'amount'])
    .where('job_id', '=', jobId)
    .orderBy('id')
    .execute();
  return rows.map((row) => `${row.kind}:${row.amount}`);
}

/** Users whose balance is negative or differs from the sum of their ledger entries. */
export async function balanceProblems(db: Kysely<Database>): Promise<string[]> {
  const users = await db
    .selectFrom('users')
    .leftJoin('credit_ledger', 'credit_ledger.user_id', 'users.id')
    .select(['users.id', 'users.credits', sql<string>`coalesce(sum(credit_ledger.amount), 0)`.as('sum')])
    .groupBy('users.id')
    .execute();
  return users
    .filter((user) => user.credits < 0 || user.credits !== Number(user.sum))
    .map((user) => `user ${user.id}: balance ${user.credits}, ledger sum ${user.sum}`);
}

/**
 * The entries a job must have: one reservation of its cost, closed once when it ended (settled if it
 * succeeded, refunded in full otherwise), still open if it has not ended. A settle gives back what the
 * reservation held beyond `servedCost`, what the job was charged.
 */
function expectedEntries(status: JobStatus, cost: number, servedCost = cost): string[] {
  if (status === 'succeeded') return [`reserve:${-cost}`, `settle:${Math.max(0, cost - servedCost)}`];
  return isTerminal(status) ? [`reserve:${-cost}`, `refund:${cost}`] : [`reserve:${-cost}`];
}

type LedgerJob = Pick<Job, 'id' | 'status'> &
  Partial<Pick<Job, 'servedBy' | 'cacheOutcome' | 'kind' | 'usage' | 'createdAt' | 'tier'>>;

/**
 * The token prices a text job was charged by: those of the entry it ended on, in force at its
 * submission; its model's batch prices if a batch served it.
 */
function tokenPriceFor(costs: Config['costs'] | undefined, job: LedgerJob): TokenPrice | undefined {
  if (!costs || job.kind !== 'text' || !job.servedBy || !job.createdAt) return undefined;
  const { provider, model } = job.servedBy;
  const price = tokenPriceOf(costs.tokens, provider, model, new Date(job.createdAt));
  if (job.tier !== 'batch' || !price) return price;
  return price.batch && { since: price.since, ...price.batch };
}

/**
 * A usage-priced text job that ended without a result pays for what its last call streamed, which the
 * ledger alone cannot tell: refunded in full, or settled at a charge of at least one credit and at most
 * its reservation.
 */
function unservedTextProblem(job: LedgerJob, cost: number, actual: string[]): string[] {
  const [close = '', ...more] = actual.filter((entry) => !entry.startsWith('reserve:'));
  const [kind, amount] = close.split(':');
  const charged = cost - Number(amount);
  const fits = kind === 'refund' ? charged === 0 : kind === 'settle' && charged > 0 && charged <= cost;
  const closedOnce = more.length === 0 && actual.length === 2 && actual.includes(`reserve:${-cost}`);
  return fits && closedOnce
    ? []
    : [`job ${job.id} ${job.status} (text, priced by tokens): ledger ${actual.join(' ')}`];
}

/** What a succeeded job was to be charged: the cache price, its usage at its prices, or its entry's price. */
function servedCostOf(
  job: LedgerJob,
  costs: Config['costs'] | undefined,
  cachePrice: number,
): number | undefined | 'no usage' {
  // A job the result cache served is charged the cache price, whoever served the job it took it from.
  if (job.cacheOutcome) return cachePrice;
  const tokenPrice = tokenPriceFor(costs, job);
  if (tokenPrice) return job.usage ? creditsForUsage(tokenPrice, job.usage) : 'no usage';
  return costs && job.servedBy ? costOf(costs, job.servedBy) : undefined;
}

/**
 * Jobs whose ledger entries are not exactly the ones their status calls for. With `costs`, a succeeded
 * job must have been charged the price of the provider its `servedBy` names (a fallback may be cheaper
 * than what it reserved), or for a text model priced by tokens, its `usage` at that model's prices;
 * without, the whole reservation. One the result cache served (`cacheOutcome`) must have been charged
 * `cachePrice` (at most its reservation).
 */
export async function jobLedgerProblems(
  db: Kysely<Database>,
  jobs: LedgerJob[],
  costs?: Config['costs'],
  cachePrice = 0,
): Promise<string[]> {
  if (jobs.length === 0) return [];
  const entries = await db
    .selectFrom('credit_ledger')
    .select(['job_id', 'kind', 'amount'])
    .where(
      'job_id',
      'in',
      jobs.map((job) => job.id),
    )
    .execute();
  return jobs.flatMap((job) => {
    const own = entries.filter((entry) => entry.job_id === job.id);
    const cost = -(own.find((entry) => entry.kind === 'reserve')?.amount ?? 0);
    const actual = own.map((entry) => `${entry.kind}:${entry.amount}`).sort();
    const unserved = isTerminal(job.status) && job.status !== 'succeeded';
    if (unserved && !job.cacheOutcome && tokenPriceFor(costs, job))
      return unservedTextProblem(job, cost, actual);
    const servedCost = servedCostOf(job, costs, cachePrice);
    if (servedCost === 'no usage' && job.status === 'succeeded')
      return [`job ${job.id} succeeded without usage`];
    const expected = expectedEntries(
      job.status,
      cost,
      servedCost === 'no usage' ? undefined : servedCost,
    ).sort();
    return JSON.stringify(actual) === JSON.stringify(expected)
      ? []
      : [`job ${job.id} ${job.status}: ledger ${actual.join(' ')}, expected ${expected.join(' ')}`];
  });
}

export async function reportFor(
  ctx: TestContext,
  scenario: string,
  ids: string[],
  duplicateCalls: number,
): Promise<{ report: ScenarioReport; jobs: Job[]; ledgerProblems: string[] }> {
  const rows = await Promise.all(ids.map((id) => findJob(ctx.database.db, id)));
  const found = rows.map((row) => (row ? toJob(row) : undefined));
  const lost = (await Promise.all(found.map((job) => isLost(ctx, job)))).filter(Boolean).length;
  const jobs = found.filter((job): job is Job => job !== undefined);
  const count = (status: JobStatus) => jobs.filter((job) => job.status === status).length;
  const ledgerProblems = [
    ...(await balanceProblems(ctx.database.db)),
    ...(await jobLedgerProblems(ctx.database.db, jobs)),
  ];
  return {
    jobs,
    ledgerProblems,
    report: {
      scenario,
      submitted: ids.length,
      succeeded: count('succeeded'),
      failed: count('failed'),
      lost,
      duplicateCalls,
      ledgerErrors: ledgerProblems.length,
    },
  };
}

export function printReports(reports: ScenarioReport[]): void {
  const header = ['scenario', 'submitted', 'succeeded', 'failed', 'lost', 'duplicate calls', 'ledger errors'];
  const rows = reports.map((r) => [
    r.scenario,
    r.submitted,
    r.succeeded,
    r.failed,
    r.lost,
    r.duplicateCalls,
    r.ledgerErrors,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells: (string | number)[]) =>
    `| ${cells.map((c, i) => String(c).padEnd(widths[i]!)).join(' | ')} |`;
  console.log(['', line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n'));
}
