import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, SqliteDialect } from 'kysely'
import type { Database } from '../schema.ts'

/** `sqlite:./data/rest-auth.db` → absolute path (`:memory:` is kept for tools, not for serving). */
export function sqlitePath(databaseUrl: string): string {
  const path = databaseUrl.slice('sqlite:'.length)
  return path === ':memory:' ? path : resolve(path)
}

/**
 * One connection (better-sqlite3 is synchronous; Kysely serialises access). Pragmas from the
 * security baseline: WAL, synchronous=FULL (NORMAL can lose the last commits on power loss),
 * busy_timeout 5000 ms, foreign keys on.
 */
export function createSqliteDb(databaseUrl: string): Kysely<Database> {
  const path = sqlitePath(databaseUrl)
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const database = new SQLite(path)
  database.pragma('journal_mode = WAL')
  database.pragma('synchronous = FULL')
  database.pragma('busy_timeout = 5000')
  database.pragma('foreign_keys = ON')
  return new Kysely<Database>({ dialect: new SqliteDialect({ database }) })
}
