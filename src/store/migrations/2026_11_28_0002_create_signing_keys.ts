import type { Kysely } from 'kysely'

// Frozen: this file must keep working on every future schema. It imports only kysely.

// any: migrations must not see today's schema
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'text', (col) => col.primaryKey())
    .addColumn('alg', 'text', (col) => col.notNull())
    .addColumn('public_jwk', 'text', (col) => col.notNull())
    .addColumn('private_jwk', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('activates_at', 'bigint', (col) => col.notNull())
    .addColumn('retires_at', 'bigint')
    .execute()
}

// any: migrations must not see today's schema
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signing_keys').execute()
}
