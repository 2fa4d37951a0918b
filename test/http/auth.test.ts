/**
 * The authentication matrix of the protected routes (/api/resource, /api/token), against every store:
 * contract §1 precedence (Bearer, token as Basic username, Basic username:password), RFC 7617 and
 * RFC 6750 challenges, malformed headers, forged and expired tokens.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { basicHeader, startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import {
  claimsOf,
  expectJson,
  expectProblem,
  headerOf,
  headersWithoutDate,
  manualClock,
  rawRequest,
  registerOk,
  signWithForeignKey,
  signWithServerKey,
  STRONG,
  tamperSignature,
  tokenOf,
  unsecuredToken,
} from './support.ts'

const BASIC_CHALLENGE = 'Basic realm="Authentication Required"'
const PROTECTED = ['/api/resource', '/api/token'] as const

function b64(bytes: string | Buffer): string {
  return (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8')).toString('base64')
}

async function withUser(srv: TestServer, username = 'miguel'): Promise<{ id: number; token: string }> {
  const { id } = await registerOk(srv, username)
  const token = await tokenOf(srv, { basic: [username, STRONG] })
  return { id, token }
}

function expectBasicChallenge(res: Response): void {
  assert.equal(res.headers.get('www-authenticate'), BASIC_CHALLENGE)
}

function expectBearerChallenge(res: Response, error: 'invalid_token' | 'invalid_request' | undefined): void {
  const challenge = res.headers.get('www-authenticate') ?? ''
  assert.match(challenge, /^Bearer realm="Authentication Required"/, challenge)
  if (error === undefined) assert.doesNotMatch(challenge, /error=/, challenge)
  else assert.match(challenge, new RegExp(`, error="${error}"(,|$)`), challenge)
  assert.doesNotMatch(challenge, /^Basic/i)
}

for (const kind of STORES) {
  test(`${kind}: Basic username:password → 200 on both protected routes (RFC 7617 §2, contract §1 rule 3)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { basic: ['miguel', STRONG] }), 200), {
      data: 'Hello, miguel!',
    })
    const body = await expectJson<{ token: string; duration: number }>(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 200)
    assert.equal(typeof body.token, 'string')
    // A password containing ':' is split at the first colon only (RFC 7617 §2).
    await registerOk(srv, 'susan', 'pass:word:with:colons')
    assert.equal((await srv.get('/api/resource', { basic: ['susan', 'pass:word:with:colons'] })).status, 200)
  })

  test(`${kind}: token as Basic username with any password → 200 (contract §1 rule 2, curl -u TOKEN:unused)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    for (const password of ['unused', '', 'x', STRONG, 'a:b:c']) {
      for (const path of PROTECTED) {
        const res = await srv.get(path, { basic: [token, password] })
        assert.equal(res.status, 200, `${path} with password ${JSON.stringify(password)}: ${await res.text()}`)
      }
    }
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { basic: [token, 'unused'] }), 200), {
      data: 'Hello, miguel!',
    })
  })

  test(`${kind}: Authorization: Bearer <token> → 200 (RFC 6750 §2.1, contract §1 rule 1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    for (const path of PROTECTED) assert.equal((await srv.get(path, { bearer: token })).status, 200, path)
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { bearer: token }), 200), { data: 'Hello, miguel!' })
  })

  test(`${kind}: a token in the Basic username wins over the password field, even the right password (contract §1 precedence)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    const { token } = await withUser(srv)
    const loginTime = claimsOf(token).auth_time
    clock.advance(120)
    // Were the password used, auth_time would be the new time; the token path keeps the old one.
    const renewed = await tokenOf(srv, { basic: [token, STRONG] })
    assert.equal(claimsOf(renewed).auth_time, loginTime)
    // An invalid token in the username position is refused as a token: no fallback to the password.
    await expectProblem(await srv.get('/api/resource', { basic: [tamperSignature(token), STRONG] }), 401, 'token_invalid')
    // A failing Bearer token does not fall back to anything either.
    await expectProblem(await srv.get('/api/resource', { bearer: tamperSignature(token) }), 401, 'token_invalid')
  })

  test(`${kind}: scheme names are case-insensitive (RFC 9110 §11.1, contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    const creds = b64(`miguel:${STRONG}`)
    for (const scheme of ['Basic', 'basic', 'BASIC', 'bAsIc']) {
      const res = await srv.get('/api/resource', { headers: { authorization: `${scheme} ${creds}` } })
      assert.equal(res.status, 200, scheme)
      const asToken = await srv.get('/api/resource', { headers: { authorization: `${scheme} ${b64(`${token}:unused`)}` } })
      assert.equal(asToken.status, 200, `${scheme} token`)
    }
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      assert.equal((await srv.get('/api/resource', { headers: { authorization: `${scheme} ${token}` } })).status, 200, scheme)
      const failed = await srv.get('/api/resource', { headers: { authorization: `${scheme} ${tamperSignature(token)}` } })
      await expectProblem(failed, 401, 'token_invalid')
      expectBearerChallenge(failed, 'invalid_token')
    }
    // Several spaces between scheme and credentials are tolerated.
    assert.equal((await srv.get('/api/resource', { headers: { authorization: `Basic   ${creds}` } })).status, 200)
  })

  test(`${kind}: wrong password and unknown user → 401 with byte-identical bodies and headers (house style 14, contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    for (const path of PROTECTED) {
      const wrong: Response = await srv.get(path, { basic: ['miguel', 'not the password'] })
      const unknown: Response = await srv.get(path, { basic: ['nobody', 'not the password'] })
      const tooLong: Response = await srv.get(path, { basic: ['n'.repeat(40), 'not the password'] })
      const emptyPassword: Response = await srv.get(path, { basic: ['miguel', ''] })
      const responses: Response[] = [wrong, unknown, tooLong, emptyPassword]
      const bodies = await Promise.all(responses.map(async (r) => Buffer.from(await r.arrayBuffer())))
      for (const [i, r] of responses.entries()) {
        assert.equal(r.status, 401, `${path} #${i}`)
        expectBasicChallenge(r)
        assert.ok(bodies[i]?.equals(bodies[0] ?? Buffer.alloc(0)), `${path} #${i}: ${bodies[i]?.toString()}`)
        assert.deepEqual(headersWithoutDate(r), headersWithoutDate(wrong), `${path} #${i}`)
      }
      const problem = JSON.parse(bodies[0]?.toString() ?? '{}') as { code: string; detail: string }
      assert.equal(problem.code, 'invalid_credentials')
      assert.ok(!problem.detail.includes('miguel') && !problem.detail.includes('nobody'))
    }
  })

  test(`${kind}: no Authorization header → 401 authentication_required with the Basic challenge (RFC 7617 §2, RFC 9110 §11.6.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const path of PROTECTED) {
      const res = await srv.get(path)
      expectBasicChallenge(res)
      await expectProblem(res, 401, 'authentication_required')
    }
    // An empty header value is the same as none.
    const blank = await rawRequest(srv.url, 'GET', '/api/resource', [['Authorization', '']])
    assert.equal(blank.status, 401)
    assert.equal(blank.headers['www-authenticate'], BASIC_CHALLENGE)
  })

  test(`${kind}: failed Bearer → 401 with a Bearer challenge, error="invalid_token" (RFC 6750 §3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    for (const bad of [tamperSignature(token), 'abc.def.ghi', 'not-a-jwt-at-all', `${token}x`]) {
      for (const path of PROTECTED) {
        const res = await srv.get(path, { bearer: bad })
        expectBearerChallenge(res, 'invalid_token')
        const problem = await expectProblem(res, 401, 'token_invalid')
        assert.ok(!problem.detail.includes(bad), 'the token is not echoed')
        assert.ok(!(res.headers.get('www-authenticate') ?? '').includes(bad), 'the token is not echoed in the challenge')
      }
    }
  })

  test(`${kind}: empty Bearer → 400 bearer_malformed with error="invalid_request" (RFC 6750 §3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const header of ['Bearer', 'Bearer ', 'bearer    ', 'Bearer a b', 'Bearer tok"en', 'Bearer ä']) {
      const res = await rawRequest(srv.url, 'GET', '/api/resource', [['Authorization', Buffer.from(header, 'latin1')]])
      assert.equal(res.status, 400, `${JSON.stringify(header)}: ${res.body}`)
      const challenge = res.headers['www-authenticate'] ?? ''
      assert.match(challenge, /^Bearer realm="Authentication Required", error="invalid_request"/, challenge)
      const body = JSON.parse(res.body) as { code: string }
      assert.equal(body.code, 'bearer_malformed')
      assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/)
    }
  })

  test(`${kind}: malformed Basic headers and unknown schemes → 401 with the Basic challenge, never 5xx (RFC 7617 §2, contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const headers = [
      'Basic !!!!',
      'Basic bWlndWVs=', // bad padding
      'Basic bWlndWVsOnB', // truncated
      `Basic ${b64('miguel')}`, // no colon
      `Basic ${b64('miguel')}${b64(':x')}`, // padding in the middle
      'Basic',
      'Basic ',
      'Digest username="miguel"',
      'Negotiate abc',
      'Token abc',
      `${b64(`miguel:${STRONG}`)}`, // credentials without a scheme
      'Basic\tbWlndWVsOng=',
      '(((( ))))',
    ]
    for (const header of headers) {
      for (const path of PROTECTED) {
        const res = await srv.get(path, { headers: { authorization: header } })
        expectBasicChallenge(res)
        const problem = await expectProblem(res, 401)
        assert.ok(['authorization_malformed', 'invalid_credentials'].includes(problem.code), `${header}: ${problem.code}`)
      }
    }
    assert.equal((await srv.get('/api/resource', { headers: { authorization: `Basic ${b64(`miguel:${STRONG}`)}` } })).status, 200)
  })

  test(`${kind}: Authorization over 8 KiB → 431 header_too_large (security baseline "Header size", RFC 6585 §5)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const big = 'a'.repeat(9 * 1024)
    for (const header of [`Bearer ${big}`, `Basic ${b64(`${big}:x`)}`, `Basic ${b64(`miguel:${big}`)}`]) {
      for (const path of PROTECTED) {
        const res = await srv.get(path, { headers: { authorization: header } })
        await expectProblem(res, 431, 'header_too_large')
      }
    }
    // Just under the cap is parsed normally (a bad token, so 401).
    const near = `Bearer ${'a'.repeat(8192 - 'Bearer '.length)}`
    await expectProblem(await srv.get('/api/resource', { headers: { authorization: near } }), 401, 'token_invalid')
  })

  test(`${kind}: two Authorization headers → 400 duplicate_authorization (security baseline "reject duplicate Authorization")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    const good = basicHeader('miguel', STRONG)
    const pairs: Array<[string, string]> = [
      [good, good],
      [`Bearer ${token}`, good],
      [good, 'Basic !!!'],
    ]
    for (const [first, second] of pairs) {
      for (const path of PROTECTED) {
        const res = await rawRequest(srv.url, 'GET', path, [
          ['Authorization', first],
          ['authorization', second],
        ])
        assert.equal(res.status, 400, res.body)
        assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/)
        assert.equal((JSON.parse(res.body) as { code: string }).code, 'duplicate_authorization')
      }
    }
  })

  test(`${kind}: Basic credentials that are not UTF-8 are read as latin-1 (security baseline, RFC 7617 §2.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'josé')
    // UTF-8 (RFC 7617 charset="UTF-8").
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { basic: ['josé', STRONG] }), 200), { data: 'Hello, josé!' })
    // latin-1: "jos" 0xE9 ":" password — not valid UTF-8, so read as ISO-8859-1 as Flask-HTTPAuth does.
    for (const name of ['josé', 'JOSÉ']) {
      const latin1 = Buffer.concat([Buffer.from(name, 'latin1'), Buffer.from(`:${STRONG}`, 'latin1')])
      const res = await srv.get('/api/resource', { headers: { authorization: `Basic ${b64(latin1)}` } })
      assert.deepEqual(await expectJson(res, 200), { data: 'Hello, josé!' }, name)
    }
    // A wrong password in latin-1 is still just invalid_credentials.
    const wrong = Buffer.concat([Buffer.from('josé', 'latin1'), Buffer.from(':wrong', 'latin1')])
    await expectProblem(await srv.get('/api/resource', { headers: { authorization: `Basic ${b64(wrong)}` } }), 401, 'invalid_credentials')
  })

  test(`${kind}: control characters and NUL in Basic credentials → 401, never 5xx (contract §1 "never a 5xx")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const creds = ['mig\u0000uel:x', 'miguel\u0000:x', '\u0000:x', 'mig\u0001uel:x', 'miguel:\u0000', 'mig\u007fuel:x', 'mig\ufffduel:x']
    for (const c of creds) {
      for (const bytes of [Buffer.from(c, 'utf8'), Buffer.concat([Buffer.from(c, 'latin1'), Buffer.from([0xff])])]) {
        const res = await srv.get('/api/resource', { headers: { authorization: `Basic ${b64(bytes)}` } })
        const problem = await expectProblem(res, 401)
        assert.equal(problem.code, 'invalid_credentials', JSON.stringify(c))
      }
    }
  })

  test(`${kind}: tampered signature → 401 token_invalid (RFC 7515 §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    const tampered = tamperSignature(token)
    assert.notEqual(tampered, token)
    await expectProblem(await srv.get('/api/resource', { bearer: tampered }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/resource', { basic: [tampered, 'x'] }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/token', { bearer: tampered }), 401, 'token_invalid')
    // Changing the payload while keeping the signature fails too.
    const [h, p, s] = token.split('.')
    const claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>
    const forgedPayload = Buffer.from(JSON.stringify({ ...claims, sub: '2' })).toString('base64url')
    await expectProblem(await srv.get('/api/resource', { bearer: `${h}.${forgedPayload}.${s}` }), 401, 'token_invalid')
    // The untouched token still works.
    assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200)
  })

  test(`${kind}: alg "none" tokens → 401 (RFC 8725 §3.1, security baseline "allowlist of one alg")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    const none = unsecuredToken({ typ: 'at+jwt', kid: headerOf(token).kid }, { ...claimsOf(token) })
    await expectProblem(await srv.get('/api/resource', { bearer: none }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/token', { bearer: none }), 401, 'token_invalid')
    // As a Basic username: "h.p." is not a compact JWS shape, so it is treated as an (unknown) username.
    const asBasic = await srv.get('/api/resource', { basic: [none, 'x'] })
    const problem = await expectProblem(asBasic, 401)
    assert.ok(['token_invalid', 'invalid_credentials'].includes(problem.code))
    // With a made-up signature segment it has the JWS shape and is refused as a token.
    await expectProblem(await srv.get('/api/resource', { basic: [`${none}c2ln`, 'x'] }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/resource', { bearer: `${none}c2ln` }), 401, 'token_invalid')
    // HS256 with the public key as the secret (algorithm confusion) is refused as well.
    const hsHeader = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: headerOf(token).kid })).toString('base64url')
    const [, payload, sig] = token.split('.')
    await expectProblem(await srv.get('/api/resource', { bearer: `${hsHeader}.${payload}.${sig}` }), 401, 'token_invalid')
  })

  test(`${kind}: token signed by another key → 401 token_invalid (RFC 7515 §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    const claims = { ...claimsOf(token), jti: crypto.randomUUID() }
    // Same kid as the server's key, signed by a stranger's key.
    const sameKid = await signWithForeignKey(claims, String(headerOf(token).kid))
    await expectProblem(await srv.get('/api/resource', { bearer: sameKid }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/resource', { basic: [sameKid, 'x'] }), 401, 'token_invalid')
    // An unknown kid.
    const otherKid = await signWithForeignKey(claims, crypto.randomUUID())
    await expectProblem(await srv.get('/api/resource', { bearer: otherKid }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/token', { bearer: otherKid }), 401, 'token_invalid')
  })

  test(`${kind}: token for another audience, issuer or type → 401 token_invalid (RFC 9068 §4, RFC 7519 §4.1.1/4.1.3)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { token } = await withUser(srv)
    const base = claimsOf(token)
    const fresh = (extra: Record<string, unknown>) => ({ ...base, jti: crypto.randomUUID(), ...extra })

    // A stranger's key with another audience and issuer.
    const foreign = await signWithForeignKey(fresh({ aud: 'https://other.example', iss: 'https://other.example' }), String(headerOf(token).kid))
    await expectProblem(await srv.get('/api/resource', { bearer: foreign }), 401, 'token_invalid')

    // The server's own key, so only the claim under test is wrong. Control first: a correct forgery passes.
    const control = await signWithServerKey(srv, fresh({}))
    assert.equal((await srv.get('/api/resource', { bearer: control })).status, 200, 'control token signed with the server key')

    const wrongClaims: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
      ['audience', fresh({ aud: 'https://other.example' }), {}],
      ['issuer', fresh({ iss: 'https://other.example' }), {}],
      ['both', fresh({ aud: 'https://other.example', iss: 'https://other.example' }), {}],
      ['typ JWT', fresh({}), { typ: 'JWT' }],
      ['no jti', { ...base, jti: undefined }, {}],
      ['no auth_time', { ...base, jti: crypto.randomUUID(), auth_time: undefined }, {}],
      ['string auth_time', fresh({ auth_time: String(base.auth_time) }), {}],
      ['sub not an id', fresh({ sub: 'miguel' }), {}],
      ['sub zero', fresh({ sub: '0' }), {}],
      ['numeric sub', fresh({ sub: Number(base.sub) }), {}],
      ['iat in the future', fresh({ iat: base.iat + 3600, exp: base.exp + 3600 }), {}],
    ]
    for (const [name, claims, header] of wrongClaims) {
      const forged = await signWithServerKey(srv, claims, header)
      const res = await srv.get('/api/resource', { bearer: forged })
      const problem = await expectProblem(res, 401)
      assert.equal(problem.code, 'token_invalid', name)
      expectBearerChallenge(res, 'invalid_token')
    }
  })

  test(`${kind}: expired token → 401 token_expired after exp + leeway (RFC 7519 §4.1.4, AUTH_CLOCK_LEEWAY)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    const { token } = await withUser(srv)
    const { exp } = claimsOf(token)
    const leeway = srv.config.clockLeeway
    assert.equal(leeway, 30)
    clock.set((exp + leeway - 1) * 1000)
    assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200, 'inside the leeway')
    clock.set((exp + leeway + 1) * 1000)
    for (const path of PROTECTED) {
      const bearer = await srv.get(path, { bearer: token })
      expectBearerChallenge(bearer, 'invalid_token')
      await expectProblem(bearer, 401, 'token_expired')
      const basic = await srv.get(path, { basic: [token, 'unused'] })
      expectBasicChallenge(basic)
      await expectProblem(basic, 401, 'token_expired')
    }
    // The password still works and yields a fresh token.
    const fresh = await tokenOf(srv, { basic: ['miguel', STRONG] })
    assert.equal((await srv.get('/api/resource', { bearer: fresh })).status, 200)
  })
}
