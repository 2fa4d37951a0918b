/**
 * Each migration of src/store/migrations/index.ts, run one at a time on every dialect: it applies,
 * the schema has the columns the code relies on, and the constraints hold (house style §2.10).
 */
import { test } from 'node:test'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import assert from 'node:assert/strict'
import { type Kysely, Migrator, sql } from 'kysely'
import { parsePostgresUrl } from '../../src/store/dialects/postgres.ts'
import { migrations } from '../../src/store/migrations/index.ts'
import { freshStore } from '../helpers/fresh-store.ts'
import { PG_URL } from '../helpers/services.ts'
import { STORES, type StoreKind } from '../helpers/stores.ts'

/** Columns each known migration adds: table → column → nullable. Later migrations are checked for applying only. */
const EXPECTED: Readonly<Record<string, Readonly<Record<string, Readonly<Record<string, boolean>>>>>> = {
  '2026_11_28_0001_create_users': {
    users: {
      id: false,
      username: false,
      username_canonical: false,
      password_hash: false,
      created_at: false,
      updated_at: false,
    },
  },
  '2026_11_28_0002_create_signing_keys': {
    signing_keys: {
      kid: false,
      alg: false,
      public_jwk: false,
      private_jwk: false,
      created_at: false,
      activates_at: false,
      retires_at: true,
    },
  },
}

interface TableInfo {
  readonly name: string
  readonly columns: readonly { readonly name: string; readonly isNullable: boolean }[]
}

/**
 * Tables of the store's schema. On PostgreSQL a plain catalogue query limited to that schema, kept
 * independent of the store's own introspector (tested below).
 */
// any: the schema under test changes from step to step
async function tables(db: Kysely<any>, schema: string | undefined): Promise<Map<string, TableInfo>> {
  if (schema === undefined) {
    const all = await db.introspection.getTables({ withInternalKyselyTables: true })
    return new Map(all.map((t) => [t.name, { name: t.name, columns: t.columns.map((c) => ({ name: c.name, isNullable: c.isNullable })) }]))
  }
  const { rows } = await sql<{ table: string; column: string; nullable: boolean }>`
    SELECT c.relname AS table, a.attname AS column, NOT a.attnotnull AS nullable
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON a.attrelid = c.oid
    JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid
    WHERE n.nspname = ${schema} AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum`.execute(db)
  const map = new Map<string, { name: string; columns: { name: string; isNullable: boolean }[] }>()
  for (const row of rows) {
    const entry = map.get(row.table) ?? { name: row.table, columns: [] }
    entry.columns.push({ name: row.column, isNullable: row.nullable })
    map.set(row.table, entry)
  }
  return map
}

// any: migrations run on Kysely<any>
async function freshDb(t: Parameters<typeof freshStore>[0], kind: StoreKind): Promise<{ db: Kysely<any>; schema: string | undefined } | undefined> {
  const fresh = await freshStore(t, kind, { migrate: false })
  if (fresh === undefined) return undefined
  const schema = kind === 'postgres' ? parsePostgresUrl(fresh.databaseUrl).schema : undefined
  if (schema !== undefined) await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(fresh.store.db)
  return { db: fresh.store.db, schema }
}

const NAMES = Object.keys(migrations)

/** As the store builds it: on PostgreSQL the migration tables live in the store's own schema. */
// any: migrations run on Kysely<any>
function migratorFor({ db, schema }: { db: Kysely<any>; schema: string | undefined }): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    ...(schema === undefined ? {} : { migrationTableSchema: schema }),
  })
}

for (const kind of STORES) {
  test(`${kind}: each migration runs up in order and adds the expected columns (frozen migrations)`, async (t) => {
    const fresh = await freshDb(t, kind)
    if (fresh === undefined) return
    const { db, schema } = fresh
    const migrator = migratorFor(fresh)
    for (const name of NAMES) {
      const { error, results } = await migrator.migrateTo(name)
      assert.equal(error, undefined, `${name}: ${String(error)}`)
      assert.deepEqual(results, [{ migrationName: name, direction: 'Up', status: 'Success' }])
      const expected = EXPECTED[name]
      if (expected === undefined) continue
      const now = await tables(db, schema)
      for (const [table, columns] of Object.entries(expected)) {
        const meta = now.get(table)
        assert.ok(meta !== undefined, `${name} creates ${table}`)
        // SQLite reports primary-key columns as nullable unless declared NOT NULL: the INTEGER PRIMARY
        // KEY (rowid alias) never holds NULL; a TEXT PRIMARY KEY (signing_keys.kid) technically could,
        // a SQLite legacy quirk. The frozen migration is left as it is; the code always sets kid.
        const sqlitePk = (c: { name: string }) => kind === 'sqlite' && ((table === 'users' && c.name === 'id') || (table === 'signing_keys' && c.name === 'kid'))
        const actual = Object.fromEntries(
          meta.columns.filter((c) => c.name in columns).map((c) => [c.name, sqlitePk(c) ? false : c.isNullable]),
        )
        assert.deepEqual(actual, columns, `${table} columns after ${name}`)
      }
    }
    // Running to latest afterwards changes nothing.
    const latest = await migrator.migrateToLatest()
    assert.equal(latest.error, undefined)
    assert.deepEqual(latest.results, [])
  })

  test(`${kind}: users.username_canonical is unique at the database (RFC 8265 uniqueness, race-safe registration)`, async (t) => {
    const fresh = await freshDb(t, kind)
    if (fresh === undefined) return
    const { db } = fresh
    const migrator = migratorFor(fresh)
    assert.equal((await migrator.migrateTo('2026_11_28_0001_create_users')).error, undefined)
    const row = (username: string, canonical: string) => ({
      username,
      username_canonical: canonical,
      password_hash: 'h',
      created_at: 1,
      updated_at: 1,
    })
    await db.insertInto('users').values(row('Miguel', 'miguel')).execute()
    await assert.rejects(db.insertInto('users').values(row('MIGUEL', 'miguel')).execute(), /unique|UNIQUE/)
    await db.insertInto('users').values(row('miguel2', 'miguel2')).execute()
    if (kind === 'postgres') {
      // PostgreSQL also bounds the canonical name's length.
      await assert.rejects(db.insertInto('users').values(row('x', '')).execute(), /users_username_length/)
      await assert.rejects(db.insertInto('users').values(row('x', 'a'.repeat(65))).execute(), /users_username_length/)
    }
  })

  test(`${kind}: users.id is generated by the database and never set by the application`, async (t) => {
    const fresh = await freshDb(t, kind)
    if (fresh === undefined) return
    const { db } = fresh
    const migrator = migratorFor(fresh)
    assert.equal((await migrator.migrateToLatest()).error, undefined)
    const insert = (canonical: string) =>
      db
        .insertInto('users')
        .values({ username: canonical, username_canonical: canonical, password_hash: 'h', created_at: 1, updated_at: 1 })
        .returning('id')
        .executeTakeFirstOrThrow()
    const a = await insert('a')
    const b = await insert('b')
    assert.equal(Number(b.id), Number(a.id) + 1)
    if (kind === 'sqlite') {
      // AUTOINCREMENT (not just INTEGER PRIMARY KEY): SQLite then never reuses the largest id.
      const ddl = await sql<{ sql: string }>`SELECT sql FROM sqlite_master WHERE name = 'users'`.execute(db)
      assert.match(ddl.rows[0]?.sql ?? '', /AUTOINCREMENT/i)
    } else {
      // GENERATED ALWAYS AS IDENTITY: an explicit id is refused.
      await assert.rejects(
        db.insertInto('users').values({ id: 999, username: 'c', username_canonical: 'c', password_hash: 'h', created_at: 1, updated_at: 1 }).execute(),
        /GENERATED ALWAYS|cannot insert/i,
      )
    }
  })

  test(`${kind}: signing_keys.kid is the primary key`, async (t) => {
    const fresh = await freshDb(t, kind)
    if (fresh === undefined) return
    const { db } = fresh
    const migrator = migratorFor(fresh)
    assert.equal((await migrator.migrateToLatest()).error, undefined)
    const key = { kid: 'k1', alg: 'ES256', public_jwk: '{}', private_jwk: '{}', created_at: 1, activates_at: 1, retires_at: null }
    await db.insertInto('signing_keys').values(key).execute()
    await assert.rejects(db.insertInto('signing_keys').values(key).execute())
  })

  test(`${kind}: every migration can be rolled back and applied again (down mirrors up)`, async (t) => {
    const fresh = await freshDb(t, kind)
    if (fresh === undefined) return
    const { db, schema } = fresh
    const migrator = migratorFor(fresh)
    assert.equal((await migrator.migrateToLatest()).error, undefined)
    const before = [...(await tables(db, schema)).keys()].sort()
    for (let i = NAMES.length - 1; i >= 0; i--) {
      const { error, results } = await migrator.migrateDown()
      assert.equal(error, undefined, `down ${NAMES[i]}: ${String(error)}`)
      assert.deepEqual(results?.map((r) => [r.migrationName, r.direction, r.status]), [[NAMES[i], 'Down', 'Success']])
    }
    const empty = [...(await tables(db, schema)).keys()].filter((n) => !n.startsWith('kysely_'))
    assert.deepEqual(empty, [])
    assert.equal((await migrator.migrateToLatest()).error, undefined)
    assert.deepEqual([...(await tables(db, schema)).keys()].sort(), before)
  })
}

test('postgres: migrating is unaffected by other schemas being created and dropped meanwhile (introspection sees our schema only)', async (t) => {
  const fresh = await freshStore(t, 'postgres', { migrate: false })
  if (fresh === undefined) return
  // Another application (or another tenant's rest-auth) churns schemas with serial tables in the same
  // database, as parallel tests and multi-tenant deployments do. Kysely's stock introspector read them all.
  const churn = new pg.Client({ connectionString: PG_URL })
  await churn.connect()
  let stop = false
  let churned = 0
  const loop = (async () => {
    while (!stop) {
      const name = `ra_churn_${randomUUID().replace(/-/g, '')}`
      await churn.query(`CREATE SCHEMA ${name}; CREATE TABLE ${name}.t (id serial PRIMARY KEY, a text, b text, c text)`)
      await churn.query(`DROP SCHEMA ${name} CASCADE`)
      churned++
    }
  })()
  try {
    // Each run: a fresh schema, migrated from nothing by a store of its own.
    for (let i = 0; i < 25; i++) {
      const other = await freshStore(t, 'postgres', { migrate: false })
      assert.ok(other !== undefined)
      const outcomes = await other.store.migrate()
      assert.equal(outcomes.length, Object.keys(migrations).length, `run ${i}`)
      assert.ok(outcomes.every((o) => o.status === 'Success'))
    }
  } finally {
    stop = true
    await loop
    await churn.end()
  }
  assert.ok(churned > 25, `schemas were churned meanwhile (${churned})`)
  // The introspector still reports our own tables, with their columns.
  await fresh.store.migrate()
  const tables = await fresh.store.db.introspection.getTables()
  const users = tables.find((table) => table.name === 'users')
  assert.ok(users !== undefined)
  assert.equal(users.schema, parsePostgresUrl(fresh.databaseUrl).schema)
  assert.ok(users.columns.some((c) => c.name === 'id' && c.isAutoIncrementing && !c.isNullable)) // GENERATED ALWAYS AS IDENTITY owns a sequence
  assert.ok(!tables.some((table) => table.name.startsWith('kysely_migration')), 'internal tables only when asked for')
  assert.ok((await fresh.store.db.introspection.getTables({ withInternalKyselyTables: true })).some((table) => table.name === 'kysely_migration'))
})
