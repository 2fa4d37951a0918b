import { type Kysely, PostgresAdapter } from 'kysely'

// Frozen: this file must keep working on every future schema. It imports only kysely.
// Revocation (jti denylist + per-user "tokens valid after"), OAuth clients and refresh-token families.

// any: migrations must not see today's schema
export async function up(db: Kysely<any>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter
  const id = postgres ? 'bigint' : 'integer'

  // Seconds since the epoch; a token whose iat is below it is revoked. 0 = never.
  await db.schema
    .alterTable('users')
    .addColumn('tokens_valid_after', 'bigint', (col) => col.notNull().defaultTo(0))
    .execute()

  await db.schema
    .createTable('revoked_tokens')
    .addColumn('jti', 'text', (col) => col.primaryKey())
    .addColumn('subject', 'text', (col) => col.notNull())
    // the token's exp (ms): the row is useless, and deleted, after it
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .addColumn('revoked_at', 'bigint', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('revoked_tokens_expires_at').on('revoked_tokens').column('expires_at').execute()

  // Server-side secrets generated on first start (e.g. the refresh-token derivation key). Key material.
  await db.schema
    .createTable('server_secrets')
    .addColumn('name', 'text', (col) => col.primaryKey())
    .addColumn('value', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('oauth_clients')
    .addColumn('client_id', 'text', (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull())
    // SHA-256 of a 256-bit random secret (hex); never the secret itself
    .addColumn('secret_hash', 'text', (col) => col.notNull())
    // space-separated
    .addColumn('scopes', 'text', (col) => col.notNull())
    .addColumn('grant_types', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('refresh_families')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('user_id', id, (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (col) => col.references('oauth_clients.client_id').onDelete('cascade'))
    .addColumn('scope', 'text')
    // seconds: when the password was presented
    .addColumn('auth_time', 'bigint', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    // absolute end of the family (ms)
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_reason', 'text')
    .execute()
  await db.schema.createIndex('refresh_families_user_id').on('refresh_families').column('user_id').execute()

  await db.schema
    .createTable('refresh_tokens')
    // SHA-256 of the opaque token (hex)
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('family_id', 'text', (col) => col.notNull().references('refresh_families.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    // idle expiry (ms)
    .addColumn('idle_expires_at', 'bigint', (col) => col.notNull())
    .addColumn('rotated_at', 'bigint')
    .execute()
  await db.schema.createIndex('refresh_tokens_family_id').on('refresh_tokens').column('family_id').execute()
}

// any: migrations must not see today's schema
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('refresh_tokens').execute()
  await db.schema.dropTable('refresh_families').execute()
  await db.schema.dropTable('oauth_clients').execute()
  await db.schema.dropTable('server_secrets').execute()
  await db.schema.dropTable('revoked_tokens').execute()
  await db.schema.alterTable('users').dropColumn('tokens_valid_after').execute()
}
