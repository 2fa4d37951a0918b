/**
 * Logging out, against every store and over real HTTP: `DELETE /api/token` (this token),
 * `DELETE /api/tokens` (every token of the user), RFC 7009 `POST /oauth/revoke`, and the denylist's
 * life after the token expired. Each test shows the effect (the token is now refused), never a call.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import {
  apiToken,
  assertBearerChallenge,
  BASIC_CHALLENGE,
  claimsOf,
  createClient,
  dbOf,
  expectOAuthError,
  expectProblem,
  introspect,
  manualClock,
  passwordGrant,
  PASSWORD,
  postForm,
  refreshGrant,
  registerUser,
} from '../helpers/oauth.ts'

function del(srv: TestServer, path: string, auth: { bearer?: string; basic?: readonly [string, string] }): Promise<Response> {
  return srv.request('DELETE', path, auth)
}

async function expectNoContent(res: Response): Promise<void> {
  const text = await res.text()
  assert.equal(res.status, 204, `expected 204, got ${res.status}: ${text}`)
  assert.equal(text, '')
}

/** The token is refused as revoked however it is presented (README "Logging out"). */
async function expectRevokedEverywhere(srv: TestServer, token: string): Promise<void> {
  const bearer = await srv.get('/api/resource', { bearer: token })
  assertBearerChallenge(bearer, 'invalid_token')
  await expectProblem(bearer, 401, 'token_revoked')

  const asUsername = await srv.get('/api/resource', { basic: [token, 'unused'] })
  assert.equal(asUsername.headers.get('www-authenticate'), BASIC_CHALLENGE)
  await expectProblem(asUsername, 401, 'token_revoked')

  const renewBearer = await srv.get('/api/token', { bearer: token })
  assertBearerChallenge(renewBearer, 'invalid_token')
  await expectProblem(renewBearer, 401, 'token_revoked')

  const renewBasic = await srv.get('/api/token', { basic: [token, 'unused'] })
  assert.equal(renewBasic.headers.get('www-authenticate'), BASIC_CHALLENGE)
  await expectProblem(renewBasic, 401, 'token_revoked')

  // Logging out again with it is refused the same way.
  await expectProblem(await del(srv, '/api/token', { bearer: token }), 401, 'token_revoked')
}

async function expectWorks(srv: TestServer, token: string, username = 'miguel'): Promise<void> {
  const res = await srv.get('/api/resource', { bearer: token })
  assert.equal(res.status, 200, await res.clone().text())
  assert.deepEqual(await res.json(), { data: `Hello, ${username}!` })
}

/** P-256 group order: (r, n − s) is a second valid ECDSA signature of the same message. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n

function equivalentSignature(token: string): string {
  const [h, p, sig] = token.split('.') as [string, string, string]
  const bytes = Buffer.from(sig, 'base64url')
  assert.equal(bytes.length, 64, 'ES256 signature is r || s, 32 bytes each')
  const s = BigInt(`0x${bytes.subarray(32).toString('hex')}`)
  const flipped = Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex')
  return `${h}.${p}.${Buffer.concat([bytes.subarray(0, 32), flipped]).toString('base64url')}`
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** The 64-byte signature is 86 characters: the last one carries 4 unused bits. Set one of them. */
function nonCanonicalLastChar(token: string): string {
  const last = token.at(-1) ?? ''
  const flipped = B64URL[B64URL.indexOf(last) ^ 1] ?? ''
  assert.equal(Buffer.from(token.slice(token.lastIndexOf('.') + 1, -1) + flipped, 'base64url').length, 64)
  return token.slice(0, -1) + flipped
}

function alteredSignature(token: string): string {
  const dot = token.lastIndexOf('.')
  const i = dot + 10
  return token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1)
}

for (const kind of STORES) {
  test(`${kind}: DELETE /api/token revokes the presented token: Bearer, token as Basic username and renewal all get 401 token_revoked (RFC 7009 §2.1, RFC 6750 §3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    const other = await apiToken(srv, 'miguel')
    await expectWorks(srv, token)

    await expectNoContent(await del(srv, '/api/token', { bearer: token }))
    await expectRevokedEverywhere(srv, token)

    // Only that token: another token of the same user still works, and can still renew itself.
    await expectWorks(srv, other)
    const renewed = await srv.get('/api/token', { bearer: other })
    assert.equal(renewed.status, 200)
    // And the password still logs in.
    await expectWorks(srv, await apiToken(srv, 'miguel'))
  })

  test(`${kind}: DELETE /api/token with the token as the Basic username logs it out too (REST-auth token-as-username, RFC 7617 §2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    await expectNoContent(await del(srv, '/api/token', { basic: [token, 'unused'] }))
    await expectRevokedEverywhere(srv, token)
  })

  test(`${kind}: a malleated copy of a revoked token does not authenticate: padding, altered or equivalent ECDSA signature (revocation by jti, RFC 7515 §2, RFC 7009 §2.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')

    // (r, n − s) is a different string with a signature that really verifies under the server's key:
    // the copy is the same token (same jti), not a forgery, and proves the denylist keys on jti.
    const twin = equivalentSignature(token)
    assert.notEqual(twin, token)
    const jwks = (await (await srv.get('/.well-known/jwks.json')).json()) as JSONWebKeySet
    const verified = await jwtVerify(twin, createLocalJWKSet(jwks), { algorithms: ['ES256'] })
    assert.equal(verified.payload.jti, claimsOf(token).jti)
    await expectWorks(srv, twin) // before the logout, the twin is as good as the original

    const copies: Record<string, string> = {
      twin,
      padded: `${token}=`,
      doublePadded: `${token}==`,
      nonCanonicalSignature: nonCanonicalLastChar(token),
      alteredSignature: alteredSignature(token),
      twinAltered: alteredSignature(twin),
    }
    // Some re-encodings may be accepted by the base64url decoder (padding, unused trailing bits):
    // whichever authenticate before the logout must be refused as revoked after it.
    const acceptedBefore = new Set<string>()
    for (const [name, copy] of Object.entries(copies)) {
      const res = await srv.get('/api/resource', { bearer: copy })
      await res.arrayBuffer()
      if (res.status === 200) acceptedBefore.add(name)
    }
    assert.ok(acceptedBefore.has('twin'))
    assert.ok(!acceptedBefore.has('alteredSignature'))

    await expectNoContent(await del(srv, '/api/token', { bearer: token }))

    for (const [name, copy] of Object.entries(copies)) {
      for (const auth of [{ bearer: copy }, { basic: [copy, 'x'] as const }]) {
        for (const path of ['/api/resource', '/api/token']) {
          const res = await srv.get(path, auth)
          const text = await res.text()
          const where = `${name} via ${Object.keys(auth)[0]} at ${path}`
          assert.equal(res.status, 401, `${where}: ${res.status} ${text}`)
          const code = (JSON.parse(text) as { code: string }).code
          if (acceptedBefore.has(name) && 'bearer' in auth) assert.equal(code, 'token_revoked', where)
        }
      }
    }
    // The equivalent signature is recognised as the revoked token itself.
    await expectProblem(await srv.get('/api/resource', { bearer: twin }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { basic: [twin, 'x'] }), 401, 'token_revoked')
    // Logging out the twin of a fresh token revokes the original as well (same jti).
    const fresh = await apiToken(srv, 'miguel')
    await expectNoContent(await del(srv, '/api/token', { bearer: equivalentSignature(fresh) }))
    await expectProblem(await srv.get('/api/resource', { bearer: fresh }), 401, 'token_revoked')
  })

  test(`${kind}: DELETE /api/token authenticated with a password → 400 invalid_request; without credentials → 401 (RFC 7009 §2.1: the token to revoke must be presented)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    await expectProblem(await del(srv, '/api/token', { basic: ['miguel', PASSWORD] }), 400, 'invalid_request')
    await expectWorks(srv, token) // nothing was revoked
    const none = await srv.request('DELETE', '/api/token')
    await expectProblem(none, 401, 'authentication_required')
    await expectProblem(await del(srv, '/api/token', { basic: ['miguel', 'wrong password!'] }), 401, 'invalid_credentials')
  })

  test(`${kind}: DELETE /api/tokens revokes every earlier token of the user, but a login in the same second works (security baseline "Revocation": tokens_valid_after)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerUser(srv, 'miguel')
    await registerUser(srv, 'susan')
    const first = await apiToken(srv, 'miguel')
    const renewed = (await (await srv.get('/api/token', { bearer: first })).json()) as { token: string }
    const oauth = await passwordGrant(srv, 'miguel')
    const susans = await apiToken(srv, 'susan')

    // Still the same second: revoke everything issued so far.
    await expectNoContent(await del(srv, '/api/tokens', { bearer: first }))
    for (const token of [first, renewed.token, oauth.access_token]) await expectRevokedEverywhere(srv, token)
    // The refresh family of the password grant is gone with it.
    await expectOAuthError(await refreshGrant(srv, oauth.refresh_token ?? ''), 400, 'invalid_grant')
    // Another user is not touched.
    await expectWorks(srv, susans, 'susan')

    // A fresh login in the same second (the clock has not moved) gets a token that works.
    const after = await apiToken(srv, 'miguel')
    await expectWorks(srv, after)
    const afterOauth = await passwordGrant(srv, 'miguel')
    await expectWorks(srv, afterOauth.access_token)
    assert.equal((await refreshGrant(srv, afterOauth.refresh_token ?? '')).status, 200)
    // And a second later, too.
    clock.advance(1)
    await expectWorks(srv, after)
    await expectWorks(srv, await apiToken(srv, 'miguel'))
  })

  test(`${kind}: DELETE /api/tokens with username and password also logs out everywhere (README "Logging out")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    await expectNoContent(await del(srv, '/api/tokens', { basic: ['miguel', PASSWORD] }))
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_revoked')
    await expectWorks(srv, await apiToken(srv, 'miguel'))
  })

  test(`${kind}: revocation survives a restart: a new server on the same database still refuses the token (security baseline "Revocation": database authoritative)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const revoked = await apiToken(srv, 'miguel')
    const kept = await apiToken(srv, 'miguel')
    await expectNoContent(await del(srv, '/api/token', { bearer: revoked }))

    const again = await startServer(t, { store: kind, databaseUrl: srv.databaseUrl })
    assert.ok(again)
    await expectRevokedEverywhere(again, revoked)
    await expectWorks(again, kept)

    // A revoke-all made on the new server is seen by the old one once it reads the change log
    // (every AUTH_STATE_POLL_MS; sync() reads it now).
    await expectNoContent(await del(again, '/api/tokens', { bearer: kept }))
    await srv.sync()
    await expectProblem(await srv.get('/api/resource', { bearer: kept }), 401, 'token_revoked')
  })

  test(`${kind}: POST /oauth/revoke with an access token → 200 and the token is refused afterwards (RFC 7009 §2.1, §2.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    const other = await apiToken(srv, 'miguel')
    const res = await postForm(srv, '/oauth/revoke', { token, token_type_hint: 'access_token' })
    assert.equal(res.status, 200, await res.clone().text())
    assert.equal(await res.text(), '')
    assert.equal(res.headers.get('cache-control'), 'no-store')
    await expectRevokedEverywhere(srv, token)
    await expectWorks(srv, other)
    // Revoking it again is still 200 (idempotent).
    assert.equal((await postForm(srv, '/oauth/revoke', { token })).status, 200)
    // A wrong hint does not matter (§2.1: the server extends its search).
    const hinted = await apiToken(srv, 'miguel')
    assert.equal((await postForm(srv, '/oauth/revoke', { token: hinted, token_type_hint: 'refresh_token' })).status, 200)
    await expectProblem(await srv.get('/api/resource', { bearer: hinted }), 401, 'token_revoked')
  })

  test(`${kind}: POST /oauth/revoke with garbage, unknown or foreign tokens → 200, nothing revoked (RFC 7009 §2.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    for (const garbage of [
      'garbage',
      'a'.repeat(43), // the shape of a refresh token, but unknown
      'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln', // a JWS shape that does not verify
      alteredSignature(token),
      `${token}=`,
      'ünïcödé',
    ]) {
      const res = await postForm(srv, '/oauth/revoke', { token: garbage })
      assert.equal(res.status, 200, `${garbage}: ${res.status} ${await res.clone().text()}`)
      assert.equal(await res.text(), '')
    }
    await expectWorks(srv, token)
    // The token parameter itself is required (§2.1).
    await expectOAuthError(await postForm(srv, '/oauth/revoke', {}), 400, 'invalid_request')
  })

  test(`${kind}: a token issued to a client can be revoked only by that client (RFC 7009 §2.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const owner = await createClient(srv, { scopes: ['reports:read'] })
    const stranger = await createClient(srv, { scopes: ['reports:read'] })
    const issued = await expectOk(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client: owner }))
    const token = issued.access_token
    // Without client authentication, or by another client: 200, but nothing happens.
    assert.equal((await postForm(srv, '/oauth/revoke', { token })).status, 200)
    assert.equal((await postForm(srv, '/oauth/revoke', { token }, { client: stranger })).status, 200)
    assert.equal((await introspect(srv, owner, token))['active'], true)
    // By its client: revoked.
    assert.equal((await postForm(srv, '/oauth/revoke', { token }, { client: owner })).status, 200)
    assert.deepEqual(await introspect(srv, owner, token), { active: false })
    // Wrong client credentials are not silently ignored (RFC 7009 §2.2.1 → RFC 6749 §5.2).
    await expectOAuthError(
      await postForm(srv, '/oauth/revoke', { token }, { client: { clientId: owner.clientId, secret: 'wrong' } }),
      401,
      'invalid_client',
    )
  })

  test(`${kind}: DELETE /api/token with a token from a refresh family revokes the family too (RFC 7009 §2.1: "SHOULD also invalidate the refresh token")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const grant = await passwordGrant(srv, 'miguel')
    const refreshed = await expectOk(await refreshGrant(srv, grant.refresh_token ?? ''))
    await expectWorks(srv, grant.access_token)
    await expectNoContent(await del(srv, '/api/token', { bearer: refreshed.access_token }))
    // Every access token of the family and its current refresh token are dead.
    await expectRevokedEverywhere(srv, refreshed.access_token)
    await expectProblem(await srv.get('/api/resource', { bearer: grant.access_token }), 401, 'token_revoked')
    await expectOAuthError(await refreshGrant(srv, refreshed.refresh_token ?? ''), 400, 'invalid_grant')
    // Another login is a new family and works.
    const next = await passwordGrant(srv, 'miguel')
    await expectWorks(srv, next.access_token)
  })

  test(`${kind}: denylist rows are purged once the token can no longer verify (exp + leeway), not before (security baseline "Revocation": denylist by jti until exp; RFC 7519 §4.1.4)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    const viaOauth = await apiToken(srv, 'miguel')
    await expectNoContent(await del(srv, '/api/token', { bearer: token }))
    assert.equal((await postForm(srv, '/oauth/revoke', { token: viaOauth })).status, 200)
    const db = dbOf(srv)
    const rows = await db.selectFrom('revoked_tokens').selectAll().execute()
    assert.equal(rows.length, 2)
    const exp = claimsOf(token).exp
    for (const row of rows) {
      assert.ok(Number(row.expires_at) >= exp * 1000, 'kept at least until the token expires')
      assert.equal(row.subject, claimsOf(token).sub)
    }

    // Before exp the row must stay and refuse the token.
    clock.advance(exp - clock.seconds() - 1)
    assert.equal(await srv.store.purgeExpired(clock.now()), 0)
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_revoked')

    // Just past exp, within the clock leeway, the token still verifies (RFC 7519 §4.1.4 leeway):
    // a purge then must not bring it back to life.
    clock.advance(2)
    await srv.store.purgeExpired(clock.now())
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { basic: [viaOauth, 'x'] }), 401, 'token_revoked')

    // Past exp + leeway the token no longer verifies, the row is useless and is deleted.
    clock.advance(srv.config.clockLeeway)
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_expired')
    assert.ok((await srv.store.purgeExpired(clock.now())) >= 2)
    assert.deepEqual(await db.selectFrom('revoked_tokens').selectAll().execute(), [])
    // Still refused after the purge (by its expiry now).
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_expired')
  })
}

async function expectOk(res: Response): Promise<{ access_token: string; refresh_token?: string }> {
  const text = await res.text()
  assert.equal(res.status, 200, text)
  return JSON.parse(text) as { access_token: string; refresh_token?: string }
}
