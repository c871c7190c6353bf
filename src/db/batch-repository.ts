import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { BatchLine, ProviderBatch } from '../providers/batch-provider.js';
import type { BatchMemberOutcome, BatchMembersTable, Database, ProviderBatchesTable } from './schema.js';
import type { Selectable } from 'kysely';

export type BatchMemberRow = Selectable<BatchMembersTable>;
export type ProviderBatchRow = Selectable<ProviderBatchesTable>;

/** Where a batch job's line stands: waiting for a batch, in one not yet sent, sent, or ended there. */
export type BatchStage = 'pooled' | 'sealed' | 'submitted' | 'settled';

export interface BatchMemberState {
  stage: BatchStage;
  outcome: BatchMemberOutcome | null;
}

/** A batch job's line, pooled by provider and model. Safe to repeat: a job joins once. */
export async function joinBatchPool(
  db: Kysely<Database>,
  member: { jobId: string; workflowId: string; provider: string; line: BatchLine },
): Promise<void> {
  const { jobId, workflowId, provider, line } = member;
  await db
    .insertInto('batch_members')
    .values({
      job_id: jobId,
      workflow_id: workflowId,
      provider,
      model: line.model,
      line: JSON.stringify(line),
    })
    .onConflict((conflict) => conflict.column('job_id').doNothing())
    .execute();
}

/** The job's stage in the batch tier; undefined when it is no member (it never joined, or left). */
export async function batchMemberState(
  db: Kysely<Database>,
  jobId: string,
): Promise<BatchMemberState | undefined> {
  const row = await db
    .selectFrom('batch_members as m')
    .leftJoin('provider_batches as b', 'b.id', 'm.batch_id')
    .select(['m.outcome', 'b.status'])
    .where('m.job_id', '=', jobId)
    .executeTakeFirst();
  if (!row) return undefined;
  const stage: BatchStage = row.outcome
    ? 'settled'
    : row.status === null || row.status === 'forming'
      ? 'pooled'
      : row.status === 'sealed'
        ? 'sealed'
        : 'submitted';
  return { stage, outcome: row.outcome };
}

/**
 * Takes the job out of the batch tier if its line can still be taken back: pooled, or in a batch not
 * yet sealed. Locks the batch as sealing does, so that a line is either in the file or out of it.
 */
export async function leaveBatchPool(db: Kysely<Database>, jobId: string): Promise<'left' | 'staying'> {
  return db.transaction().execute(async (trx) => {
    const member = await trx
      .selectFrom('batch_members')
      .select('batch_id')
      .where('job_id', '=', jobId)
      .forUpdate()
      .executeTakeFirst();
    if (!member) return 'left';
    if (member.batch_id !== null) {
      const batch = await trx
        .selectFrom('provider_batches')
        .select('status')
        .where('id', '=', member.batch_id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      if (batch.status !== 'forming') return 'staying';
    }
    await trx.deleteFrom('batch_members').where('job_id', '=', jobId).execute();
    return 'left';
  });
}

/** What the pool does next: a batch was formed; wait `ms` for more lines; or nothing is pooled. */
export type PoolStep = { kind: 'formed'; batchId: string } | { kind: 'wait'; ms: number } | { kind: 'empty' };

/**
 * Forms a batch of the oldest pooled lines of `provider:model` once there are `maxJobs` of them, or the
 * oldest has waited `windowSeconds`. Lines are taken with SKIP LOCKED: two pools (a replayed one) never
 * put a line in two batches.
 */
export async function formProviderBatch(
  db: Kysely<Database>,
  pool: { provider: string; model: string; maxJobs: number; windowSeconds: number },
): Promise<PoolStep> {
  const { provider, model, maxJobs, windowSeconds } = pool;
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ pooled: number; waited_ms: number | null }>`
      select count(*)::int as pooled, extract(epoch from now() - min(joined_at)) * 1000 as waited_ms
      from (select joined_at from batch_members
        where provider = ${provider} and model = ${model} and batch_id is null
        limit ${maxJobs}) pooled
    `.execute(trx);
    const { pooled, waited_ms: waitedMs } = rows[0]!;
    if (pooled === 0 || waitedMs === null) return { kind: 'empty' };
    const left = windowSeconds * 1000 - Number(waitedMs);
    if (pooled < maxJobs && left > 0) return { kind: 'wait', ms: Math.ceil(left) };
    const batchId = randomUUID();
    await trx.insertInto('provider_batches').values({ id: batchId, provider, model }).execute();
    await sql`
      update batch_members set batch_id = ${batchId}
      where job_id in (
        select job_id from batch_members
        where provider = ${provider} and model = ${model} and batch_id is null
        order by joined_at, job_id
        limit ${maxJobs}
        for update skip locked)
    `.execute(trx);
    return { kind: 'formed', batchId };
  });
}

/** The batch, and its members' lines; sealing it first, so that no member leaves it any more. */
export async function sealProviderBatch(
  db: Kysely<Database>,
  batchId: string,
): Promise<{ batch: ProviderBatchRow; members: BatchMemberRow[] }> {
  return db.transaction().execute(async (trx) => {
    const batch = await trx
      .updateTable('provider_batches')
      .set({ status: sql`case when status = 'forming' then 'sealed' else status end` })
      .where('id', '=', batchId)
      .returningAll()
      .executeTakeFirstOrThrow();
    const members = await trx
      .selectFrom('batch_members')
      .selectAll()
      .where('batch_id', '=', batchId)
      .orderBy('job_id')
      .execute();
    return { batch, members };
  });
}

export async function findProviderBatch(
  db: Kysely<Database>,
  batchId: string,
): Promise<ProviderBatchRow | undefined> {
  return db.selectFrom('provider_batches').selectAll().where('id', '=', batchId).executeTakeFirst();
}

export async function batchMembers(db: Kysely<Database>, batchId: string): Promise<BatchMemberRow[]> {
  return db.selectFrom('batch_members').selectAll().where('batch_id', '=', batchId).execute();
}

/** The provider's file and batch, as the provider last described it. Safe to repeat. */
export async function recordProviderBatch(
  db: Kysely<Database>,
  batchId: string,
  inputFileId: string,
  providerBatch: ProviderBatch,
): Promise<void> {
  await db
    .updateTable('provider_batches')
    .set({
      status: sql`case when status = 'settled' then status else 'submitted' end`,
      input_file_id: inputFileId,
      provider_batch_id: providerBatch.id,
      provider_state: providerBatch.state,
      submitted_at: sql`coalesce(submitted_at, now())`,
      expires_at: providerBatch.expiresAt,
    })
    .where('id', '=', batchId)
    .execute();
}

export async function recordProviderState(
  db: Kysely<Database>,
  batchId: string,
  providerBatch: ProviderBatch,
): Promise<void> {
  await db
    .updateTable('provider_batches')
    .set({ provider_state: providerBatch.state, expires_at: providerBatch.expiresAt })
    .where('id', '=', batchId)
    .execute();
}

/**
 * How each member's line ended, and the batch settled, in one transaction; each line's prompt is
 * dropped with it. Safe to repeat: an outcome written is not written again.
 */
export async function settleBatchMembers(
  db: Kysely<Database>,
  batchId: string,
  outcomes: ReadonlyMap<string, BatchMemberOutcome>,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    for (const [jobId, outcome] of outcomes) {
      await trx
        .updateTable('batch_members')
        .set({ outcome: JSON.stringify(outcome), line: null })
        .where('job_id', '=', jobId)
        .where('batch_id', '=', batchId)
        .where('outcome', 'is', null)
        .execute();
    }
    await trx
      .updateTable('provider_batches')
      .set({ status: 'settled', settled_at: sql`coalesce(settled_at, now())` })
      .where('id', '=', batchId)
      .execute();
  });
}
