/**
 * Three instances on ONE PostgreSQL database (README "Performance and caches", "Running on
 * PostgreSQL"): each caches users, revocations and verified tokens in memory, and reads the
 * database's change log every AUTH_STATE_POLL_MS (250 ms). A change made on one instance must reach
 * the others within the poll interval; these tests allow 1 s (four polls) and never call sync(): they
 * measure real propagation, polling every 20 ms, and report the latency they saw (t.diagnostic).
 *
 * The last test shares rate-limit counters through Redis (REDIS_URL) and uses a username and client
 * address of its own (TRUST_PROXY), deleting its keys afterwards, since Redis outlives test runs.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import pg from 'pg'
import { CLI_ACTOR } from '../../src/audit/audit.ts'
import { CachingStore } from '../../src/state/caching-store.ts'
import { createStore } from '../../src/store/kysely-store.ts'
import { rotateSigningKey } from '../../src/tokens/rotation.ts'
import { type RequestOptions, startServer, type TestServer } from '../helpers/server.ts'
import { REDIS_URL, redisReachable } from '../helpers/redis.ts'
import { PG_URL } from '../helpers/services.ts'
import { expectJson, expectProblem, headerOf, registerOk, STRONG, tokenOf } from '../http/support.ts'

/** The bound these tests hold the design to: four polls of the default 250 ms. */
const LIMIT_MS = 1_000
const EVERY_MS = 20
const NEW_PASSWORD = 'plaid elephant cobbles the river'
const BOSS = ['boss', STRONG] as const

type Instances = readonly [TestServer, TestServer, TestServer]

/** A, B and C: three app instances (three pools, three caches, three feeds) on one PostgreSQL schema. */
async function threeInstances(t: TestContext, env: Readonly<Record<string, string>> = {}): Promise<Instances | undefined> {
  const a = await startServer(t, { store: 'postgres', env })
  if (a === undefined) return undefined
  const b = await startServer(t, { store: 'postgres', env, databaseUrl: a.databaseUrl })
  const c = await startServer(t, { store: 'postgres', env, databaseUrl: a.databaseUrl })
  assert.ok(b !== undefined && c !== undefined)
  for (const srv of [a, b, c]) {
    assert.equal(srv.config.statePollMs, 250, 'the default poll interval')
    assert.ok(srv.runtime.store instanceof CachingStore, 'the instance reads through its cache')
  }
  return [a, b, c]
}

/** "200", or "401 token_revoked" for a problem answer: what a probe saw. */
async function outcome(pending: Promise<Response>): Promise<string> {
  const res = await pending
  const text = await res.text()
  if (res.ok) return String(res.status)
  let code = ''
  try {
    const body: unknown = JSON.parse(text)
    if (typeof body === 'object' && body !== null && 'code' in body && typeof body.code === 'string') code = body.code
  } catch {
    code = '(not JSON)'
  }
  return `${res.status} ${code}`
}

/**
 * Polls `probe` every 20 ms from `since` (performance.now() when the change was acknowledged) until it
 * answers `want`; returns the latency in ms, or undefined when `limitMs` passed first.
 */
async function observe(probe: () => Promise<string>, want: string, since: number, limitMs: number): Promise<{ ms: number | undefined; last: string }> {
  let last = ''
  for (;;) {
    last = await probe()
    const elapsed = performance.now() - since
    if (last === want) return { ms: Math.round(elapsed), last }
    if (elapsed >= limitMs) return { ms: undefined, last }
    await delay(EVERY_MS)
  }
}

/** `observe` within 1 s, reported as a diagnostic; the test fails past 1 s. */
async function propagates(t: TestContext, label: string, since: number, probe: () => Promise<string>, want: string): Promise<number> {
  const { ms, last } = await observe(probe, want, since, LIMIT_MS)
  if (ms === undefined) {
    t.diagnostic(`${label}: NOT propagated within ${LIMIT_MS} ms (still ${last})`)
    assert.fail(`${label}: expected ${want} within ${LIMIT_MS} ms, still ${last}`)
  }
  t.diagnostic(`${label}: ${ms} ms`)
  return ms
}

function resource(srv: TestServer, auth: RequestOptions): Promise<string> {
  return outcome(srv.get('/api/resource', auth))
}

function makeAdmin(srv: TestServer): Promise<unknown> {
  return srv.runtime.accounts.create(CLI_ACTOR, { username: BOSS[0], password: BOSS[1], roles: ['admin'] })
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  const text = await res.text()
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status}: ${text}`)
}

test('three instances: a token used on A, B and C and revoked on A (DELETE /api/token) is refused on B and C within 1 s (RFC 7009 §2.1)', async (t) => {
  const three = await threeInstances(t)
  if (three === undefined) return
  const [a, b, c] = three
  await registerOk(a, 'miguel')
  const token = await tokenOf(a, { basic: ['miguel', STRONG] })
  const kept = await tokenOf(b, { basic: ['miguel', STRONG] })
  for (const srv of three) {
    // twice, so the second is answered from the instance's caches (verified token, user, "not revoked")
    for (let i = 0; i < 2; i++) assert.equal(await resource(srv, { bearer: token }), '200')
    assert.equal(await resource(srv, { bearer: kept }), '200')
  }

  await expectStatus(await a.request('DELETE', '/api/token', { bearer: token }), 204, 'logout on A')
  const since = performance.now()
  await expectProblem(await a.get('/api/resource', { bearer: token }), 401, 'token_revoked')
  await Promise.all(
    (
      [
        ['B', b],
        ['C', c],
      ] as const
    ).map(([name, srv]) => propagates(t, `revocation on A → refused on ${name}`, since, () => resource(srv, { bearer: token }), '401 token_revoked')),
  )
  // only that token: the user's other token still works everywhere
  for (const srv of three) assert.equal(await resource(srv, { bearer: kept }), '200')
})

test('three instances: log out everywhere (DELETE /api/tokens) on B reaches A and C within 1 s', async (t) => {
  const three = await threeInstances(t)
  if (three === undefined) return
  const [a, b, c] = three
  await registerOk(a, 'miguel')
  const tokens = [await tokenOf(a, { basic: ['miguel', STRONG] }), await tokenOf(c, { basic: ['miguel', STRONG] })]
  for (const srv of three) for (const token of tokens) assert.equal(await resource(srv, { bearer: token }), '200')

  await expectStatus(await b.request('DELETE', '/api/tokens', { bearer: tokens[0] }), 204, 'log out everywhere on B')
  const since = performance.now()
  for (const token of tokens) assert.equal(await resource(b, { bearer: token }), '401 token_revoked', 'at once on B')
  const probes: Array<Promise<number>> = []
  for (const [name, srv] of [
    ['A', a],
    ['C', c],
  ] as const) {
    tokens.forEach((token, i) => {
      probes.push(propagates(t, `log out everywhere on B → token ${i + 1} refused on ${name}`, since, () => resource(srv, { bearer: token }), '401 token_revoked'))
    })
  }
  await Promise.all(probes)
  // a fresh login afterwards works on every instance
  const fresh = await tokenOf(a, { basic: ['miguel', STRONG] })
  for (const srv of three) assert.equal(await resource(srv, { bearer: fresh }), '200')
})

test('three instances: a user disabled by an admin on A loses its cached token and cached Basic credentials on B and C within 1 s', async (t) => {
  const three = await threeInstances(t)
  if (three === undefined) return
  const [a, b, c] = three
  await makeAdmin(a)
  const user = await registerOk(a, 'miguel')
  const token = await tokenOf(b, { basic: ['miguel', STRONG] })
  for (const srv of [b, c]) {
    for (let i = 0; i < 2; i++) {
      assert.equal(await resource(srv, { bearer: token }), '200')
      // the first Basic success fills the credential cache (AUTH_CREDENTIAL_CACHE_TTL), the second uses it
      assert.equal(await resource(srv, { basic: ['miguel', STRONG] }), '200')
    }
  }

  await expectJson(await a.post(`/api/admin/users/${user.id}/disable`, { basic: BOSS }), 200)
  const since = performance.now()
  assert.equal(await resource(a, { bearer: token }), '401 token_revoked', 'at once on A')
  assert.equal(await resource(a, { basic: ['miguel', STRONG] }), '403 account_disabled', 'at once on A')
  const probes: Array<Promise<number>> = []
  for (const [name, srv] of [
    ['B', b],
    ['C', c],
  ] as const) {
    probes.push(propagates(t, `disable on A → token refused on ${name}`, since, () => resource(srv, { bearer: token }), '401 token_revoked'))
    probes.push(propagates(t, `disable on A → Basic refused on ${name}`, since, () => resource(srv, { basic: ['miguel', STRONG] }), '403 account_disabled'))
  }
  await Promise.all(probes)
})

test('three instances: a role change on C (adding admin) opens /api/admin/users to the user\'s token on A and B within 1 s, and removing it closes it again', async (t) => {
  const three = await threeInstances(t)
  if (three === undefined) return
  const [a, b, c] = three
  await makeAdmin(c)
  const user = await registerOk(a, 'miguel')
  const token = await tokenOf(a, { basic: ['miguel', STRONG] })
  const adminList = (srv: TestServer) => outcome(srv.get('/api/admin/users', { bearer: token }))
  for (const srv of [a, b]) for (let i = 0; i < 2; i++) assert.equal(await adminList(srv), '403 role_required')

  const setRoles = async (roles: string[]) => {
    const body = await expectJson<{ roles: string[] }>(await c.request('PUT', `/api/admin/users/${user.id}/roles`, { basic: BOSS, json: { roles } }), 200)
    assert.deepEqual(body.roles, roles)
    return performance.now()
  }
  const each = (since: number, want: string, what: string) =>
    Promise.all(
      (
        [
          ['A', a],
          ['B', b],
        ] as const
      ).map(([name, srv]) => propagates(t, `${what} on C → ${want} on ${name}`, since, () => adminList(srv), want)),
    )

  const granted = await setRoles(['admin'])
  assert.equal(await adminList(c), '200', 'at once on C')
  await each(granted, '200', 'admin granted')

  const withdrawn = await setRoles([])
  assert.equal(await adminList(c), '403 role_required', 'at once on C')
  await each(withdrawn, '403 role_required', 'admin withdrawn')
})

test('three instances: a signing key rotated in the shared database (keys rotate --activate-in 0) is published by all three within 1 s, and tokens issued afterwards on any instance verify on the others (RFC 7517)', async (t) => {
  const three = await threeInstances(t)
  if (three === undefined) return
  const [a, b, c] = three
  await registerOk(a, 'miguel')
  const kidsOf = async (srv: TestServer) => (await expectJson<{ keys: Array<{ kid: string }> }>(await srv.get('/.well-known/jwks.json'), 200)).keys.map((k) => k.kid)
  const oldKids = await kidsOf(a)
  assert.equal(oldKids.length, 1, 'one key before the rotation')
  const older = await tokenOf(a, { basic: ['miguel', STRONG] })
  for (const srv of three) assert.equal(await resource(srv, { bearer: older }), '200')

  // what `rest-auth keys rotate --activate-in 0` does: its own connection to the database, no server involved
  const cli = createStore(a.databaseUrl)
  t.after(() => cli.close())
  const verifyWindowMs = (a.config.tokenTtl + a.config.clockLeeway) * 1000
  const key = await rotateSigningKey(cli, Date.now(), 0, verifyWindowMs)
  const since = performance.now()
  assert.ok(!oldKids.includes(key.kid))

  await Promise.all(
    (
      [
        ['A', a],
        ['B', b],
        ['C', c],
      ] as const
    ).map(([name, srv]) =>
      propagates(t, `rotation → new kid in ${name}'s JWKS`, since, async () => ((await kidsOf(srv)).includes(key.kid) ? 'published' : 'absent'), 'published'),
    ),
  )
  for (const srv of three) {
    const kids = await kidsOf(srv)
    assert.ok(kids.includes(key.kid) && oldKids.every((kid) => kids.includes(kid)), 'the retired key is still published (it still verifies)')
  }

  for (const [name, issuer] of [
    ['A', a],
    ['B', b],
    ['C', c],
  ] as const) {
    const token = await tokenOf(issuer, { basic: ['miguel', STRONG] })
    assert.equal(headerOf(token).kid, key.kid, `${name} signs with the new key`)
    for (const verifier of three) assert.equal(await resource(verifier, { bearer: token }), '200', `a token issued on ${name} verifies everywhere`)
  }
  // a token signed before the rotation still verifies (the old key is retired, not gone)
  for (const srv of three) assert.equal(await resource(srv, { bearer: older }), '200')
})

test('three instances: a password changed on A (PUT /api/users/me/password) stops the old password, cached on B, within 1 s', async (t) => {
  const three = await threeInstances(t)
  if (three === undefined) return
  const [a, b] = three
  await registerOk(a, 'miguel')
  for (let i = 0; i < 2; i++) assert.equal(await resource(b, { basic: ['miguel', STRONG] }), '200')

  await expectJson(
    await a.request('PUT', '/api/users/me/password', { basic: ['miguel', STRONG], json: { current_password: STRONG, new_password: NEW_PASSWORD } }),
    200,
  )
  const since = performance.now()
  assert.equal(await resource(a, { basic: ['miguel', STRONG] }), '401 invalid_credentials', 'at once on A')
  await propagates(t, 'password change on A → old password refused on B', since, () => resource(b, { basic: ['miguel', STRONG] }), '401 invalid_credentials')
  assert.equal(await resource(b, { basic: ['miguel', NEW_PASSWORD] }), '200', 'the new password works on B')
})

/**
 * PostgreSQL hands out identity values when a row is inserted, not when its transaction commits: a
 * change-log row written by a transaction that commits late has a lower id than rows other
 * transactions committed meanwhile. A reader that keeps only "the highest id seen" must still apply it.
 * The slow transaction is made deterministic by locking a table the disable writes after its log row.
 */
test('three instances: a change whose transaction commits after a later-numbered change still reaches B and C within 1 s (PostgreSQL identity order is not commit order)', async (t) => {
  const three = await threeInstances(t)
  if (three === undefined) return
  const [a, b, c] = three
  await makeAdmin(a)
  const victim = await registerOk(a, 'victim')
  await registerOk(a, 'bystander')
  const victimToken = await tokenOf(a, { basic: ['victim', STRONG] })
  // one bystander token logged out on C (B reads it from the log), one on B (C reads it from the log)
  const loggedOutOnC = await tokenOf(a, { basic: ['bystander', STRONG] })
  const loggedOutOnB = await tokenOf(a, { basic: ['bystander', STRONG] })
  for (const srv of [b, c]) {
    for (const token of [victimToken, loggedOutOnC, loggedOutOnB]) assert.equal(await resource(srv, { bearer: token }), '200')
  }

  const schema = new URL(a.databaseUrl).searchParams.get('schema')
  assert.ok(schema !== null)
  const locker = new pg.Client({ connectionString: PG_URL })
  await locker.connect()
  t.after(() => locker.end())
  await locker.query('BEGIN')
  await locker.query(`LOCK TABLE "${schema}".refresh_families IN EXCLUSIVE MODE`)
  let locked = true
  const release = async () => {
    if (!locked) return
    locked = false
    await locker.query('COMMIT')
  }
  // A's disable: UPDATE users, INSERT its change-log row (its id is taken now), then waits on refresh_families
  const disabling = a.post(`/api/admin/users/${victim.id}/disable`, { basic: BOSS })
  try {
    const waiting = await observe(
      async () => {
        const { rows } = await locker.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_locks WHERE relation = to_regclass($1) AND NOT granted', [
          `"${schema}".refresh_families`,
        ])
        return rows[0]?.n === 1 ? 'waiting' : 'running'
      },
      'waiting',
      performance.now(),
      5_000,
    )
    assert.ok(waiting.ms !== undefined, 'the disable on A waits on the lock, after writing its change-log row')

    // meanwhile C and B each log out another token: later ids, committed first; once B and C each
    // refuse the token the other one logged out, both feeds have read past the disable's id
    await expectStatus(await c.request('DELETE', '/api/token', { bearer: loggedOutOnC }), 204, 'logout on C')
    await expectStatus(await b.request('DELETE', '/api/token', { bearer: loggedOutOnB }), 204, 'logout on B')
    const laterSince = performance.now()
    await Promise.all([
      propagates(t, 'later-numbered change (logout on C) → refused on B', laterSince, () => resource(b, { bearer: loggedOutOnC }), '401 token_revoked'),
      propagates(t, 'later-numbered change (logout on B) → refused on C', laterSince, () => resource(c, { bearer: loggedOutOnB }), '401 token_revoked'),
    ])
  } finally {
    await release()
  }
  await expectJson(await disabling, 200)
  const since = performance.now()
  assert.equal(await resource(a, { bearer: victimToken }), '401 token_revoked', 'at once on A')

  const seen = await Promise.all(
    (
      [
        ['B', b],
        ['C', c],
      ] as const
    ).map(async ([name, srv]) => {
      // watch past the 1 s bound (up to the 5 s re-read of cached entries) to report when it did arrive
      const { ms, last } = await observe(() => resource(srv, { bearer: victimToken }), '401 token_revoked', since, 6_000)
      t.diagnostic(`disable committed late on A → victim's token refused on ${name}: ${ms === undefined ? `never within 6000 ms (still ${last})` : `${ms} ms`}`)
      return [name, ms] as const
    }),
  )
  for (const [name, ms] of seen) {
    assert.ok(ms !== undefined && ms <= LIMIT_MS, `${name}: the disabled user's token was still accepted ${LIMIT_MS} ms after the disable committed (refused after ${ms ?? 'more than 6000'} ms)`)
  }
})

// ---- shared rate-limit counters (Redis) ----

const PREFIX = 'rest-auth:rl:'

async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    found.push(...batch)
  } while (cursor !== '0')
  return found
}

/** An address from 198.18.0.0/15 (RFC 2544 benchmarking) that no other run is likely to use. */
function uniqueAddress(): string {
  return `198.${18 + randomInt(2)}.${randomInt(256)}.${1 + randomInt(254)}`
}

test('three instances, REDIS_URL: 5 wrong passwords spread over A, B and C → the next attempt is 429 on every instance (security baseline "Login throttling", NIST SP 800-63B-4 §3.2.2)', async (t) => {
  if (!(await redisReachable())) {
    t.skip(`Redis unreachable at ${new URL(REDIS_URL).host}`)
    return
  }
  const username = `scale-${randomBytes(6).toString('hex')}`
  const from = uniqueAddress()
  let userKeys: string[] = []
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  t.after(async () => {
    const keys = [...(await scanKeys(redis, `${PREFIX}*:${from}`)), ...userKeys]
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  const three = await threeInstances(t, { AUTH_RATE_LIMITS: 'on', REDIS_URL, TRUST_PROXY: '127.0.0.1' })
  if (three === undefined) return
  const [a, b, c] = three
  const headers = { 'x-forwarded-for': from }
  const attempt = (srv: TestServer, password: string) => srv.get('/api/resource', { basic: [username, password], headers })

  await expectJson(await a.request('POST', '/api/users', { json: { username, password: STRONG }, headers }), 201)
  const spread = [a, b, c, a, b] as const
  for (const [i, srv] of spread.entries()) await expectStatus(await attempt(srv, 'not the password at all'), 401, `failure ${i + 1}`)

  // the username's own key, for the clean-up, before anything else can fail
  const pairKeys = await scanKeys(redis, `${PREFIX}login:pair:*:${from}`)
  assert.equal(pairKeys.length, 1, `one pair key for the address: ${pairKeys.join(', ')}`)
  const digest = (pairKeys[0] ?? '').slice(`${PREFIX}login:pair:`.length, -(from.length + 1))
  userKeys = [`${PREFIX}login:user:${digest}`]
  assert.equal(await redis.hget(`${PREFIX}login:user:${digest}`, 'c'), '5', 'one counter holds the failures of all three instances')

  for (const [name, srv] of [
    ['A', a],
    ['B', b],
    ['C', c],
  ] as const) {
    const res = await attempt(srv, STRONG)
    const retryAfter = res.headers.get('retry-after')
    await expectProblem(res, 429, 'too_many_attempts')
    assert.match(retryAfter ?? '', /^[1-9]\d*$/, `${name}: Retry-After`)
    assert.doesNotMatch(srv.logs(), /Redis unreachable/, `${name} counted in Redis, not in its fallback`)
  }
})
