import { sql, type Kysely } from 'kysely';

/**
 * An operator may re-run a failed job under its own id. Each run reserves the job's cost again and closes
 * that reservation once, so the ledger's once-per-job indexes become once per run of the job.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('credit_ledger')
    .addColumn('run', 'integer', (c) =>
      c
        .notNull()
        .defaultTo(1)
        .check(sql`run >= 1`),
    )
    .execute();
  await db.schema.dropIndex('credit_ledger_one_reserve_per_job').execute();
  await db.schema.dropIndex('credit_ledger_one_close_per_job').execute();
  await db.schema
    .createIndex('credit_ledger_one_reserve_per_run')
    .on('credit_ledger')
    .columns(['job_id', 'run'])
    .unique()
    .where(sql.ref('kind'), '=', 'reserve')
    .execute();
  await db.schema
    .createIndex('credit_ledger_one_close_per_run')
    .on('credit_ledger')
    .columns(['job_id', 'run'])
    .unique()
    .where(sql.ref('kind'), 'in', ['settle', 'refund'])
    .execute();
  // The operator API lists unfinished jobs that have not changed for a while, oldest change first.
  await db.schema
    .createIndex('jobs_unfinished_by_change')
    .on('jobs')
    .columns(['updated_at', 'id'])
    .where(sql.ref('status'), 'in', ['queued', 'running', 'storing'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('jobs_unfinished_by_change').execute();
  await db.schema.dropIndex('credit_ledger_one_close_per_run').execute();
  await db.schema.dropIndex('credit_ledger_one_reserve_per_run').execute();
  // Fails while a retried job has two runs in the ledger: the old indexes cannot hold them.
  await db.schema
    .createIndex('credit_ledger_one_reserve_per_job')
    .on('credit_ledger')
    .column('job_id')
    .unique()
    .where(sql.ref('kind'), '=', 'reserve')
    .execute();
  await db.schema
    .createIndex('credit_ledger_one_close_per_job')
    .on('credit_ledger')
    .column('job_id')
    .unique()
    .where(sql.ref('kind'), 'in', ['settle', 'refund'])
    .execute();
  await db.schema.alterTable('credit_ledger').dropColumn('run').execute();
}
