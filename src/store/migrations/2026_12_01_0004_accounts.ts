import { type Kysely, PostgresAdapter } from 'kysely'

// Frozen: this file must keep working on every future schema. It imports only kysely.
// Accounts and administration: user status and roles, invite codes, the audit log.

// any: migrations must not see today's schema
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter
  const id = postgres ? 'bigint' : 'integer'

  // 'active' | 'pending' (waits for approval) | 'disabled'
  await db.schema
    .alterTable('users')
    .addColumn('status', 'text', (col) => col.notNull().defaultTo('active'))
    .execute()
  // space-separated role names, e.g. 'admin editor'; '' = none
  await db.schema
    .alterTable('users')
    .addColumn('roles', 'text', (col) => col.notNull().defaultTo(''))
    .execute()
  await db.schema.createIndex('users_status').on('users').column('status').execute()

  await db.schema
    .createTable('invites')
    // public handle for listing and revoking
    .addColumn('id', 'text', (col) => col.primaryKey())
    // SHA-256 of the single-use code (hex); never the code itself
    .addColumn('code_hash', 'text', (col) => col.notNull().unique())
    // optional fixed username (as given, and its canonical form)
    .addColumn('username', 'text')
    .addColumn('username_canonical', 'text')
    .addColumn('roles', 'text', (col) => col.notNull().defaultTo(''))
    .addColumn('created_by', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('used_by', id)
    .addColumn('revoked_at', 'bigint')
    .execute()

  await db.schema
    .createTable('audit_log')
    .addColumn('id', id, (col) => (postgres ? col.primaryKey().generatedAlwaysAsIdentity() : col.primaryKey().autoIncrement()))
    .addColumn('at', 'bigint', (col) => col.notNull())
    // e.g. 'auth.failure', 'user.disabled'
    .addColumn('event', 'text', (col) => col.notNull())
    // 'success' | 'failure'
    .addColumn('outcome', 'text', (col) => col.notNull())
    // who acted: a user id, or null (the CLI, an anonymous caller)
    .addColumn('actor_id', id)
    // how the actor is shown: a username, 'cli', or 'anonymous'
    .addColumn('actor', 'text', (col) => col.notNull())
    // the user acted upon, if any
    .addColumn('subject_id', id)
    .addColumn('subject', 'text')
    .addColumn('ip', 'text')
    // JSON object of non-secret details
    .addColumn('detail', 'text', (col) => col.notNull().defaultTo('{}'))
    .execute()
  await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute()
  await db.schema.createIndex('audit_log_event_at').on('audit_log').columns(['event', 'at']).execute()
  await db.schema.createIndex('audit_log_subject_id').on('audit_log').column('subject_id').execute()
  await db.schema.createIndex('audit_log_actor_id').on('audit_log').column('actor_id').execute()
}

// any: migrations must not see today's schema
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_log').execute()
  await db.schema.dropTable('invites').execute()
  await db.schema.dropIndex('users_status').execute()
  await db.schema.alterTable('users').dropColumn('roles').execute()
  await db.schema.alterTable('users').dropColumn('status').execute()
}
