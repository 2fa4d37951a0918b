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
  const fresh = await freshDatabase(t, kind)
  if (fresh === undefined) return undefined
  t.after(fresh.drop)
  return fresh.url
}

/**
 * A fresh database URL and the function that removes it, for callers that must stop using it first
 * (startServer closes its server, then drops: dropping a schema under a live server races its queries,
 * and a failed after-hook would leave the server running and the test process unable to exit).
 * Undefined when the kind is unavailable and the test was skipped.
 */
export async function freshDatabase(t: TestContext, kind: StoreKind): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'rest-auth-test-'))
    return { url: `sqlite:${join(dir, 'rest-auth.db')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) }
  }
  if (!(await postgresReachable())) {
    t.skip(`PostgreSQL unreachable at ${new URL(PG_URL).host}`)
    return undefined
  }
  const schema = `ra_test_${randomUUID().replace(/-/g, '')}`
  const drop = async () => {
    // A connection of the test's own that is still open can deadlock with DROP ... CASCADE: retry.
    for (let attempt = 1; ; attempt++) {
      const client = new pg.Client({ connectionString: PG_URL })
      await client.connect()
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
        return
      } catch (error) {
        const code = (error as { code?: unknown }).code
        if (attempt >= 5 || (code !== '40P01' && code !== '55P03')) throw error
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt))
      } finally {
        await client.end()
      }
    }
  }
  const url = new URL(PG_URL)
  url.searchParams.set('schema', schema)
  return { url: url.toString(), drop }
}
