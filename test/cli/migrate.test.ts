/**
 * `rest-auth migrate`: applies every migration of src/store/migrations/index.ts in order, is a no-op
 * the second time, has a `--json` form, and leaves SQLite in WAL mode (security baseline pragmas).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import { sql } from 'kysely'
import { createStore, type KyselyStore } from '../../src/store/kysely-store.ts'
import { migrations } from '../../src/store/migrations/index.ts'
import { sqlitePath } from '../../src/store/dialects/sqlite.ts'
import { runCli } from '../helpers/cli.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'

const NAMES = Object.keys(migrations).sort()

test('migrations index: holds at least the users and signing-keys migrations, names in run order', () => {
  assert.ok(NAMES.includes('2026_11_28_0001_create_users'))
  assert.ok(NAMES.includes('2026_11_28_0002_create_signing_keys'))
  assert.deepEqual(Object.keys(migrations), NAMES, 'the map is written in the order the names sort')
})

for (const kind of STORES) {
  test(`${kind}: migrate applies every migration, then says up to date (exit 0)`, async (t) => {
    const databaseUrl = await freshDatabaseUrl(t, kind)
    if (databaseUrl === undefined) return
    const first = await runCli(['migrate'], { DATABASE_URL: databaseUrl })
    assert.equal(first.code, 0, first.stderr)
    assert.deepEqual(
      first.stdout.trim().split('\n'),
      NAMES.map((name) => `applied  ${name}`),
    )
    const second = await runCli(['migrate'], { DATABASE_URL: databaseUrl })
    assert.equal(second.code, 0, second.stderr)
    assert.equal(second.stdout.trim(), 'database schema is up to date')
  })

  test(`${kind}: migrate --json prints one parseable JSON document`, async (t) => {
    const databaseUrl = await freshDatabaseUrl(t, kind)
    if (databaseUrl === undefined) return
    // The flag form of DATABASE_URL, to cover migrate's flags too.
    const first = await runCli(['migrate', '--json', '--database-url', databaseUrl])
    assert.equal(first.code, 0, first.stderr)
    assert.deepEqual(JSON.parse(first.stdout), {
      migrations: NAMES.map((migrationName) => ({ migrationName, status: 'Success' })),
    })
    const second = await runCli(['migrate', '--json'], { DATABASE_URL: databaseUrl })
    assert.equal(second.code, 0, second.stderr)
    assert.deepEqual(JSON.parse(second.stdout), { migrations: [] })
  })
}

test('sqlite: migrate leaves the file in WAL mode; connections use synchronous=FULL and busy_timeout (security baseline)', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t, 'sqlite')
  assert.ok(databaseUrl !== undefined)
  const result = await runCli(['migrate'], { DATABASE_URL: databaseUrl })
  assert.equal(result.code, 0, result.stderr)

  // journal_mode=WAL is persistent: a plain connection sees it.
  const raw = new Database(sqlitePath(databaseUrl), { readonly: true })
  try {
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal')
  } finally {
    raw.close()
  }

  // synchronous and busy_timeout are per connection: check the store's own connection.
  const store = createStore(databaseUrl) as KyselyStore
  t.after(() => store.close())
  const sync = await sql<{ synchronous: number }>`PRAGMA synchronous`.execute(store.db)
  assert.equal(sync.rows[0]?.synchronous, 2, 'synchronous = FULL (2)')
  const busy = await sql<{ timeout: number }>`PRAGMA busy_timeout`.execute(store.db)
  assert.equal(busy.rows[0]?.timeout, 5000)
  const fk = await sql<{ foreign_keys: number }>`PRAGMA foreign_keys`.execute(store.db)
  assert.equal(fk.rows[0]?.foreign_keys, 1)
})

test('sqlite: migrate creates the parent directory of the database file', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t, 'sqlite')
  assert.ok(databaseUrl !== undefined)
  const nested = databaseUrl.replace(/rest-auth\.db$/, 'a/b/rest-auth.db')
  const result = await runCli(['migrate'], { DATABASE_URL: nested })
  assert.equal(result.code, 0, result.stderr)
})

test('migrate: a bad DATABASE_URL exits 2 naming the variable (config validated at boot)', async () => {
  const result = await runCli(['migrate'], { DATABASE_URL: 'mysql://localhost/x' })
  assert.equal(result.code, 2)
  assert.match(result.stderr, /configuration error: DATABASE_URL/)
})
