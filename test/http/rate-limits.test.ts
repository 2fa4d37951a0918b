/**
 * Rate limits over real HTTP, against every store: login throttling per (username, address), per
 * username and per address, and the registration and refresh limits (security baseline "Login
 * throttling", "Other limits"; NIST SP 800-63B-4 §3.2.2; OWASP Authentication CS; RFC 6585 §4).
 * A manual clock crosses the windows without waiting.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectTokenResponse, passwordGrant, postForm, refreshGrant, type OAuthErrorJson } from '../helpers/oauth.ts'
import { expectJson, expectProblem, manualClock, type ManualClock, registerOk, STRONG, tokenOf } from './support.ts'

const WRONG = 'not the password at all'
const ON = { AUTH_RATE_LIMITS: 'on' } as const
/** X-Forwarded-For counts only from TRUST_PROXY addresses (security baseline "Proxy"). */
const BEHIND_PROXY = { AUTH_RATE_LIMITS: 'on', TRUST_PROXY: '127.0.0.1' } as const

/** One password attempt on a protected route, optionally from a client address behind the proxy. */
function attempt(srv: TestServer, username: string, password: string, from?: string): Promise<Response> {
  return srv.get('/api/resource', { basic: [username, password], ...(from === undefined ? {} : { headers: { 'x-forwarded-for': from } }) })
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  const text = await res.text()
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status}: ${text}`)
}

/** 429 too_many_attempts, with a positive whole Retry-After and no authentication challenge (RFC 6585 §4). */
async function expectThrottled(res: Response, maxSeconds?: number): Promise<number> {
  const retryAfter = res.headers.get('retry-after')
  const challenge = res.headers.get('www-authenticate')
  await expectProblem(res, 429, 'too_many_attempts')
  assert.match(retryAfter ?? '', /^[1-9]\d*$/, `Retry-After is whole seconds > 0, got ${String(retryAfter)}`)
  assert.equal(challenge, null, 'a 429 asks the client to wait, not to authenticate (no WWW-Authenticate)')
  const seconds = Number(retryAfter)
  if (maxSeconds !== undefined) assert.ok(seconds <= maxSeconds, `Retry-After ${seconds} ≤ ${maxSeconds}`)
  return seconds
}

async function wrongTimes(srv: TestServer, username: string, n: number, from?: string): Promise<void> {
  for (let i = 1; i <= n; i++) await expectStatus(await attempt(srv, username, WRONG, from), 401, `wrong password #${i} for ${username}`)
}

async function start(t: Parameters<typeof startServer>[0], kind: (typeof STORES)[number], env: Readonly<Record<string, string>>, clock: ManualClock) {
  return startServer(t, { store: kind, env, clock })
}

for (const kind of STORES) {
  // ---- the (username, address) pair ----

  test(`${kind}: 5 failures for (user, address) → the 6th, even with the right password, is 429 with Retry-After; 15 min later it works (NIST SP 800-63B-4 §3.2.2, no permanent lockout)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    await wrongTimes(srv, 'miguel', 5)
    const seconds = await expectThrottled(await attempt(srv, 'miguel', STRONG), 15 * 60)
    assert.equal(seconds, 15 * 60, 'the pair window is 15 min from the first failure')
    clock.advance(14 * 60 + 59)
    await expectThrottled(await attempt(srv, 'miguel', STRONG), 1)
    clock.advance(1)
    await expectJson(await attempt(srv, 'miguel', STRONG), 200)
  })

  test(`${kind}: an unknown username gets exactly the statuses and Retry-After of a known one (no enumeration via the limiter, security baseline "Login throttling")`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    const trace = async (username: string): Promise<string[]> => {
      const out: string[] = []
      for (let i = 0; i < 8; i++) {
        const res = await attempt(srv, username, WRONG)
        const body = (await res.json()) as { code: string }
        out.push(`${res.status} ${body.code} retry-after=${res.headers.get('retry-after') ?? '-'} www-authenticate=${res.headers.get('www-authenticate') ?? '-'}`)
      }
      return out
    }
    const known = await trace('miguel')
    const unknown = await trace('nobody-here')
    assert.deepEqual(unknown, known)
    assert.equal(known.filter((s) => s.startsWith('401 invalid_credentials')).length, 5)
    assert.equal(known.filter((s) => s.startsWith('429 too_many_attempts')).length, 3)
  })

  test(`${kind}: a success resets the pair: 4 wrong, 1 right, 4 wrong → 401, not 429 (NIST SP 800-63B-4 §3.2.2: reset on success from the same address)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    await wrongTimes(srv, 'miguel', 4)
    await expectJson(await attempt(srv, 'miguel', STRONG), 200)
    await wrongTimes(srv, 'miguel', 4)
    // Counting started over at the success: the 5th failure since then is still checked, the 6th attempt is not.
    await wrongTimes(srv, 'miguel', 1)
    await expectThrottled(await attempt(srv, 'miguel', STRONG))
  })

  test(`${kind}: attempts refused while throttled are not counted: Retry-After only shrinks, and the window ends on time (security baseline "Login throttling")`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    await wrongTimes(srv, 'miguel', 5)
    let previous = await expectThrottled(await attempt(srv, 'miguel', WRONG))
    assert.equal(previous, 900)
    for (let i = 0; i < 14; i++) {
      clock.advance(60)
      const seconds = await expectThrottled(await attempt(srv, 'miguel', WRONG))
      assert.ok(seconds < previous, `Retry-After shrinks: ${seconds} after ${previous}`)
      assert.equal(seconds, 900 - 60 * (i + 1))
      previous = seconds
    }
    clock.advance(60) // 15 min after the first failure
    // Had the 15 refused attempts counted, the username would now have 20 failures and a delay.
    await wrongTimes(srv, 'miguel', 1)
    await expectJson(await attempt(srv, 'miguel', STRONG), 200)
  })

  test(`${kind}: the pair is keyed by the canonical username: MIGUEL, Miguel and fullwidth ｍｉｇｕｅｌ share one count (RFC 8265 §3.4, security baseline "Login throttling")`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    for (const spelling of ['MIGUEL', 'Miguel', '\uFF4D\uFF49\uFF47\uFF55\uFF45\uFF4C', 'miguel', 'mIgUeL']) {
      await expectStatus(await attempt(srv, spelling, WRONG), 401, spelling)
    }
    await expectThrottled(await attempt(srv, 'miguel', STRONG))
  })

  test(`${kind}: concurrent attempts cannot get past the pair limit: of 30 simultaneous wrong passwords at most 5 are checked (NIST SP 800-63B-4 §3.2.2: at most N failed attempts)`, async (t) => {
    const clock = manualClock()
    // The OWASP floor (m=19456 KiB, t=2), as in production: a password check takes a few ms, as it does there.
    const srv = await start(t, kind, { ...ON, AUTH_ARGON2_MEMORY: '19456', AUTH_ARGON2_ITERATIONS: '2' }, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    const responses = await Promise.all(Array.from({ length: 30 }, () => attempt(srv, 'miguel', WRONG)))
    const statuses = await Promise.all(responses.map(async (r) => (await r.arrayBuffer(), r.status)))
    const checked = statuses.filter((s) => s === 401).length
    const refused = statuses.filter((s) => s === 429).length
    assert.equal(checked + refused, 30, `statuses: ${statuses.join(',')}`)
    assert.ok(checked <= 5, `${checked} password guesses were checked for one (user, address) pair; the limit is 5 (statuses ${statuses.join(',')})`)
  })

  // ---- the username alone: a progressive delay, from any address ----

  test(`${kind}: 10 failures on one username from several addresses → a new address waits 60 s, then is checked again; the 11th failure makes it 120 s (security baseline "Login throttling": progressive delay)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, BEHIND_PROXY, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    // No address reaches the pair limit (≤ 4 each).
    await wrongTimes(srv, 'miguel', 4, '203.0.113.1')
    await wrongTimes(srv, 'miguel', 4, '203.0.113.2')
    await wrongTimes(srv, 'miguel', 2, '203.0.113.3')
    const first = await expectThrottled(await attempt(srv, 'miguel', STRONG, '203.0.113.50'))
    assert.equal(first, 60)
    clock.advance(30)
    assert.equal(await expectThrottled(await attempt(srv, 'miguel', WRONG, '203.0.113.51')), 30)
    clock.advance(31) // 61 s after the 10th failure
    await expectStatus(await attempt(srv, 'miguel', WRONG, '203.0.113.52'), 401, '11th failure, checked after the delay')
    assert.equal(await expectThrottled(await attempt(srv, 'miguel', STRONG, '203.0.113.53')), 120)
    clock.advance(121)
    // The owner, once the delay has passed, logs in; that resets the username's run of failures.
    await expectJson(await attempt(srv, 'miguel', STRONG, '203.0.113.54'), 200)
    await wrongTimes(srv, 'miguel', 4, '203.0.113.55')
    await expectStatus(await attempt(srv, 'miguel', WRONG, '203.0.113.56'), 401, 'no delay after the success')
  })

  test(`${kind}: the username delay is capped at 15 min: 30 failures, each after its delay, make the next attempt wait 15 min, not a lockout (NIST SP 800-63B-4 §3.2.2; OWASP Authentication CS: lockout DoS)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, BEHIND_PROXY, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    // Failures spread over addresses and time, each one after the delay the previous ones imposed.
    for (let i = 1; i <= 30; i++) {
      if (i > 1) clock.advance(15 * 60)
      await expectStatus(await attempt(srv, 'miguel', WRONG, `198.18.${i}.1`), 401, `failure ${i}`)
    }
    const seconds = await expectThrottled(await attempt(srv, 'miguel', STRONG, '198.18.200.1'))
    assert.equal(seconds, 15 * 60, 'capped at 15 min')
    clock.advance(15 * 60)
    await expectJson(await attempt(srv, 'miguel', STRONG, '198.18.200.2'), 200)
  })

  test(`${kind}: 100 consecutive failures on a username → a stop until 12 h after the last one, then it works again (NIST SP 800-63B-4 §3.2.2: no more than 100; no permanent lockout)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, BEHIND_PROXY, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    for (let i = 1; i <= 100; i++) {
      if (i > 1) clock.advance(15 * 60) // every failure waits out the delay of the previous ones
      await expectStatus(await attempt(srv, 'miguel', WRONG, `198.19.${i}.1`), 401, `failure ${i}`)
    }
    clock.advance(15 * 60)
    const seconds = await expectThrottled(await attempt(srv, 'miguel', STRONG, '198.19.200.1'))
    assert.equal(seconds, 12 * 3600 - 15 * 60, 'until 12 h after the last failure')
    clock.advance(seconds)
    await expectJson(await attempt(srv, 'miguel', STRONG, '198.19.200.2'), 200)
  })

  // ---- the address alone: spraying ----

  test(`${kind}: 100 failures from one address across many usernames → that address gets 429 for any username; another address is unaffected (security baseline "Login throttling": spraying)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, BEHIND_PROXY, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    const sprayer = '198.51.100.9'
    for (let u = 0; u < 25; u++) await wrongTimes(srv, `victim${u}`, 4, sprayer)
    assert.equal(await expectThrottled(await attempt(srv, 'miguel', STRONG, sprayer)), 10 * 60)
    await expectThrottled(await attempt(srv, 'somebody-new', WRONG, sprayer))
    await expectJson(await attempt(srv, 'miguel', STRONG, '198.51.100.10'), 200)
    await expectStatus(await attempt(srv, 'victim0', WRONG, '198.51.100.10'), 401, 'another address is checked')
    clock.advance(10 * 60)
    await expectJson(await attempt(srv, 'miguel', STRONG, sprayer), 200)
  })

  // ---- other endpoints with the same password check ----

  test(`${kind}: the OAuth password grant shares the login limits: 5 wrong → 429 in the OAuth error shape with Retry-After, and Basic is throttled too (RFC 6749 §5.2, NIST SP 800-63B-4 §3.2.2)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    for (let i = 0; i < 5; i++) {
      const res = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: WRONG })
      const body = (await res.json()) as OAuthErrorJson
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal(body.error, 'invalid_grant')
    }
    const res = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: STRONG })
    const text = await res.text()
    assert.equal(res.status, 429, text)
    assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/)
    assert.match(res.headers.get('retry-after') ?? '', /^[1-9]\d*$/)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    const body = JSON.parse(text) as OAuthErrorJson & { access_token?: string }
    assert.equal(typeof body.error, 'string')
    assert.equal(body.access_token, undefined)
    await expectThrottled(await attempt(srv, 'miguel', STRONG))
    clock.advance(15 * 60)
    await passwordGrant(srv, 'miguel')
  })

  test(`${kind}: PUT /api/users/me/password's current_password check is throttled like a login (security baseline "Login throttling")`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const change = (current: string, bearer: string) =>
      srv.request('PUT', '/api/users/me/password', { bearer, json: { current_password: current, new_password: 'a brand new passphrase here' } })
    for (let i = 0; i < 5; i++) await expectProblem(await change(WRONG, token), 400, 'current_password_incorrect')
    await expectThrottled(await change(STRONG, token))
    // The same pair: Basic logins of this user from this address wait too.
    await expectThrottled(await attempt(srv, 'miguel', STRONG))
    clock.advance(15 * 60)
    const fresh = await tokenOf(srv, { basic: ['miguel', STRONG] })
    await expectJson(await change(STRONG, fresh), 200)
  })

  // ---- other limits ----

  test(`${kind}: POST /api/users: the 11th registration within an hour from one address → 429 rate_limited with Retry-After (security baseline "Other limits", RFC 6585 §4)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    for (let i = 0; i < 10; i++) await registerOk(srv, `user${i}`)
    clock.advance(59 * 60)
    const res = await srv.register('user10', STRONG)
    const retryAfter = res.headers.get('retry-after')
    await expectProblem(res, 429, 'rate_limited')
    assert.match(retryAfter ?? '', /^[1-9]\d*$/)
    assert.equal(Number(retryAfter), 60)
    assert.equal(await srv.store.findUserByCanonicalName('user10'), undefined, 'nothing was registered')
    clock.advance(60)
    await registerOk(srv, 'user10')
  })

  test(`${kind}: POST /oauth/token grant_type=refresh_token: the 151st within 5 min from one address → 429 in the OAuth error shape with Retry-After (security baseline "Other limits", GoTrue RateLimitTokenRefresh)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, ON, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    const session = await passwordGrant(srv, 'miguel')
    const refresh = session.refresh_token ?? ''
    assert.notEqual(refresh, '')
    // Refreshes count whether or not the token is good.
    for (let i = 0; i < 150; i++) {
      const res = await refreshGrant(srv, `not-a-refresh-token-${i}`)
      await res.arrayBuffer()
      assert.equal(res.status, 400, `refresh #${i + 1}`)
    }
    const res = await refreshGrant(srv, refresh)
    const text = await res.text()
    assert.equal(res.status, 429, text)
    assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/)
    assert.match(res.headers.get('retry-after') ?? '', /^[1-9]\d*$/)
    assert.ok(Number(res.headers.get('retry-after')) <= 300)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    const body = JSON.parse(text) as Record<string, unknown>
    assert.equal(typeof body['error'], 'string', 'RFC 6749 §5.2 shape')
    assert.equal(body['access_token'], undefined)
    assert.equal(body['code'], undefined, 'not a problem+json body')
    clock.advance(5 * 60)
    await expectTokenResponse(await refreshGrant(srv, refresh))
  })

  // ---- switched off ----

  test(`${kind}: AUTH_RATE_LIMITS=off: 20 wrong passwords are all 401 and 12 registrations all 201 (configuration)`, async (t) => {
    const clock = manualClock()
    const srv = await start(t, kind, { AUTH_RATE_LIMITS: 'off' }, clock)
    if (!srv) return
    await registerOk(srv, 'miguel')
    await wrongTimes(srv, 'miguel', 20)
    await expectJson(await attempt(srv, 'miguel', STRONG), 200)
    for (let i = 0; i < 11; i++) await registerOk(srv, `user${i}`)
  })
}
