/**
 * The STORES matrix: every store test and HTTP test runs against a fresh SQLite file and, when
 * PostgreSQL is reachable, a fresh schema of its own (`ra_test_<uuid>`, dropped CASCADE after).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import type { TestContext } from 'node:test'
import pg from 'pg'
import { PG_URL, postgresReachable } from './services.ts'

export type StoreKind = 'sqlite' | 'postgres'
export const STORES: readonly StoreKind[] = ['sqlite', 'postgres']

/** A fresh database URL for one test, cleaned up after it; `undefined` when the test was skipped. */
export async function freshDatabaseUrl(t: TestContext, kind: StoreKind): Promise<string | undefined> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'rest-auth-test-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    return `sqlite:${join(dir, 'rest-auth.db')}`
  }
  if (!(await postgresReachable())) {
    t.skip(`PostgreSQL unreachable at ${new URL(PG_URL).host}`)
    return undefined
  }
  const schema = `ra_test_${randomUUID().replace(/-/g, '')}`
  t.after(async () => {
    const client = new pg.Client({ connectionString: PG_URL })
    await client.connect()
    try {
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    } finally {
      await client.end()
    }
  })
  const url = new URL(PG_URL)
  url.searchParams.set('schema', schema)
  return url.toString()
}
