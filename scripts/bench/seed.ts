/**
 * Bulk-inserts N users straight into a migrated database (no server running), all with one argon2id
 * hash of `password` computed once at the server's default parameters, in transactions of 10,000 rows.
 * Usernames are `seed1` ... `seedN`, so a caller can name existing users without a lookup.
 */
import { hash } from '@node-rs/argon2'
import type { Algorithm } from '@node-rs/argon2'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { seedUsername } from './spec.ts'

export { seedUsername }

/** The server's defaults (src/config/schema.ts: AUTH_ARGON2_MEMORY/ITERATIONS/PARALLELISM; OWASP floor). */
export const DEFAULT_ARGON2 = { memoryCost: 19_456, timeCost: 2, parallelism: 1, outputLen: 32 } as const
/** `Algorithm.Argon2id` is a `const enum` in the typings, which `verbatimModuleSyntax` cannot inline. */
const ARGON2ID = 2 as Algorithm

export const SEED_BATCH = 10_000

export interface SeedResult {
  readonly users: number
  readonly hashMs: number
  readonly insertMs: number
  readonly usersPerSecond: number
}

export type SeedTarget = { readonly kind: 'sqlite'; readonly path: string } | { readonly kind: 'postgres'; readonly url: string; readonly schema: string }

export async function seedUsers(target: SeedTarget, count: number, password: string, progress: (done: number) => void): Promise<SeedResult> {
  const t0 = performance.now()
  // NFKC normalisation (what the server applies) leaves an ASCII password unchanged
  const passwordHash = await hash(password, { algorithm: ARGON2ID, ...DEFAULT_ARGON2 })
  const hashMs = performance.now() - t0
  const t1 = performance.now()
  if (target.kind === 'sqlite') seedSqlite(target.path, count, passwordHash, progress)
  else await seedPostgres(target.url, target.schema, count, passwordHash, progress)
  const insertMs = performance.now() - t1
  return { users: count, hashMs, insertMs, usersPerSecond: count / (insertMs / 1000) }
}

function seedSqlite(path: string, count: number, passwordHash: string, progress: (done: number) => void): void {
  const db = new SQLite(path)
  try {
    db.pragma('journal_mode = WAL')
    // seeding a throw-away benchmark database: durability of each batch does not matter
    db.pragma('synchronous = NORMAL')
    const insert = db.prepare(
      `INSERT INTO users (username, username_canonical, password_hash, created_at, updated_at, status, roles, tokens_valid_after)
       VALUES (?, ?, ?, ?, ?, 'active', '', 0)`,
    )
    const now = Date.now()
    const batch = db.transaction((from: number, to: number) => {
      for (let i = from; i <= to; i++) {
        const name = seedUsername(i)
        insert.run(name, name.toLowerCase(), passwordHash, now, now)
      }
    })
    for (let from = 1; from <= count; from += SEED_BATCH) {
      const to = Math.min(count, from + SEED_BATCH - 1)
      batch(from, to)
      progress(to)
    }
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.exec('ANALYZE')
  } finally {
    db.close()
  }
}

async function seedPostgres(url: string, schema: string, count: number, passwordHash: string, progress: (done: number) => void): Promise<void> {
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` })
  await client.connect()
  try {
    const now = Date.now()
    for (let from = 1; from <= count; from += SEED_BATCH) {
      const to = Math.min(count, from + SEED_BATCH - 1)
      const names: string[] = []
      for (let i = from; i <= to; i++) names.push(seedUsername(i))
      await client.query('BEGIN')
      await client.query(
        `INSERT INTO users (username, username_canonical, password_hash, created_at, updated_at, status, roles, tokens_valid_after)
         SELECT u, lower(u), $1, $2, $2, 'active', '', 0 FROM unnest($3::text[]) AS u`,
        [passwordHash, now, names],
      )
      await client.query('COMMIT')
      progress(to)
    }
    await client.query('ANALYZE users')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  } finally {
    await client.end()
  }
}

/** Drops the benchmark's PostgreSQL schema (and everything in it). */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  if (!/^bench_[a-z0-9_]+$/.test(schema)) throw new Error(`refusing to drop schema ${schema}`)
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, statement_timeout: 15_000 })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}
