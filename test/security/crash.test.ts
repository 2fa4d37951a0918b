/**
 * Crash safety of the real process (`rest-auth serve` as a child): a burst of parallel registrations,
 * SIGKILL in the middle of it, a restart on the same database. Every registration the server
 * acknowledged with 201 must survive and log in (security baseline "SQLite": WAL + synchronous=FULL lose
 * nothing on an application crash; PostgreSQL commits before it answers), no account may be half-written,
 * and the SQLite file must pass `PRAGMA integrity_check`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import SQLite from 'better-sqlite3'
import { freePort, startCliServer, type CliServer } from '../helpers/cli.ts'
import { FAST_ARGON2 } from '../helpers/server.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'
import { STRONG } from '../http/support.ts'
import type { TestContext } from 'node:test'

const BURST = 60
/** SIGKILL once this many registrations were acknowledged: well inside the burst. */
const KILL_AFTER = 15

type Outcome = { readonly kind: 'answered'; readonly status: number; readonly body: string } | { readonly kind: 'lost'; readonly error: string }

/** POST /api/users on a connection of its own (agent: false), as independent clients would. */
function register(url: string, username: string): Promise<Outcome> {
  const payload = Buffer.from(JSON.stringify({ username, password: STRONG }))
  return new Promise((resolve) => {
    const req = request(`${url}/api/users`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
    })
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')))
    req.on('error', (e) => resolve({ kind: 'lost', error: e.message }))
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ kind: 'answered', status: res.statusCode ?? 0, body }))
      res.on('error', (e) => resolve({ kind: 'lost', error: e.message }))
    })
    req.end(payload)
  })
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
}

/** Runs `PRAGMA integrity_check` (and the foreign-key check) on a file no process has open. */
function checkSqliteFile(path: string): { integrity: string; foreignKeyViolations: number; users: number } {
  const db = new SQLite(path)
  try {
    const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>
    const fk = db.pragma('foreign_key_check') as unknown[]
    const users = (db.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n
    return { integrity: rows.map((r) => r.integrity_check).join('\n'), foreignKeyViolations: fk.length, users }
  } finally {
    db.close()
  }
}

async function serve(t: TestContext, databaseUrl: string, extra: Readonly<Record<string, string>> = {}): Promise<CliServer> {
  const port = await freePort()
  return startCliServer(t, {
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: 'warn',
      // One process, so that SIGKILL ends the server (a cluster primary's workers would outlive it).
      WORKERS: '1',
      // 60 registrations from one address would meet the 10/h registration limit.
      AUTH_RATE_LIMITS: 'off',
      // Default argon2 parameters (m=19456 KiB, t=2): each registration hashes for tens of ms, two at a
      // time (AUTH_HASH_CONCURRENCY), so the burst lasts about a second and the kill lands inside it.
      ...extra,
    },
    readyTimeoutMs: 40_000,
  })
}

for (const kind of STORES) {
  test(`${kind}: kill -9 in the middle of ${BURST} parallel registrations loses no acknowledged account; restart serves them all (security baseline "SQLite"/"Postgres", contract: ids never reused)`, async (t) => {
    const databaseUrl = await freshDatabaseUrl(t, kind)
    if (databaseUrl === undefined) return
    const sqliteFile = kind === 'sqlite' ? databaseUrl.slice('sqlite:'.length) : undefined

    const first = await serve(t, databaseUrl)
    const names = Array.from({ length: BURST }, (_, i) => `crash${String(i).padStart(2, '0')}`)
    let acknowledged = 0
    let killedAt: number | undefined
    let killing: Promise<void> | undefined
    const outcomes = await Promise.all(
      names.map(async (name) => {
        const outcome = await register(first.url, name)
        if (outcome.kind === 'answered' && outcome.status === 201) {
          acknowledged++
          if (acknowledged === KILL_AFTER && killing === undefined) {
            killedAt = acknowledged
            killing = first.kill() // SIGKILL: no shutdown hook runs
          }
        }
        return [name, outcome] as const
      }),
    )
    await killing
    const exit = await first.exited
    assert.equal(exit.signal, 'SIGKILL', `the server died of SIGKILL, not on its own (exit ${JSON.stringify(exit)}):\n${first.stderr().slice(-3000)}\n${first.stdout().slice(-3000)}`)

    const ok = outcomes.filter(([, o]) => o.kind === 'answered' && o.status === 201).map(([n, o]) => [n, o] as const)
    const lost = outcomes.filter(([, o]) => o.kind === 'lost').map(([n]) => n)
    const otherAnswers = outcomes.filter(([, o]) => o.kind === 'answered' && o.status !== 201)
    assert.equal(killedAt, KILL_AFTER, 'the kill was sent')
    assert.deepEqual(otherAnswers, [], 'before the kill every answer was a 201')
    assert.ok(ok.length >= KILL_AFTER, `${ok.length} acknowledged`)
    assert.ok(lost.length > 0, `the kill must land inside the burst (all ${BURST} were answered before it)`)
    t.diagnostic(`${ok.length} registrations acknowledged, ${lost.length} cut off by the kill`)

    if (sqliteFile !== undefined) {
      // The file as the crash left it (the WAL is replayed on open, as the restarted server would).
      const afterCrash = checkSqliteFile(sqliteFile)
      assert.equal(afterCrash.integrity, 'ok')
      assert.equal(afterCrash.foreignKeyViolations, 0)
      assert.ok(afterCrash.users >= ok.length, `${afterCrash.users} users on disk, ${ok.length} acknowledged`)
      assert.ok(afterCrash.users <= BURST)
    }

    // The restarted server may hash faster (stored hashes keep their own parameters; none is below policy).
    const second = await serve(t, databaseUrl, FAST_ARGON2)
    assert.notEqual(second.port, first.port)
    const ids = new Set<number>()
    for (const [name, outcome] of ok) {
      assert.ok(outcome.kind === 'answered')
      const created = JSON.parse(outcome.body) as { id: number; username: string }
      assert.equal(created.username, name)
      ids.add(created.id)
      const res = await fetch(`${second.url}/api/resource`, { headers: { authorization: basic(name, STRONG) } })
      assert.equal(res.status, 200, `${name} (acknowledged before the kill) logs in after the restart: ${await res.text()}`)
      const byId = await fetch(`${second.url}/api/users/${created.id}`)
      assert.deepEqual(await byId.json(), { id: created.id, username: name }, `${name} keeps its id`)
    }
    assert.equal(ids.size, ok.length, 'no two acknowledged registrations share an id')

    // Registrations cut off by the kill were either committed whole (the name is taken and logs in) or not at
    // all (the name registers now, under a fresh id): never half an account.
    for (const name of lost) {
      const again = await register(second.url, name)
      assert.ok(again.kind === 'answered', `${name}: ${again.kind === 'lost' ? again.error : ''}`)
      if (again.status === 201) {
        const { id } = JSON.parse(again.body) as { id: number }
        assert.ok(!ids.has(id), `${name} got id ${id}, which an acknowledged account already has (ids never reused)`)
        ids.add(id)
      } else {
        assert.equal(again.status, 400, again.body)
        assert.equal((JSON.parse(again.body) as { code: string }).code, 'username_taken', again.body)
      }
      const res = await fetch(`${second.url}/api/resource`, { headers: { authorization: basic(name, STRONG) } })
      assert.equal(res.status, 200, `${name} logs in: ${await res.text()}`)
    }

    second.child.kill('SIGTERM')
    const stopped = await second.exited
    assert.equal(stopped.code, 0, second.stderr())
    if (sqliteFile !== undefined) {
      const afterRestart = checkSqliteFile(sqliteFile)
      assert.equal(afterRestart.integrity, 'ok')
      assert.equal(afterRestart.foreignKeyViolations, 0)
      assert.equal(afterRestart.users, BURST, 'every name is registered exactly once')
    }
  })
}
