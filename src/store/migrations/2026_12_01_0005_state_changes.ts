import { type Kysely, PostgresAdapter } from 'kysely'

// Frozen: this file must keep working on every future schema. It imports only kysely.
// The change log of authentication state: every instance (and the CLI) appends a row when it revokes a
// token, changes a user, or touches keys or clients; every instance reads it to keep its caches fresh.

// any: migrations must not see today's schema
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter
  await db.schema
    .createTable('state_changes')
    .addColumn('id', postgres ? 'bigint' : 'integer', (col) =>
      postgres ? col.primaryKey().generatedAlwaysAsIdentity() : col.primaryKey().autoIncrement(),
    )
    .addColumn('at', 'bigint', (col) => col.notNull())
    // 'user' | 'jti' | 'family' | 'keys' | 'client'
    .addColumn('kind', 'text', (col) => col.notNull())
    // the user id, jti, family id or client id ('' for keys)
    .addColumn('ref', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('state_changes_at').on('state_changes').column('at').execute()
}

// any: migrations must not see today's schema
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('state_changes').execute()
}
