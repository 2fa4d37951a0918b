/**
 * The rate-limit policy (pure) and the in-memory counters it reads: security baseline "Login
 * throttling" and "Other limits" (NIST SP 800-63B-4 §3.2.2, OWASP Authentication CS, Keycloak
 * brute-force defaults), Retry-After as whole seconds (RFC 9110 §10.2.3).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { type Counter, MemoryCounterStore } from '../../src/ratelimit/counters.ts'
import {
  judgeLogin,
  LOGIN_LIMITS,
  type LoginCounters,
  REFRESH_LIMIT,
  REGISTRATION_LIMIT,
  retryAfterSeconds,
  userDelayMs,
} from '../../src/ratelimit/policy.ts'

const NOW = 1_750_000_000_000
const MIN = 60_000

function counter(count: number, resetAt: number, lastAt = NOW): Counter {
  return { count, resetAt, lastAt }
}

const NONE: LoginCounters = { pair: undefined, user: undefined, ip: undefined }

// ---- the numbers ----

test('limits: the baseline numbers (pair 5/15 min, username delay after 10 in 60 s steps up to 15 min, stop at 100, reset 12 h, address 100/10 min)', () => {
  assert.deepEqual(LOGIN_LIMITS, {
    pairMax: 5,
    pairWindowMs: 15 * MIN,
    userDelayAfter: 10,
    userDelayStepMs: MIN,
    userDelayMaxMs: 15 * MIN,
    userStopAt: 100,
    userResetMs: 12 * 60 * MIN,
    ipMax: 100,
    ipWindowMs: 10 * MIN,
  })
  assert.deepEqual(REGISTRATION_LIMIT, { name: 'register', max: 10, windowMs: 60 * MIN })
  assert.deepEqual(REFRESH_LIMIT, { name: 'refresh', max: 150, windowMs: 5 * MIN })
})

// ---- judgeLogin: the (username, address) pair ----

test('judgeLogin: no counters → allowed (NIST SP 800-63B-4 §3.2.2)', () => {
  assert.deepEqual(judgeLogin(NONE, NOW), { allowed: true })
})

test('judgeLogin: pair below 5 failures → allowed; at 5 → refused until the pair window ends (security baseline "Login throttling")', () => {
  const resetAt = NOW + 15 * MIN
  for (let count = 1; count < 5; count++) {
    assert.deepEqual(judgeLogin({ ...NONE, pair: counter(count, resetAt) }, NOW), { allowed: true }, `count ${count}`)
  }
  for (const count of [5, 6, 50]) {
    assert.deepEqual(judgeLogin({ ...NONE, pair: counter(count, resetAt) }, NOW), { allowed: false, reason: 'pair', retryAt: resetAt })
  }
  // The refusal lasts until resetAt, not from the last failure.
  assert.deepEqual(judgeLogin({ ...NONE, pair: counter(5, resetAt, NOW - 14 * MIN) }, NOW), {
    allowed: false,
    reason: 'pair',
    retryAt: resetAt,
  })
})

// ---- the username alone: progressive delay, then a stop ----

test('userDelayMs: none below 10 failures, then 60 s, 120 s, … capped at 15 min (security baseline "Login throttling", Keycloak defaults)', () => {
  for (let n = 0; n < 10; n++) assert.equal(userDelayMs(n), 0, `failures ${n}`)
  assert.equal(userDelayMs(10), 60_000)
  assert.equal(userDelayMs(11), 120_000)
  assert.equal(userDelayMs(12), 180_000)
  assert.equal(userDelayMs(23), 14 * MIN)
  assert.equal(userDelayMs(24), 15 * MIN)
  assert.equal(userDelayMs(25), 15 * MIN)
  assert.equal(userDelayMs(99), 15 * MIN)
  assert.equal(userDelayMs(10_000), 15 * MIN)
})

test('userDelayMs: never decreases and never exceeds 15 min (NIST SP 800-63B-4 §3.2.2: waits, not lockout)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1_000 }), (n) => {
      const d = userDelayMs(n)
      assert.ok(d >= 0 && d <= 15 * MIN)
      assert.ok(userDelayMs(n + 1) >= d)
    }),
  )
})

test('judgeLogin: 9 username failures → no delay; 10 → refused until 60 s after the last failure (security baseline "Login throttling")', () => {
  const resetAt = NOW + 12 * 60 * MIN
  assert.deepEqual(judgeLogin({ ...NONE, user: counter(9, resetAt, NOW) }, NOW), { allowed: true })
  const last = NOW - 20_000
  assert.deepEqual(judgeLogin({ ...NONE, user: counter(10, resetAt, last) }, NOW), {
    allowed: false,
    reason: 'user_delay',
    retryAt: last + 60_000,
  })
  // Once the delay has passed, the attempt is checked again.
  assert.deepEqual(judgeLogin({ ...NONE, user: counter(10, resetAt, NOW - 60_000) }, NOW), { allowed: true })
  assert.deepEqual(judgeLogin({ ...NONE, user: counter(11, resetAt, NOW - 60_000) }, NOW), {
    allowed: false,
    reason: 'user_delay',
    retryAt: NOW + 60_000,
  })
  // 99 failures: at most 15 min of waiting, never a stop.
  assert.deepEqual(judgeLogin({ ...NONE, user: counter(99, resetAt, NOW - 15 * MIN) }, NOW), { allowed: true })
})

test('judgeLogin: 100 consecutive username failures → stop until the 12 h reset, however long ago the last one (NIST SP 800-63B-4 §3.2.2: at most 100)', () => {
  const resetAt = NOW + 60 * MIN
  for (const count of [100, 101, 500]) {
    assert.deepEqual(judgeLogin({ ...NONE, user: counter(count, resetAt, NOW - 11 * 60 * MIN) }, NOW), {
      allowed: false,
      reason: 'user_stop',
      retryAt: resetAt,
    })
  }
})

// ---- the address alone: spraying ----

test('judgeLogin: an address with 99 failures → allowed; 100 → refused until the address window ends (security baseline "Login throttling": spraying)', () => {
  const resetAt = NOW + 10 * MIN
  assert.deepEqual(judgeLogin({ ...NONE, ip: counter(99, resetAt) }, NOW), { allowed: true })
  assert.deepEqual(judgeLogin({ ...NONE, ip: counter(100, resetAt) }, NOW), { allowed: false, reason: 'address', retryAt: resetAt })
})

// ---- several rules at once ----

test('judgeLogin: when several rules refuse, the latest retryAt wins (security baseline "Login throttling")', () => {
  const pair = counter(5, NOW + 10 * MIN)
  const ip = counter(100, NOW + 7 * MIN)
  const user = counter(20, NOW + 12 * 60 * MIN, NOW) // delay 11 min from now
  assert.deepEqual(judgeLogin({ pair, user, ip }, NOW), { allowed: false, reason: 'user_delay', retryAt: NOW + 11 * MIN })
  assert.deepEqual(judgeLogin({ pair, user: undefined, ip }, NOW), { allowed: false, reason: 'pair', retryAt: NOW + 10 * MIN })
  const laterIp = counter(100, NOW + 12 * MIN)
  assert.deepEqual(judgeLogin({ pair, user, ip: laterIp }, NOW), { allowed: false, reason: 'address', retryAt: NOW + 12 * MIN })
  const stop = counter(100, NOW + 12 * 60 * MIN, NOW)
  assert.deepEqual(judgeLogin({ pair, user: stop, ip: laterIp }, NOW), {
    allowed: false,
    reason: 'user_stop',
    retryAt: NOW + 12 * 60 * MIN,
  })
})

test('judgeLogin: a refusal names a rule that refuses and the maximum retryAt of all refusing rules (property)', () => {
  const optCounter = (max: number) =>
    fc.option(
      fc.record({
        count: fc.integer({ min: 1, max }),
        resetAt: fc.integer({ min: NOW + 1, max: NOW + 13 * 60 * MIN }),
        lastAt: fc.integer({ min: NOW - 20 * MIN, max: NOW }),
      }),
      { nil: undefined },
    )
  fc.assert(
    fc.property(optCounter(10), optCounter(120), optCounter(120), (pair, user, ip) => {
      const expected: Array<{ reason: string; retryAt: number }> = []
      if (pair !== undefined && pair.count >= 5) expected.push({ reason: 'pair', retryAt: pair.resetAt })
      if (ip !== undefined && ip.count >= 100) expected.push({ reason: 'address', retryAt: ip.resetAt })
      if (user !== undefined) {
        if (user.count >= 100) expected.push({ reason: 'user_stop', retryAt: user.resetAt })
        else if (user.lastAt + userDelayMs(user.count) > NOW) expected.push({ reason: 'user_delay', retryAt: user.lastAt + userDelayMs(user.count) })
      }
      const verdict = judgeLogin({ pair, user, ip }, NOW)
      if (expected.length === 0) {
        assert.deepEqual(verdict, { allowed: true })
        return
      }
      assert.equal(verdict.allowed, false)
      if (verdict.allowed) return
      const latest = Math.max(...expected.map((e) => e.retryAt))
      assert.equal(verdict.retryAt, latest)
      assert.ok(verdict.retryAt > NOW, 'a refusal is always for later')
      assert.ok(
        expected.some((e) => e.reason === verdict.reason && e.retryAt === latest),
        `reason ${verdict.reason} is one of the rules with the latest retryAt`,
      )
    }),
  )
})

// ---- Retry-After ----

test('retryAfterSeconds: whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3)', () => {
  assert.equal(retryAfterSeconds(NOW + 60_000, NOW), 60)
  assert.equal(retryAfterSeconds(NOW + 60_001, NOW), 61)
  assert.equal(retryAfterSeconds(NOW + 1_500, NOW), 2)
  assert.equal(retryAfterSeconds(NOW + 1, NOW), 1)
  assert.equal(retryAfterSeconds(NOW, NOW), 1)
  assert.equal(retryAfterSeconds(NOW - 5_000, NOW), 1)
  fc.assert(
    fc.property(fc.integer({ min: -10 * MIN, max: 13 * 60 * MIN }), (delta) => {
      const s = retryAfterSeconds(NOW + delta, NOW)
      assert.ok(Number.isSafeInteger(s) && s >= 1)
      assert.ok(s * 1000 >= delta, 'never tells the client to come back too early')
    }),
  )
})

// ---- MemoryCounterStore ----

test('MemoryCounterStore: a fixed window keeps its end; it expires exactly at resetAt', async () => {
  const store = new MemoryCounterStore()
  assert.deepEqual(await store.hit('k', 1_000, NOW), { count: 1, resetAt: NOW + 1_000, lastAt: NOW })
  assert.deepEqual(await store.hit('k', 1_000, NOW + 400), { count: 2, resetAt: NOW + 1_000, lastAt: NOW + 400 })
  assert.deepEqual(await store.hit('k', 1_000, NOW + 999), { count: 3, resetAt: NOW + 1_000, lastAt: NOW + 999 })
  assert.deepEqual(await store.get('k', NOW + 999), { count: 3, resetAt: NOW + 1_000, lastAt: NOW + 999 })
  assert.equal(await store.get('k', NOW + 1_000), undefined, 'gone at resetAt')
  // A hit after the end starts a new window.
  assert.deepEqual(await store.hit('k', 1_000, NOW + 1_000), { count: 1, resetAt: NOW + 2_000, lastAt: NOW + 1_000 })
})

test('MemoryCounterStore: a sliding counter ends ttl after its last hit', async () => {
  const store = new MemoryCounterStore()
  await store.hit('s', 1_000, NOW, true)
  assert.deepEqual(await store.hit('s', 1_000, NOW + 800, true), { count: 2, resetAt: NOW + 1_800, lastAt: NOW + 800 })
  assert.equal((await store.get('s', NOW + 1_500))?.count, 2, 'still alive past the first ttl')
  assert.deepEqual(await store.hit('s', 1_000, NOW + 1_700, true), { count: 3, resetAt: NOW + 2_700, lastAt: NOW + 1_700 })
  assert.equal(await store.get('s', NOW + 2_700), undefined)
})

test('MemoryCounterStore: reset forgets one key and only that one', async () => {
  const store = new MemoryCounterStore()
  await store.hit('a', 10_000, NOW)
  await store.hit('a', 10_000, NOW)
  await store.hit('b', 10_000, NOW)
  await store.reset('a')
  assert.equal(await store.get('a', NOW), undefined)
  assert.equal((await store.get('b', NOW))?.count, 1)
  assert.equal((await store.hit('a', 10_000, NOW)).count, 1, 'counting starts over')
  await store.reset('never-set') // no throw
})

test('MemoryCounterStore: bounded by maxKeys; the least recently hit keys go first', async () => {
  const store = new MemoryCounterStore(3)
  await store.hit('a', 60_000, NOW)
  await store.hit('b', 60_000, NOW)
  await store.hit('c', 60_000, NOW)
  await store.hit('a', 60_000, NOW + 1) // a is now the most recent
  await store.hit('d', 60_000, NOW + 2)
  assert.ok(store.size <= 3, `size ${store.size}`)
  assert.equal(await store.get('b', NOW + 3), undefined, 'the least recently hit key was evicted')
  assert.equal((await store.get('a', NOW + 3))?.count, 2)
  assert.equal((await store.get('d', NOW + 3))?.count, 1)
})

test('MemoryCounterStore: many distinct keys never grow it past maxKeys (memory bound under spraying)', async () => {
  const store = new MemoryCounterStore(100)
  for (let i = 0; i < 5_000; i++) {
    await store.hit(`k${i}`, 60_000, NOW + i)
    assert.ok(store.size <= 100, `size ${store.size} after ${i + 1} keys`)
  }
  assert.equal((await store.get('k4999', NOW + 5_000))?.count, 1, 'the newest key is kept')
  await store.close()
  assert.equal(store.size, 0)
})
