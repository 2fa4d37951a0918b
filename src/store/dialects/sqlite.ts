import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import SQLite from 'better-sqlite3'
import { CompiledQuery, Kysely, SqliteDialect, SqliteDriver } from 'kysely'
import type { DatabaseConnection, Driver, SqliteDialectConfig } from 'kysely'
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
  return new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database }) })
}

/**
 * Every transaction starts with `BEGIN IMMEDIATE`: it takes the database's write lock at once, and
 * waits for it in busy_timeout when another process (a cluster worker, the CLI) holds it. Kysely's
 * plain `BEGIN` is deferred: a transaction that reads before it writes (refresh-token rotation) holds
 * a read snapshot, and when another process commits in between, its first write fails at once with
 * SQLITE_BUSY / SQLITE_BUSY_SNAPSHOT; SQLite cannot wait there, since waiting could deadlock. With two
 * workers rotating refresh tokens, 4 rotations in 5 failed that way (503). Every transaction in the
 * store writes, so taking the lock up front costs nothing, and within one process the single
 * connection already runs one transaction at a time.
 */
export class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig

  constructor(config: SqliteDialectConfig) {
    super(config)
    this.#config = config
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config)
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
}
