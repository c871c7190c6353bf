import { sql, type Kysely } from 'kysely';

/** Credit balances and the ledger every balance change is written to. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('credits', 'integer', (c) =>
      c
        .notNull()
        .defaultTo(0)
        .check(sql`credits >= 0`),
    )
    .execute();
  await db.schema
    .createTable('credit_ledger')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('job_id', 'text', (c) => c.references('jobs.id'))
    .addColumn('kind', 'text', (c) =>
      c.notNull().check(sql`kind in ('grant', 'reserve', 'settle', 'refund')`),
    )
    .addColumn('amount', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('credit_ledger_job_entries_name_a_job', sql`(kind = 'grant') = (job_id is null)`)
    .execute();
  // A job is reserved once and closed once (settled or refunded, never both), whoever retries.
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
  await db.schema.createIndex('credit_ledger_user').on('credit_ledger').column('user_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('credit_ledger').execute();
  await db.schema.alterTable('users').dropColumn('credits').execute();
}
