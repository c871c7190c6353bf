import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/storage/s3-object-store.js';
import { isTerminal, type Job, type JobStatus } from '../../src/jobs/job.js';
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

/** Storage holds exactly one result per succeeded job and nothing staged is left behind. */
export async function storageMatches(ctx: TestContext, jobs: Job[]): Promise<boolean> {
  const keys = (await listObjectKeys(ctx)).sort();
  const expected = jobs
    .filter((job) => job.status === 'succeeded')
    .map((job) => `results/${job.id}`)
    .sort();
  return JSON.stringify(keys) === JSON.stringify(expected);
}

export async function reportFor(
  ctx: TestContext,
  scenario: string,
  ids: string[],
  duplicateCalls: number,
): Promise<{ report: ScenarioReport; jobs: Job[] }> {
  const rows = await Promise.all(ids.map((id) => findJob(ctx.database.db, id)));
  const found = rows.map((row) => (row ? toJob(row) : undefined));
  const lost = (await Promise.all(found.map((job) => isLost(ctx, job)))).filter(Boolean).length;
  const jobs = found.filter((job): job is Job => job !== undefined);
  const count = (status: JobStatus) => jobs.filter((job) => job.status === status).length;
  return {
    jobs,
    report: {
      scenario,
      submitted: ids.length,
      succeeded: count('succeeded'),
      failed: count('failed'),
      lost,
      duplicateCalls,
    },
  };
}

export function printReports(reports: ScenarioReport[]): void {
  const header = ['scenario', 'submitted', 'succeeded', 'failed', 'lost', 'duplicate calls'];
  const rows = reports.map((r) => [r.scenario, r.submitted, r.succeeded, r.failed, r.lost, r.duplicateCalls]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells: (string | number)[]) =>
    `| ${cells.map((c, i) => String(c).padEnd(widths[i]!)).join(' | ')} |`;
  console.log(['', line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n'));
}
