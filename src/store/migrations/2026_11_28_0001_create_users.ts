import { type Kysely, PostgresAdapter, sql } from 'kysely'

// Frozen: this file must keep working on every future schema. It imports only kysely.

// any: migrations must not see today's schema
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter
  await db.schema
    .createTable('users')
    // ids are never reused: SQLite AUTOINCREMENT, PostgreSQL identity (sequences never go back)
    .addColumn('id', postgres ? 'bigint' : 'integer', (col) =>
      postgres ? col.primaryKey().generatedAlwaysAsIdentity() : col.primaryKey().autoIncrement(),
    )
    .addColumn('username', 'text', (col) => col.notNull())
    .addColumn('username_canonical', 'text', (col) => col.notNull())
    .addColumn('password_hash', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('updated_at', 'bigint', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('users_username_canonical_key').unique().on('users').column('username_canonical').execute()
  if (postgres) {
    await sql`ALTER TABLE users ADD CONSTRAINT users_username_length CHECK (char_length(username_canonical) BETWEEN 1 AND 64)`.execute(db)
  }
}

// any: migrations must not see today's schema
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('users').execute()
}
