/**
 * PostgreSQL LISTEN/NOTIFY wakes the ChangeFeed (src/store/dialects/postgres.ts watchChanges,
 * src/state/feed.ts): with polling set to once a minute, a change committed through another store
 * reaches the feed's listener in well under a second, only changes of the feed's own schema wake it,
 * a rolled-back change notifies nobody, and a listening connection killed by the server is opened
 * again, with what was missed meanwhile read at the reconnect. Needs PostgreSQL (skipped loudly
 * otherwise; a failure under REQUIRE_SERVICES=1).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { sql } from 'kysely'
import { systemClock } from '../../src/clock.ts'
import { ChangeFeed } from '../../src/state/feed.ts'
import { listenerApplicationName, parsePostgresUrl } from '../../src/store/dialects/postgres.ts'
import type { KyselyStore } from '../../src/store/kysely-store.ts'
import type { StateChange } from '../../src/store/store.ts'
import { freshStore } from '../helpers/fresh-store.ts'

const NEVER_BY_ITSELF = 60_000

interface Watched {
  readonly feed: ChangeFeed
  readonly seen: StateChange[]
  readonly states: boolean[]
}

async function watched(t: TestContext, store: KyselyStore): Promise<Watched> {
  const seen: StateChange[] = []
  const states: boolean[] = []
  const feed = new ChangeFeed(store, systemClock, {
    pollMs: NEVER_BY_ITSELF,
    staleMs: NEVER_BY_ITSELF * 2,
    onListening: (listening) => states.push(listening),
  })
  feed.onChange((change) => seen.push(change))
  await feed.start()
  t.after(() => feed.stop())
  await until(() => states.at(-1) === true, 5_000, 'the listener connected')
  return { feed, seen, states }
}

async function until(check: () => boolean, ms: number, what: string): Promise<number> {
  const start = performance.now()
  while (!check()) {
    if (performance.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`)
    await delay(5)
  }
  return performance.now() - start
}

async function pgStores(t: TestContext) {
  const fresh = await freshStore(t, 'postgres')
  if (fresh === undefined) return undefined
  return fresh
}

test('postgres LISTEN/NOTIFY: a revocation committed through another store wakes the feed at once (no poll for a minute)', async (t) => {
  const fresh = await pgStores(t)
  if (fresh === undefined) return
  const w = await watched(t, fresh.store)
  const other = fresh.openAnother()
  const started = performance.now()
  await other.revokeJti('jti-notify-1', 'user:1', Date.now() + 60_000, Date.now())
  await until(() => w.seen.some((c) => c.kind === 'jti' && c.ref === 'jti-notify-1'), 1_000, 'the change reached the feed')
  t.diagnostic(`revocation → feed listener: ${Math.round(performance.now() - started)} ms from the start of the write`)
})

test('postgres LISTEN/NOTIFY: another schema’s changes do not wake this feed; a rolled-back change notifies nobody', async (t) => {
  const a = await pgStores(t)
  if (a === undefined) return
  const b = await pgStores(t)
  assert.ok(b !== undefined)
  const w = await watched(t, a.store)
  const polls: number[] = []
  // observe (not replace) the feed's reads of its change log
  const original = a.store.changesSince.bind(a.store)
  a.store.changesSince = async (afterId, limit) => {
    polls.push(afterId)
    return original(afterId, limit)
  }
  await b.store.revokeJti('jti-elsewhere', 'user:1', Date.now() + 60_000, Date.now())
  await delay(300)
  assert.equal(polls.length, 0, 'a change in another schema did not make this feed read its log')

  // a transaction that logs a change and rolls back: nothing is delivered
  await assert.rejects(
    a.openAnother().db.transaction().execute(async (trx) => {
      await sql`SELECT pg_notify('rest_auth_changes', current_schema())`.execute(trx)
      throw new Error('roll back')
    }),
    /roll back/,
  )
  await delay(300)
  assert.equal(polls.length, 0, 'a rolled-back notification was never delivered')
  assert.equal(w.seen.length, 0)
})

test('postgres LISTEN/NOTIFY: a listening connection killed by the server is reported, opened again, and what was missed meanwhile is read', async (t) => {
  const fresh = await pgStores(t)
  if (fresh === undefined) return
  const w = await watched(t, fresh.store)
  const admin = fresh.openAnother()
  const name = listenerApplicationName(parsePostgresUrl(fresh.databaseUrl).schema)
  const killed = await sql<{ n: number }>`
    SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = ${name}`.execute(admin.db)
  assert.ok((killed.rows[0]?.n ?? 0) >= 1, 'found and terminated the listening connection')
  await until(() => w.states.includes(false), 5_000, 'the loss was reported')
  // written while the listener is down: must be read when it comes back, not at the next poll
  await admin.revokeJti('jti-while-down', 'user:1', Date.now() + 60_000, Date.now())
  await until(() => w.states.at(-1) === true && w.states.lastIndexOf(true) > w.states.indexOf(false), 5_000, 'the listener reconnected')
  await until(() => w.seen.some((c) => c.ref === 'jti-while-down'), 2_000, 'the change missed while down was read at the reconnect')
  await admin.revokeJti('jti-after', 'user:1', Date.now() + 60_000, Date.now())
  await until(() => w.seen.some((c) => c.ref === 'jti-after'), 1_000, 'notifications flow again after the reconnect')
})
