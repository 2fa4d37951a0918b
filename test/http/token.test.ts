/**
 * GET /api/token and GET /api/resource over real HTTP, against every store: the token's shape
 * (RFC 9068), its caching headers (RFC 6749 §5.1), renewal rules (security baseline "Token chaining"),
 * and keys that live in the database (contract §1).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { claimsOf, expectJson, expectProblem, headerOf, manualClock, registerOk, STRONG, tokenOf } from './support.ts'

interface TokenBody {
  token: string
  duration: number
}

const DAY = 86_400

for (const kind of STORES) {
  test(`${kind}: GET /api/token → 200 {token, duration: 600}, Cache-Control: no-store, Pragma: no-cache (contract §1, RFC 6749 §5.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const res = await srv.get('/api/token', { basic: ['miguel', STRONG] })
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.equal(res.headers.get('pragma'), 'no-cache')
    const body = await expectJson<TokenBody>(res, 200)
    assert.deepEqual(Object.keys(body).sort(), ['duration', 'token'])
    assert.equal(body.duration, 600)
    assert.match(body.token, /^[\w-]+\.[\w-]+\.[\w-]+$/)
    // Renewal answers carry the same headers.
    const renewed = await srv.get('/api/token', { bearer: body.token })
    assert.equal(renewed.status, 200)
    assert.equal(renewed.headers.get('cache-control'), 'no-store')
    assert.equal(renewed.headers.get('pragma'), 'no-cache')
  })

  test(`${kind}: the token is an ES256 at+jwt with kid and iss, aud, sub, iat, exp, jti, auth_time (RFC 9068 §2, security baseline "Access token")`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { PUBLIC_URL: 'https://auth.example.test' } })
    if (!srv) return
    const user = await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const header = headerOf(token)
    assert.equal(header.alg, 'ES256')
    assert.equal(header.typ, 'at+jwt')
    assert.equal(typeof header.kid, 'string')
    assert.ok(String(header.kid).length > 0)
    const keys = await srv.store.listSigningKeys()
    assert.ok(keys.some((k) => k.kid === header.kid), 'kid names a key stored in the database')

    const claims = claimsOf(token)
    assert.equal(claims.iss, 'https://auth.example.test')
    assert.equal(claims.aud, srv.config.tokenAudience)
    assert.equal(claims.aud, 'https://auth.example.test')
    assert.equal(claims.sub, String(user.id))
    assert.equal(typeof claims.sub, 'string')
    assert.equal(claims.iat, clock.seconds())
    assert.equal(claims.exp, claims.iat + 600)
    assert.equal(claims.auth_time, clock.seconds())
    assert.match(claims.jti, /^[\w-]{16,}$/)
    // Two tokens never share a jti.
    const again = await tokenOf(srv, { basic: ['miguel', STRONG] })
    assert.notEqual(claimsOf(again).jti, claims.jti)
    // No secret or private member in the payload.
    const payloadText = Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()
    assert.ok(!payloadText.includes(STRONG) && !payloadText.includes('argon2'))
  })

  test(`${kind}: AUTH_TOKEN_TTL sets duration and exp − iat (configuration)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { AUTH_TOKEN_TTL: '120' } })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const body = await expectJson<TokenBody>(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 200)
    assert.equal(body.duration, 120)
    const claims = claimsOf(body.token)
    assert.equal(claims.exp - claims.iat, 120)
    clock.advance(120 + srv.config.clockLeeway + 1)
    await expectProblem(await srv.get('/api/resource', { bearer: body.token }), 401, 'token_expired')
  })

  test(`${kind}: renewing with a token keeps auth_time and gets a new jti (security baseline "Token chaining", contract §1)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const first = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const loginTime = clock.seconds()
    clock.advance(120)
    for (const auth of [{ bearer: first }, { basic: [first, 'unused'] as const }]) {
      const renewed = await tokenOf(srv, auth)
      const c = claimsOf(renewed)
      assert.equal(c.auth_time, loginTime, 'auth_time is the time of the password')
      assert.notEqual(c.jti, claimsOf(first).jti)
      assert.equal(c.iat, clock.seconds())
      assert.equal(c.exp, c.iat + 600)
      assert.equal(c.sub, claimsOf(first).sub)
    }
    // A password login moves auth_time forward.
    const byPassword = await tokenOf(srv, { basic: ['miguel', STRONG] })
    assert.equal(claimsOf(byPassword).auth_time, clock.seconds())
  })

  test(`${kind}: renewal stops AUTH_TOKEN_RENEWAL_LIMIT (24 h) after the password; exp never passes auth_time + limit (security baseline)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    assert.equal(srv.config.tokenRenewalLimit, DAY)
    await registerOk(srv, 'miguel')
    let token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const authTime = claimsOf(token).auth_time
    const hardStop = authTime + DAY
    const step = 590 // < TTL: each token is renewed while still valid
    let renewals = 0
    while (clock.seconds() + step < hardStop) {
      clock.advance(step)
      const body: TokenBody = await expectJson<TokenBody>(await srv.get('/api/token', { bearer: token }), 200)
      const c = claimsOf(body.token)
      assert.equal(c.auth_time, authTime)
      assert.ok(c.exp <= hardStop, `exp ${c.exp} must not pass auth_time + limit ${hardStop}`)
      assert.equal(body.duration, c.exp - clock.seconds())
      token = body.token
      renewals++
    }
    assert.ok(renewals > 100, `renewed ${renewals} times`)
    // The last token was capped at the hard stop.
    assert.equal(claimsOf(token).exp, hardStop)
    assert.ok(claimsOf(token).exp - claimsOf(token).iat < 600)

    // At the hard stop the token is still inside its leeway, yet cannot renew itself.
    clock.set(hardStop * 1000 + 5_000)
    for (const auth of [{ bearer: token }, { basic: [token, 'unused'] as const }]) {
      await expectProblem(await srv.get('/api/token', auth), 401, 'token_renewal_limit')
    }
    // A fresh password login works and restarts the clock.
    const fresh = await expectJson<TokenBody>(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 200)
    assert.equal(fresh.duration, 600)
    assert.equal(claimsOf(fresh.token).auth_time, clock.seconds())
    assert.equal((await srv.get('/api/token', { bearer: fresh.token })).status, 200)
  })

  test(`${kind}: AUTH_TOKEN_RENEWAL_LIMIT is configurable and caps exp (configuration)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { AUTH_TOKEN_RENEWAL_LIMIT: '900' } })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const first = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const authTime = claimsOf(first).auth_time
    clock.advance(500)
    const second = await expectJson<TokenBody>(await srv.get('/api/token', { bearer: first }), 200)
    assert.equal(claimsOf(second.token).exp, authTime + 900)
    assert.equal(second.duration, 400)
    clock.advance(400)
    await expectProblem(await srv.get('/api/token', { bearer: second.token }), 401, 'token_renewal_limit')
  })

  test(`${kind}: tokens survive a restart on the same database: the signing key lives there (contract §1)`, async (t) => {
    const first = await startServer(t, { store: kind })
    if (!first) return
    await registerOk(first, 'miguel')
    const token = await tokenOf(first, { basic: ['miguel', STRONG] })
    const kid = headerOf(token).kid

    const second = await startServer(t, { store: kind, databaseUrl: first.databaseUrl })
    assert.ok(second)
    assert.notEqual(second.url, first.url)
    assert.deepEqual(await expectJson(await second.get('/api/resource', { bearer: token }), 200), { data: 'Hello, miguel!' })
    assert.equal((await second.get('/api/resource', { basic: [token, 'unused'] })).status, 200)
    const renewed = await tokenOf(second, { bearer: token })
    assert.equal(headerOf(renewed).kid, kid, 'the restarted server signs with the same stored key')
    // And the first server accepts the second's tokens.
    assert.equal((await first.get('/api/resource', { bearer: renewed })).status, 200)
    assert.equal((await second.store.listSigningKeys()).length, (await first.store.listSigningKeys()).length)
  })

  test(`${kind}: /api/resource says "Hello, <username as registered>!" (contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const [registered, login] of [
      ['Miguel', 'MIGUEL'],
      ['Zoë', 'zoë'],
      ['ｓｕｓａｎ', 'susan'],
      ['o.brien-99', 'O.BRIEN-99'],
    ] as const) {
      await registerOk(srv, registered)
      const byPassword: unknown = await expectJson(await srv.get('/api/resource', { basic: [login, STRONG] }), 200)
      assert.deepEqual(byPassword, { data: `Hello, ${registered}!` })
      const token = await tokenOf(srv, { basic: [login, STRONG] })
      assert.deepEqual(await expectJson(await srv.get('/api/resource', { bearer: token }), 200), { data: `Hello, ${registered}!` })
    }
  })
}
