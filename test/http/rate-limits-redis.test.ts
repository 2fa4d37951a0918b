/**
 * Shared rate-limit counters (REDIS_URL): several instances count one login throttle, the Redis keys
 * never hold a username, and an unreachable Redis falls back to per-process counters instead of
 * failing logins or letting them through unlimited (security baseline "Login throttling": the limit
 * must hold across instances; NIST SP 800-63B-4 §3.2.2).
 *
 * Redis is shared between test runs: each test uses its own username and client address (through
 * TRUST_PROXY) and deletes the keys it created.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import { Redis } from 'ioredis'
import { type Counter, type CounterStore, MemoryCounterStore } from '../../src/ratelimit/counters.ts'
import { FailoverCounterStore, RedisCounterStore } from '../../src/store/redis/counters.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { REDIS_URL, redisReachable } from '../helpers/redis.ts'
import { expectJson, expectProblem, manualClock, STRONG } from './support.ts'

const PREFIX = 'rest-auth:rl:'
const WRONG = 'not the password at all'
const CLOSED_PORT_URL = 'redis://127.0.0.1:1'

async function requireRedis(t: TestContext): Promise<boolean> {
  if (await redisReachable()) return true
  t.skip(`Redis unreachable at ${new URL(REDIS_URL).host}`)
  return false
}

/** A client of the test's own, closed after the test; deletes every key `keys()` names then. */
function redisFor(t: TestContext, keys: () => Promise<string[]>): Redis {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  t.after(async () => {
    const list = await keys()
    if (list.length > 0) await redis.del(...list)
    await redis.quit()
  })
  return redis
}

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

function uniqueUsername(): string {
  return `rl-${randomBytes(6).toString('hex')}`
}

function attempt(srv: TestServer, username: string, password: string, from: string): Promise<Response> {
  return srv.get('/api/resource', { basic: [username, password], headers: { 'x-forwarded-for': from } })
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  const text = await res.text()
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status}: ${text}`)
}

async function expectThrottled(res: Response): Promise<void> {
  const retryAfter = res.headers.get('retry-after')
  await expectProblem(res, 429, 'too_many_attempts')
  assert.match(retryAfter ?? '', /^[1-9]\d*$/)
}

test('REDIS_URL: two instances share one login count: 3 failures on A + 2 on B → the next attempt on either is 429 (security baseline "Login throttling", NIST SP 800-63B-4 §3.2.2)', async (t) => {
  if (!(await requireRedis(t))) return
  const username = uniqueUsername()
  const from = uniqueAddress()
  let userKeys: string[] = []
  const redis = redisFor(t, async () => [...(await scanKeys(redis, `${PREFIX}*:${from}`)), ...userKeys])
  const env = { AUTH_RATE_LIMITS: 'on', REDIS_URL, TRUST_PROXY: '127.0.0.1' }
  const a = await startServer(t, { store: 'sqlite', env })
  if (!a) return
  const b = await startServer(t, { store: 'sqlite', env, databaseUrl: a.databaseUrl })
  if (!b) return

  await expectJson(await a.request('POST', '/api/users', { json: { username, password: STRONG }, headers: { 'x-forwarded-for': from } }), 201)
  for (let i = 1; i <= 3; i++) await expectStatus(await attempt(a, username, WRONG, from), 401, `A, failure ${i}`)
  for (let i = 4; i <= 5; i++) await expectStatus(await attempt(b, username, WRONG, from), 401, `B, failure ${i}`)

  // Remember the username's own key for the clean-up before asserting anything else.
  const pairKeys = await scanKeys(redis, `${PREFIX}login:pair:*:${from}`)
  assert.equal(pairKeys.length, 1, `one pair key for the address: ${pairKeys.join(', ')}`)
  const digest = (pairKeys[0] ?? '').slice(`${PREFIX}login:pair:`.length, -(from.length + 1))
  userKeys = [`${PREFIX}login:user:${digest}`]
  assert.equal(await redis.hget(`${PREFIX}login:user:${digest}`, 'c'), '5', 'the username counter holds both instances\' failures')

  await expectThrottled(await attempt(b, username, STRONG, from))
  await expectThrottled(await attempt(a, username, STRONG, from))
  for (const [name, srv] of [['A', a], ['B', b]] as const) {
    assert.doesNotMatch(srv.logs(), /Redis unreachable/, `instance ${name} counted in Redis, not in its fallback`)
  }
  // Another address is not affected (the pair limit is per address).
  await expectJson(await attempt(a, username, STRONG, uniqueAddressUnlike(from)), 200)
})

function uniqueAddressUnlike(address: string): string {
  for (;;) {
    const other = uniqueAddress()
    if (other !== address) return other
  }
}

test('REDIS_URL: a success on one instance resets the pair for every instance (NIST SP 800-63B-4 §3.2.2: reset on success from the same address)', async (t) => {
  if (!(await requireRedis(t))) return
  const username = uniqueUsername()
  const from = uniqueAddress()
  let userKeys: string[] = []
  const redis = redisFor(t, async () => [...(await scanKeys(redis, `${PREFIX}*:${from}`)), ...userKeys])
  const env = { AUTH_RATE_LIMITS: 'on', REDIS_URL, TRUST_PROXY: '127.0.0.1' }
  const a = await startServer(t, { store: 'sqlite', env })
  if (!a) return
  const b = await startServer(t, { store: 'sqlite', env, databaseUrl: a.databaseUrl })
  if (!b) return
  await expectJson(await a.request('POST', '/api/users', { json: { username, password: STRONG }, headers: { 'x-forwarded-for': from } }), 201)
  for (let i = 1; i <= 4; i++) await expectStatus(await attempt(a, username, WRONG, from), 401, `A, failure ${i}`)
  const pairKeys = await scanKeys(redis, `${PREFIX}login:pair:*:${from}`)
  const digest = (pairKeys[0] ?? '').slice(`${PREFIX}login:pair:`.length, -(from.length + 1))
  userKeys = [`${PREFIX}login:user:${digest}`]
  await expectJson(await attempt(b, username, STRONG, from), 200)
  for (let i = 1; i <= 4; i++) await expectStatus(await attempt(a, username, WRONG, from), 401, `A, failure ${i} after B's success`)
})

test('REDIS_URL: the Redis keys hold a digest of the username, never the name itself (throttle.ts: keys are visible to operators)', async (t) => {
  if (!(await requireRedis(t))) return
  const username = uniqueUsername()
  const from = uniqueAddress()
  let userKeys: string[] = []
  const redis = redisFor(t, async () => [...(await scanKeys(redis, `${PREFIX}*:${from}`)), ...userKeys])
  const srv = await startServer(t, { store: 'sqlite', env: { AUTH_RATE_LIMITS: 'on', REDIS_URL, TRUST_PROXY: '127.0.0.1' } })
  if (!srv) return
  await expectStatus(await attempt(srv, username, WRONG, from), 401, 'one failure')
  const pairKeys = await scanKeys(redis, `${PREFIX}login:pair:*:${from}`)
  assert.equal(pairKeys.length, 1)
  const digest = (pairKeys[0] ?? '').slice(`${PREFIX}login:pair:`.length, -(from.length + 1))
  userKeys = [`${PREFIX}login:user:${digest}`]
  assert.match(digest, /^[A-Za-z0-9_-]{16,}$/, `a digest, got ${digest}`)
  assert.equal(await redis.exists(`${PREFIX}login:user:${digest}`), 1)
  assert.equal(await redis.exists(`${PREFIX}login:ip:${from}`), 1)
  const named = await scanKeys(redis, `*${username}*`)
  assert.deepEqual(named, [], 'no key names the username')
})

test('RedisCounterStore: a fixed window keeps its end, a sliding one moves, reset forgets, like the memory store', async (t) => {
  if (!(await requireRedis(t))) return
  const tag = randomBytes(6).toString('hex')
  const fixed = `test:${tag}:fixed`
  const sliding = `test:${tag}:sliding`
  const redis = redisFor(t, async () => [PREFIX + fixed, PREFIX + sliding])
  const store = new RedisCounterStore(REDIS_URL)
  t.after(() => store.close())
  await untilConnected(store)
  const now = Date.now()
  const first = await store.hit(fixed, 60_000, now)
  assert.equal(first.count, 1)
  assert.equal(first.lastAt, now)
  assert.ok(first.resetAt > now + 59_000 && first.resetAt <= now + 60_000, `resetAt ${first.resetAt - now} ms ahead`)
  await new Promise((resolve) => setTimeout(resolve, 30))
  const second = await store.hit(fixed, 60_000, now + 10_000)
  assert.equal(second.count, 2)
  const left = await redis.pttl(PREFIX + fixed)
  assert.ok(left > 0 && left <= 60_000 - 25, `a fixed window does not move with later hits (PTTL ${left})`)
  const read = await store.get(fixed, now + 10_000)
  assert.equal(read?.count, 2)
  assert.equal(read?.lastAt, now + 10_000)

  await store.hit(sliding, 2_000, now, true)
  const moved = await store.hit(sliding, 60_000, now, true)
  assert.ok((await redis.pttl(PREFIX + sliding)) > 50_000, `sliding expiry was pushed: ${moved.resetAt - now} ms`)

  await store.reset(fixed)
  assert.equal(await store.get(fixed, now), undefined)
  assert.equal(await store.get(`test:${tag}:never`, now), undefined)
})

/**
 * The store refuses commands until its connection is up (enableOfflineQueue: false, by design: no
 * request waits on Redis), so a test that talks to it directly waits for the first PONG.
 */
async function untilConnected(store: RedisCounterStore): Promise<void> {
  const deadline = Date.now() + 3_000
  for (;;) {
    try {
      await store.ping()
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
}

// ---- failover ----

test('FailoverCounterStore: a RedisCounterStore on a closed port falls back to memory, keeps counting, never throws, and reports degraded once', async () => {
  const reports: Array<{ degraded: boolean; error: unknown }> = []
  const store = new FailoverCounterStore(new RedisCounterStore(CLOSED_PORT_URL), new MemoryCounterStore(), (degraded, error) =>
    reports.push({ degraded, error }),
  )
  const now = 1_750_000_000_000
  try {
    const counts: Counter[] = []
    for (let i = 0; i < 5; i++) counts.push(await store.hit('login:pair:x:203.0.113.1', 60_000, now + i))
    assert.deepEqual(
      counts.map((c) => c.count),
      [1, 2, 3, 4, 5],
    )
    assert.equal((await store.get('login:pair:x:203.0.113.1', now + 10))?.count, 5)
    await store.reset('login:pair:x:203.0.113.1')
    assert.equal(await store.get('login:pair:x:203.0.113.1', now + 10), undefined)
    assert.equal(reports.length, 1, `reported once, got ${reports.length}`)
    assert.equal(reports[0]?.degraded, true)
    assert.ok(reports[0]?.error instanceof Error, 'the report carries the cause')
  } finally {
    await store.close()
  }
})

/** A memory store that throws while `down` (an outage that ends), to see both reports. */
class FlakyStore implements CounterStore {
  down = true
  readonly #inner = new MemoryCounterStore()
  #check(): void {
    if (this.down) throw new Error('connection refused')
  }
  async hit(key: string, ttlMs: number, now: number, sliding?: boolean): Promise<Counter> {
    this.#check()
    return this.#inner.hit(key, ttlMs, now, sliding)
  }
  async get(key: string, now: number): Promise<Counter | undefined> {
    this.#check()
    return this.#inner.get(key, now)
  }
  async unhit(key: string): Promise<void> {
    this.#check()
    await this.#inner.unhit(key)
  }
  async reset(key: string): Promise<void> {
    this.#check()
    await this.#inner.reset(key)
  }
  async close(): Promise<void> {
    await this.#inner.close()
  }
}

test('FailoverCounterStore: reports degraded once per outage and recovered once when the primary answers again', async () => {
  const primary = new FlakyStore()
  const reports: boolean[] = []
  const store = new FailoverCounterStore(primary, new MemoryCounterStore(), (degraded) => reports.push(degraded))
  const now = 1_750_000_000_000
  for (let i = 0; i < 3; i++) await store.hit('k', 60_000, now)
  assert.deepEqual(reports, [true])
  primary.down = false
  assert.equal((await store.hit('k', 60_000, now)).count, 1, 'the primary counts again from its own state')
  await store.get('k', now)
  assert.deepEqual(reports, [true, false])
  primary.down = true
  await store.get('k', now)
  await store.get('k', now)
  assert.deepEqual(reports, [true, false, true])
  await store.close()
})

test('REDIS_URL unreachable: logins are still throttled by the per-process counters and the outage is logged once (security baseline "Login throttling")', async (t) => {
  const clock = manualClock()
  const srv = await startServer(t, { store: 'sqlite', env: { AUTH_RATE_LIMITS: 'on', REDIS_URL: CLOSED_PORT_URL }, clock })
  if (!srv) return
  await expectJson(await srv.register('miguel', STRONG), 201)
  for (let i = 1; i <= 5; i++) {
    const res = await srv.get('/api/resource', { basic: ['miguel', WRONG] })
    await expectStatus(res, 401, `failure ${i}`)
  }
  await expectThrottled(await srv.get('/api/resource', { basic: ['miguel', STRONG] }))
  const outages = srv.logs().split('\n').filter((line) => line.includes('Redis unreachable'))
  assert.equal(outages.length, 1, `one log line for the outage, got ${outages.length}`)
  clock.advance(15 * 60)
  await expectJson(await srv.get('/api/resource', { basic: ['miguel', STRONG] }), 200)
})
