/** Access-token claims, pure (RFC 9068 shape; renewal limit from NIST SP 800-63B-4 reauthentication). */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { RestAuthError } from '../../src/errors.ts'
import { buildAccessClaims, type ClaimsInput, userIdFromSub } from '../../src/tokens/claims.ts'

const T = 1_795_000_000 // seconds
const BASE: ClaimsInput = {
  issuer: 'https://auth.example',
  audience: 'https://api.example',
  userId: 42,
  now: T * 1000 + 250,
  authTime: T,
  ttl: 600,
  renewalLimit: 86_400,
  jti: 'jti-1',
}

function renewalLimitError(input: ClaimsInput): void {
  assert.throws(
    () => buildAccessClaims(input),
    (error: unknown) => error instanceof RestAuthError && error.code === 'token_renewal_limit' && error.status === 401,
  )
}

test('claims: iss, aud, sub, iat, exp, jti and auth_time as RFC 9068 §2.2 lists them', () => {
  assert.deepEqual(buildAccessClaims(BASE), {
    iss: 'https://auth.example',
    aud: 'https://api.example',
    sub: '42',
    iat: T,
    exp: T + 600,
    jti: 'jti-1',
    auth_time: T,
  })
})

test('claims: sub is the user id as a string (RFC 7519 §4.1.2 StringOrURI)', () => {
  const claims = buildAccessClaims({ ...BASE, userId: 9_007_199_254_740_991 })
  assert.equal(typeof claims.sub, 'string')
  assert.equal(claims.sub, '9007199254740991')
})

test('claims: iat is whole seconds, rounded down (RFC 7519 §2 NumericDate)', () => {
  assert.equal(buildAccessClaims({ ...BASE, now: T * 1000 + 999 }).iat, T)
  assert.ok(Number.isInteger(buildAccessClaims({ ...BASE, now: T * 1000 + 1 }).exp))
})

test('claims: exp is capped at auth_time + renewal limit (renewal never extends a login)', () => {
  // 100 s before the limit: the token lives 100 s, not the full 600.
  const late = buildAccessClaims({ ...BASE, now: (T + 86_400 - 100) * 1000 })
  assert.equal(late.exp, T + 86_400)
  assert.equal(late.exp - late.iat, 100)
  assert.equal(late.auth_time, T, 'auth_time is kept, not moved to now')
  // One second before the limit.
  assert.equal(buildAccessClaims({ ...BASE, now: (T + 86_399) * 1000 + 999 }).exp, T + 86_400)
})

test('claims: token_renewal_limit is thrown at and after the limit (401)', () => {
  renewalLimitError({ ...BASE, now: (T + 86_400) * 1000 })
  renewalLimitError({ ...BASE, now: (T + 86_400) * 1000 + 999 })
  renewalLimitError({ ...BASE, now: (T + 86_401) * 1000 })
  renewalLimitError({ ...BASE, now: (T + 10 * 86_400) * 1000 })
  renewalLimitError({ ...BASE, authTime: T - 86_400 })
})

test('claims property: exp ≤ auth_time + renewal limit and iat < exp whenever a token is issued', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 200_000 }), // seconds since auth_time
      fc.integer({ min: 30, max: 86_400 }), // ttl
      fc.integer({ min: 60, max: 30 * 86_400 }), // renewal limit
      fc.integer({ min: 0, max: 999 }),
      (elapsed, ttl, renewalLimit, ms) => {
        const input = { ...BASE, ttl, renewalLimit, now: (T + elapsed) * 1000 + ms }
        if (elapsed >= renewalLimit) {
          renewalLimitError(input)
          return
        }
        const c = buildAccessClaims(input)
        assert.ok(c.exp <= T + renewalLimit)
        assert.ok(c.exp <= c.iat + ttl)
        assert.ok(c.iat < c.exp)
        assert.equal(c.iat, T + elapsed)
      },
    ),
  )
})

test('userIdFromSub: canonical positive decimal strings only (sub is ours or not at all)', () => {
  assert.equal(userIdFromSub('1'), 1)
  assert.equal(userIdFromSub('42'), 42)
  assert.equal(userIdFromSub('9007199254740991'), Number.MAX_SAFE_INTEGER)
  for (const sub of ['0', '-1', '01', '1.0', '1e3', ' 1', '1 ', '+1', '0x10', '', 'abc', '9007199254740992', '99999999999999999', '١']) {
    assert.equal(userIdFromSub(sub), undefined, JSON.stringify(sub))
  }
  for (const sub of [1, 42n, null, undefined, ['1'], { toString: () => '1' }]) {
    assert.equal(userIdFromSub(sub), undefined, String(sub))
  }
})

test('userIdFromSub property: inverts sub = String(userId) for every safe positive id', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (id) => {
      assert.equal(userIdFromSub(buildAccessClaims({ ...BASE, userId: id }).sub), id)
    }),
  )
})
