/**
 * Database outage (security baseline "Revocation … fail closed"; README: `/readyz` answers
 * `503 database_unavailable` when the database does not answer). The app runs on PostgreSQL through a TCP
 * proxy that the test controls: with the proxy down every database-backed request gets a generic 503
 * problem (never a 200 for a token whose revocation state cannot be read, never a 500 that leaks driver
 * text), and once the proxy is back the same process serves again, with no restart.
 *
 * The app may keep hot reads in memory (users, revocation state) and trust them only while its change
 * feed has read the database recently; a request inside that window may still be answered from memory,
 * so the tests wait (bounded) for the first 503 and then require 503 for every database-backed route.
 *
 * SQLite is embedded: an open handle cannot be "unreachable", and chmod or unlink do not affect it. What
 * does happen in production is another process holding the write lock (a backup tool, the sqlite3 shell,
 * a second instance). That is simulated honestly, with a second connection's `BEGIN EXCLUSIVE`: writes wait
 * `busy_timeout` (5 s) and then get the same 503; reads go on (WAL), and writes work again once the lock is
 * released.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, createServer, type Server, type Socket } from 'node:net'
import SQLite from 'better-sqlite3'
import { freePort, startCliServer } from '../helpers/cli.ts'
import { basicHeader, FAST_ARGON2, startServer, type TestServer } from '../helpers/server.ts'
import { PG_URL } from '../helpers/services.ts'
import { freshDatabaseUrl } from '../helpers/stores.ts'
import { assertNoInternals, checkProblemText, expectJson, registerOk, STRONG, tokenOf } from '../http/support.ts'

/** A TCP proxy to PostgreSQL that can be taken down (listener closed, every socket destroyed) and brought back on the same port. */
class ControlledProxy {
  readonly #targetHost: string
  readonly #targetPort: number
  #server: Server | undefined
  readonly #sockets = new Set<Socket>()
  readonly #pairs = new Set<{ readonly client: Socket; readonly upstream: Socket }>()
  port = 0

  constructor(targetHost: string, targetPort: number) {
    this.#targetHost = targetHost
    this.#targetPort = targetPort
  }

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.#targetPort, this.#targetHost)
      for (const s of [client, upstream]) {
        this.#sockets.add(s)
        s.on('close', () => this.#sockets.delete(s))
        s.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }
      const pair = { client, upstream }
      this.#pairs.add(pair)
      client.on('close', () => this.#pairs.delete(pair))
      client.pipe(upstream)
      upstream.pipe(client)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    assert.ok(address !== null && typeof address !== 'string')
    this.port = address.port
    this.#server = server
  }

  /**
   * The outage: nothing listens on the port any more and every open connection is cut. `settleMs` lets
   * the app's idle pooled connections see the cut before the next request (a connection cut while a query
   * is in flight is the subject of its own test below).
   */
  async stop(settleMs = 0): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
    if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs))
  }

  /**
   * PostgreSQL stops answering on every open connection (its replies are held back), as during a
   * failover: whatever query the app sends now stays in flight.
   */
  freeze(): void {
    for (const { client, upstream } of this.#pairs) {
      upstream.unpipe(client)
      upstream.pause()
    }
  }

  get openConnections(): number {
    return this.#sockets.size
  }
}

/** Time for idle pooled connections to notice a cut (the connection is idle: nothing is in flight). */
const SETTLE_MS = 300

/**
 * Lets the app's own background queries of start-up and of the last requests (expired-row purge, key
 * refresh, change-log poll) finish, so that the cut finds the pool idle. A cut in the middle of a query is
 * the subject of its own test below.
 */
const quiet = () => new Promise((r) => setTimeout(r, 700))

/** No request of these tests may hang: a stuck database call must become an answer, not a wait. */
const REQUEST_TIMEOUT_MS = 20_000

function get(srv: TestServer, path: string, auth: { basic?: readonly [string, string]; bearer?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = {}
  if (auth.basic !== undefined) headers['authorization'] = basicHeader(auth.basic[0], auth.basic[1])
  if (auth.bearer !== undefined) headers['authorization'] = `Bearer ${auth.bearer}`
  return fetch(srv.url + path, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
}

function registerRequest(url: string, username: string): Promise<Response> {
  return fetch(`${url}/api/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: STRONG }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
}

const DB_TEXT = /ECONNREFUSED|ECONNRESET|Connection terminated|127\.0\.0\.1|5432|postgres|SELECT|INSERT|relation|ra_test_|SQLITE|database is locked|kysely|pg-pool/i

/** A 503 problem+json with a generic body: code database_unavailable (or the generic internal_error text), no internals. */
async function expectUnavailable(res: Response, label: string, secrets: readonly string[] = []): Promise<void> {
  const text = await res.text()
  assert.equal(res.status, 503, `${label}: expected 503, got ${res.status}: ${text}`)
  const problem = checkProblemText(text, res.headers.get('content-type'), 503)
  assert.ok(['database_unavailable', 'internal_error'].includes(problem.code), `${label}: code ${problem.code}`)
  assertNoInternals(text)
  assert.doesNotMatch(text, DB_TEXT, `${label}: database or driver text in the body: ${text}`)
  for (const secret of secrets) assert.ok(!text.includes(secret), `${label}: a credential is echoed`)
  assert.match(res.headers.get('retry-after') ?? '', /^\d+$/, `${label}: Retry-After`)
}

/** Polls `probe` until it answers 503 (the outage is noticed), for at most `ms`; returns how long it took. */
async function until503(probe: () => Promise<Response>, ms: number): Promise<number> {
  const start = Date.now()
  let last = ''
  while (Date.now() - start < ms) {
    const res = await probe()
    const text = await res.text()
    if (res.status === 503) return Date.now() - start
    assert.ok(res.status < 500, `a 5xx other than 503 during the outage: ${res.status} ${text}`)
    last = `${res.status} ${text}`
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.fail(`still no 503 ${ms} ms into the outage; last answer: ${last}`)
}

/** Polls `probe` until it answers 200, for at most `ms`; returns how long it took. */
async function until200(probe: () => Promise<Response>, ms: number): Promise<number> {
  const start = Date.now()
  let last = ''
  while (Date.now() - start < ms) {
    try {
      const res = await probe()
      const text = await res.text()
      if (res.status === 200) return Date.now() - start
      last = `${res.status} ${text}`
    } catch (error) {
      last = String(error)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.fail(`no 200 within ${ms} ms; last answer: ${last}`)
}

test('postgres: database outage → /readyz and database-backed routes answer a generic 503 (fail closed), and the same process recovers when the database returns (README "/readyz", security baseline "Revocation")', async (t) => {
  const direct = await freshDatabaseUrl(t, 'postgres')
  if (direct === undefined) return
  const target = new URL(PG_URL)
  const proxy = new ControlledProxy(target.hostname, Number(target.port || 5432))
  await proxy.start()
  t.after(() => proxy.stop())
  const viaProxy = new URL(direct)
  viaProxy.hostname = '127.0.0.1'
  viaProxy.port = String(proxy.port)

  const srv = await startServer(t, { store: 'postgres', databaseUrl: viaProxy.toString() })
  assert.ok(srv !== undefined)
  await registerOk(srv, 'miguel')
  const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
  assert.deepEqual(await expectJson(await get(srv, '/api/resource', { basic: ['miguel', STRONG] }), 200), { data: 'Hello, miguel!' })
  assert.equal((await get(srv, '/api/resource', { bearer: token })).status, 200)
  assert.deepEqual(await expectJson(await get(srv, '/readyz'), 200), { status: 'ready' })
  assert.ok(proxy.openConnections > 0, 'the app talks to PostgreSQL through the proxy')

  // ---- outage ----
  await quiet()
  await proxy.stop(SETTLE_MS)
  await expectUnavailable(await get(srv, '/readyz'), 'GET /readyz')
  const noticed = await until503(() => get(srv, '/api/resource', { basic: ['miguel', STRONG] }), 5_000)
  t.diagnostic(`password route answered 503 ${noticed} ms into the outage`)
  await expectUnavailable(await get(srv, '/api/resource', { basic: ['miguel', STRONG] }), 'GET /api/resource (password)', [STRONG])
  await expectUnavailable(await get(srv, '/api/token', { basic: ['miguel', STRONG] }), 'GET /api/token (password)', [STRONG])
  // A token whose revocation state cannot be read is not accepted (fail closed).
  await expectUnavailable(await get(srv, '/api/resource', { bearer: token }), 'GET /api/resource (Bearer)', [token])
  await expectUnavailable(await get(srv, '/api/token', { bearer: token }), 'GET /api/token (Bearer renewal)', [token])
  await expectUnavailable(await registerRequest(srv.url, 'susan'), 'POST /api/users', [STRONG])
  // Liveness does not depend on the database.
  assert.equal((await get(srv, '/healthz')).status, 200)
  // Operators learn what happened from the log (the client does not).
  assert.match(srv.logs(), /"code":"database_unavailable"/)

  // ---- the database comes back on the same address; the app is not restarted ----
  await proxy.start()
  const took = await until200(() => get(srv, '/api/resource', { basic: ['miguel', STRONG] }), 10_000)
  t.diagnostic(`recovered ${took} ms after the proxy came back`)
  assert.deepEqual(await expectJson(await get(srv, '/readyz'), 200), { status: 'ready' })
  assert.equal((await get(srv, '/api/resource', { bearer: token })).status, 200, 'the old token works again')
  await registerOk(srv, 'susan')
  const fresh = await tokenOf(srv, { basic: ['susan', STRONG] })
  assert.deepEqual(await expectJson(await get(srv, '/api/resource', { bearer: fresh }), 200), { data: 'Hello, susan!' })
})

test('postgres: a second outage after recovery is handled the same way (the pool does not keep dead connections)', async (t) => {
  const direct = await freshDatabaseUrl(t, 'postgres')
  if (direct === undefined) return
  const target = new URL(PG_URL)
  const proxy = new ControlledProxy(target.hostname, Number(target.port || 5432))
  await proxy.start()
  t.after(() => proxy.stop())
  const viaProxy = new URL(direct)
  viaProxy.hostname = '127.0.0.1'
  viaProxy.port = String(proxy.port)
  const srv = await startServer(t, { store: 'postgres', databaseUrl: viaProxy.toString() })
  assert.ok(srv !== undefined)
  await registerOk(srv, 'miguel')
  // Several pooled connections in use at once, so several die at the cut.
  const parallel = await Promise.all(Array.from({ length: 6 }, () => get(srv, '/api/resource', { basic: ['miguel', STRONG] })))
  assert.deepEqual(parallel.map((r) => r.status), [200, 200, 200, 200, 200, 200])
  for (let round = 1; round <= 2; round++) {
    await quiet()
    await proxy.stop(SETTLE_MS)
    await until503(() => get(srv, '/api/resource', { basic: ['miguel', STRONG] }), 5_000)
    const during = await Promise.all(Array.from({ length: 4 }, () => get(srv, '/api/resource', { basic: ['miguel', STRONG] })))
    for (const res of during) await expectUnavailable(res, `round ${round}`)
    await proxy.start()
    await until200(() => get(srv, '/readyz'), 10_000)
    // Every request after recovery succeeds: no stale connection is handed out.
    const probes: Array<Promise<Response>> = Array.from({ length: 8 }, () => get(srv, '/api/resource', { basic: ['miguel', STRONG] }))
    const after = await Promise.all(probes)
    assert.deepEqual(after.map((r) => r.status), [200, 200, 200, 200, 200, 200, 200, 200], `round ${round}`)
  }
})

test('postgres: the connection dies while a query is in flight → that request gets 503 and the server process survives (fail closed, never a crash)', async (t) => {
  const direct = await freshDatabaseUrl(t, 'postgres')
  if (direct === undefined) return
  const target = new URL(PG_URL)
  const proxy = new ControlledProxy(target.hostname, Number(target.port || 5432))
  await proxy.start()
  t.after(() => proxy.stop())
  const viaProxy = new URL(direct)
  viaProxy.hostname = '127.0.0.1'
  viaProxy.port = String(proxy.port)
  // The real process (rest-auth serve), so a crash is a crash and not a test-runner report.
  const server = await startCliServer(t, {
    env: {
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      DATABASE_URL: viaProxy.toString(),
      LOG_LEVEL: 'warn',
      AUTH_RATE_LIMITS: 'off',
      ...FAST_ARGON2,
    },
    readyTimeoutMs: 40_000,
  })
  const post = (username: string) => registerRequest(server.url, username)
  assert.equal((await post('miguel')).status, 201)
  assert.equal((await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).status, 200)

  // PostgreSQL stops answering; queries sent now stay in flight; then every connection is cut.
  proxy.freeze()
  const inFlight = [fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }), post('susan')].map((p) =>
    p.then(
      async (res) => ({ status: res.status, body: await res.text(), contentType: res.headers.get('content-type') }),
      (error: unknown) => ({ status: 0, body: String(error), contentType: null }),
    ),
  )
  await new Promise((r) => setTimeout(r, 500))
  await proxy.stop()
  const answers = await Promise.all(inFlight)
  const died = await Promise.race([server.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 1_000))])
  assert.equal(died, false, `the server process died when its database connections were cut mid-query:\n${server.stderr().slice(-2000)}`)
  for (const a of answers) {
    assert.equal(a.status, 503, `an in-flight request during the cut: ${a.status} ${a.body}`)
    checkProblemText(a.body, a.contentType, 503)
    assert.doesNotMatch(a.body, DB_TEXT)
  }
  assert.equal((await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).status, 200)

  await proxy.start()
  await until200(() => fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }), 10_000)
  assert.equal((await post('susan')).status, 201)
})

test('sqlite: another process holding the write lock → writes answer a generic 503 after busy_timeout, reads go on, writes recover when it is released (security baseline "SQLite" busy_timeout 5000 ms)', async (t) => {
  const srv: TestServer | undefined = await startServer(t, { store: 'sqlite' })
  assert.ok(srv !== undefined)
  await registerOk(srv, 'miguel')
  const file = srv.databaseUrl.slice('sqlite:'.length)

  const locker = new SQLite(file)
  t.after(() => {
    if (locker.open) locker.close()
  })
  locker.pragma('busy_timeout = 0')
  locker.exec('BEGIN EXCLUSIVE')
  try {
    const started = Date.now()
    await expectUnavailable(await registerRequest(srv.url, 'susan'), 'POST /api/users under a held write lock', [STRONG])
    const waited = Date.now() - started
    assert.ok(waited >= 4_000, `the write waited busy_timeout first (${waited} ms)`)
    // WAL: readers are not blocked by a writer.
    assert.deepEqual(await expectJson(await get(srv, '/api/resource', { basic: ['miguel', STRONG] }), 200), { data: 'Hello, miguel!' })
    assert.deepEqual(await expectJson(await get(srv, '/readyz'), 200), { status: 'ready' })
  } finally {
    locker.exec('ROLLBACK')
    locker.close()
  }
  const after = await registerRequest(srv.url, 'susan')
  assert.equal(after.status, 201, await after.text())
  assert.equal((await get(srv, '/api/resource', { basic: ['susan', STRONG] })).status, 200)
})
