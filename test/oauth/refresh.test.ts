/**
 * The refresh-token grant over real HTTP, against every store: rotation and reuse detection
 * (RFC 9700 §4.14.2, RFC 6749 §10.4), the grace window that returns the same successor (security
 * baseline "Refresh token"), idle and absolute expiry, binding to the client (RFC 6749 §6), scope
 * narrowing (RFC 6749 §6), and concurrent refreshes of one token.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import {
  claimsOf,
  createClient,
  expectOAuthError,
  expectProblem,
  expectTokenResponse,
  familyRevokedAt,
  introspect,
  manualClock,
  passwordGrant,
  postForm,
  refreshGrant,
  refreshRowsOfFamily,
  registerUser,
  type TestClient,
  type TokenResponseJson,
} from '../helpers/oauth.ts'

interface Session {
  readonly access: string
  readonly refresh: string
  readonly sid: string
}

function sessionOf(body: TokenResponseJson): Session {
  assert.ok(body.refresh_token !== undefined, 'a refresh token')
  const sid = claimsOf(body.access_token).sid
  assert.equal(typeof sid, 'string', 'access tokens of a refresh family carry sid')
  return { access: body.access_token, refresh: body.refresh_token, sid: sid as string }
}

async function login(srv: TestServer, options: { client?: TestClient; scope?: string } = {}): Promise<Session> {
  return sessionOf(await passwordGrant(srv, 'miguel', options))
}

async function refreshOk(srv: TestServer, token: string, options: { client?: TestClient; scope?: string } = {}): Promise<Session> {
  return sessionOf(await expectTokenResponse(await refreshGrant(srv, token, options)))
}

async function expectAccessWorks(srv: TestServer, token: string): Promise<void> {
  const res = await srv.get('/api/resource', { bearer: token })
  assert.equal(res.status, 200, await res.text())
}

async function expectAccessRevoked(srv: TestServer, token: string): Promise<void> {
  await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_revoked')
}

async function unrotated(srv: TestServer, sid: string): Promise<number> {
  return (await refreshRowsOfFamily(srv, sid)).filter((r) => r.rotated_at === null).length
}

for (const kind of STORES) {
  test(`${kind}: refresh rotates; the old token after the grace window → invalid_grant and the whole family is revoked (RFC 9700 §4.14.2, RFC 6749 §10.4)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const s0 = await login(srv)
    const bystander = await login(srv)
    clock.advance(1)
    const s1 = await refreshOk(srv, s0.refresh)
    assert.notEqual(s1.refresh, s0.refresh)
    assert.notEqual(s1.access, s0.access)
    assert.equal(s1.sid, s0.sid, 'same family')
    await expectAccessWorks(srv, s0.access)
    await expectAccessWorks(srv, s1.access)
    const s2 = await refreshOk(srv, s1.refresh)
    assert.equal(await unrotated(srv, s0.sid), 1)

    // The default grace window is 10 s; one second past it, the rotated token is reuse.
    clock.advance(11)
    const reuse = await expectOAuthError(await refreshGrant(srv, s0.refresh), 400, 'invalid_grant')
    assert.doesNotMatch(JSON.stringify(reuse), new RegExp(s0.sid))
    assert.notEqual(await familyRevokedAt(srv, s0.sid), null)
    // The successors fail too, and every access token of the family is revoked.
    await expectOAuthError(await refreshGrant(srv, s1.refresh), 400, 'invalid_grant')
    await expectOAuthError(await refreshGrant(srv, s2.refresh), 400, 'invalid_grant')
    for (const s of [s0, s1, s2]) await expectAccessRevoked(srv, s.access)
    // Another login of the same user is another family, untouched.
    await expectAccessWorks(srv, bystander.access)
    await refreshOk(srv, bystander.refresh)
  })

  test(`${kind}: within the grace window (default 10 s) the rotated token returns the SAME successor (security baseline "Refresh token"; RFC 9700 §4.14.2)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const s0 = await login(srv)
    const s1 = await refreshOk(srv, s0.refresh)
    clock.advance(5)
    const again = await refreshOk(srv, s0.refresh)
    assert.equal(again.refresh, s1.refresh, 'the same successor')
    assert.notEqual(claimsOf(again.access).jti, claimsOf(s1.access).jti, 'a new access token')
    assert.equal(again.sid, s0.sid)
    // The successor rotates normally; the original, still in its window, now leads to the newest one.
    clock.advance(1)
    const s2 = await refreshOk(srv, s1.refresh)
    clock.advance(1)
    assert.equal((await refreshOk(srv, s0.refresh)).refresh, s2.refresh)
    assert.equal((await refreshOk(srv, s1.refresh)).refresh, s2.refresh)
    assert.equal(await familyRevokedAt(srv, s0.sid), null)
    assert.equal(await unrotated(srv, s0.sid), 1)
    for (const s of [s0, s1, again, s2]) await expectAccessWorks(srv, s.access)
    // Exactly 10 s after its rotation the window still holds; past it, reuse.
    const s3 = await refreshOk(srv, s2.refresh)
    clock.advance(10)
    assert.equal((await refreshOk(srv, s2.refresh)).refresh, s3.refresh)
    clock.advance(0.001)
    await expectOAuthError(await refreshGrant(srv, s2.refresh), 400, 'invalid_grant')
    await expectOAuthError(await refreshGrant(srv, s3.refresh), 400, 'invalid_grant')
  })

  test(`${kind}: AUTH_REFRESH_GRACE=0 → the first reuse, even in the same instant, revokes the family (RFC 9700 §4.14.2, configuration)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { AUTH_REFRESH_GRACE: '0' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const s0 = await login(srv)
    const s1 = await refreshOk(srv, s0.refresh)
    // The clock has not moved at all.
    await expectOAuthError(await refreshGrant(srv, s0.refresh), 400, 'invalid_grant')
    assert.notEqual(await familyRevokedAt(srv, s0.sid), null)
    await expectOAuthError(await refreshGrant(srv, s1.refresh), 400, 'invalid_grant')
    await expectAccessRevoked(srv, s1.access)
    await expectAccessRevoked(srv, s0.access)
  })

  test(`${kind}: a refresh token unused for AUTH_REFRESH_IDLE_TTL → invalid_grant; use resets the idle clock (security baseline: idle 7 days)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { AUTH_REFRESH_IDLE_TTL: '60' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const client = await createClient(srv, { grantTypes: ['client_credentials'] })
    const s0 = await login(srv)
    clock.advance(59)
    const s1 = await refreshOk(srv, s0.refresh)
    clock.advance(59)
    const s2 = await refreshOk(srv, s1.refresh)
    assert.equal((await introspect(srv, client, s2.refresh))['active'], true)
    clock.advance(60)
    assert.deepEqual(await introspect(srv, client, s2.refresh), { active: false })
    await expectOAuthError(await refreshGrant(srv, s2.refresh), 400, 'invalid_grant')
    // Expiry is not reuse: nothing else was revoked, and the password logs in again.
    assert.equal(await familyRevokedAt(srv, s0.sid), null)
    await refreshOk(srv, (await login(srv)).refresh)
  })

  test(`${kind}: a family lives at most AUTH_REFRESH_TOKEN_TTL from the login → invalid_grant, and its access tokens never outlive it (security baseline: absolute 30 days)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { AUTH_REFRESH_TOKEN_TTL: '120', AUTH_REFRESH_IDLE_TTL: '60' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const start = clock.seconds()
    const s0 = await login(srv)
    assert.equal(claimsOf(s0.access).exp, start + 120, 'the access token ends with its family')
    clock.advance(50)
    const s1 = await refreshOk(srv, s0.refresh)
    clock.advance(50)
    const s2 = await refreshOk(srv, s1.refresh)
    assert.equal(claimsOf(s2.access).exp, start + 120)
    clock.advance(20)
    await expectOAuthError(await refreshGrant(srv, s2.refresh), 400, 'invalid_grant')
    clock.advance(1)
    await expectOAuthError(await refreshGrant(srv, s2.refresh), 400, 'invalid_grant')
  })

  test(`${kind}: a refresh token bound to client A, presented by client B or without client auth → invalid_grant, and A's token still works (RFC 6749 §6, §10.4)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REFRESH_GRACE: '0' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const a = await createClient(srv, { grantTypes: ['password', 'refresh_token'] })
    const b = await createClient(srv, { grantTypes: ['password', 'refresh_token'] })
    const s0 = await login(srv, { client: a })
    assert.equal(claimsOf(s0.access).client_id, a.clientId)
    await expectOAuthError(await refreshGrant(srv, s0.refresh, { client: b }), 400, 'invalid_grant')
    await expectOAuthError(await refreshGrant(srv, s0.refresh), 400, 'invalid_grant')
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: s0.refresh, client_id: b.clientId, client_secret: b.secret }),
      400,
      'invalid_grant',
    )
    // Nothing was rotated or revoked by the wrong presenters (GRACE=0 would have caught a rotation).
    assert.equal(await familyRevokedAt(srv, s0.sid), null)
    await expectAccessWorks(srv, s0.access)
    const s1 = await refreshOk(srv, s0.refresh, { client: a })
    await refreshOk(srv, s1.refresh, { client: a })
    // And a token issued without a client is not usable by a client either.
    const open = await login(srv)
    await expectOAuthError(await refreshGrant(srv, open.refresh, { client: a }), 400, 'invalid_grant')
    await refreshOk(srv, open.refresh)
    // Revocation by the wrong client is a silent no-op (RFC 7009 §2.1, §2.2) ...
    assert.equal((await postForm(srv, '/oauth/revoke', { token: s1.refresh }, { client: b })).status, 200)
    assert.equal((await postForm(srv, '/oauth/revoke', { token: s1.refresh })).status, 200)
    assert.equal(await familyRevokedAt(srv, s0.sid), null)
  })

  test(`${kind}: POST /oauth/revoke with a refresh token revokes its family and the access tokens issued from it (RFC 7009 §2.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const a = await createClient(srv, { grantTypes: ['password', 'refresh_token'] })
    const s0 = await login(srv, { client: a })
    const s1 = await refreshOk(srv, s0.refresh, { client: a })
    const other = await login(srv, { client: a })
    const res = await postForm(srv, '/oauth/revoke', { token: s1.refresh, token_type_hint: 'refresh_token' }, { client: a })
    assert.equal(res.status, 200)
    await expectOAuthError(await refreshGrant(srv, s1.refresh, { client: a }), 400, 'invalid_grant')
    await expectAccessRevoked(srv, s0.access)
    await expectAccessRevoked(srv, s1.access)
    await expectAccessWorks(srv, other.access)
    await refreshOk(srv, other.refresh, { client: a })
  })

  test(`${kind}: a token renewed at GET /api/token from a family's access token is revoked with the family (RFC 9700 §4.14.2: reuse revokes every token of the grant)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const s0 = await login(srv)
    const renewedRes = await srv.get('/api/token', { bearer: s0.access })
    assert.equal(renewedRes.status, 200)
    const renewed = ((await renewedRes.json()) as { token: string }).token
    const chained = ((await (await srv.get('/api/token', { basic: [renewed, 'x'] })).json()) as { token: string }).token
    assert.equal(claimsOf(renewed).sid, s0.sid, 'a renewal stays in the family')
    await expectAccessWorks(srv, renewed)
    const s1 = await refreshOk(srv, s0.refresh)
    clock.advance(11)
    // The rotated token is replayed (theft): every token that came from this login must die.
    await expectOAuthError(await refreshGrant(srv, s0.refresh), 400, 'invalid_grant')
    for (const token of [s0.access, s1.access, renewed, chained]) await expectAccessRevoked(srv, token)
    await expectProblem(await srv.get('/api/token', { bearer: renewed }), 401, 'token_revoked')
  })

  test(`${kind}: renewing a client's scoped token at GET /api/token keeps its client_id and scope, never widens it (RFC 6749 §6, §3.3)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const client = await createClient(srv, { scopes: ['notes:read', 'notes:write'], grantTypes: ['password', 'refresh_token'] })
    const s0 = await login(srv, { client, scope: 'notes:read' })
    const res = await srv.get('/api/token', { bearer: s0.access })
    assert.equal(res.status, 200)
    const renewed = claimsOf(((await res.json()) as { token: string }).token)
    assert.equal(renewed.scope, 'notes:read')
    assert.equal(renewed.client_id, client.clientId)
    assert.equal(renewed.sid, s0.sid)
    assert.equal(renewed.auth_time, claimsOf(s0.access).auth_time)
  })

  test(`${kind}: refresh keeps auth_time of the password login (security baseline "Token chaining", OIDC auth_time)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const loginTime = clock.seconds()
    const s0 = await login(srv)
    assert.equal(claimsOf(s0.access).auth_time, loginTime)
    clock.advance(300)
    const s1 = await refreshOk(srv, s0.refresh)
    assert.equal(claimsOf(s1.access).auth_time, loginTime)
    assert.equal(claimsOf(s1.access).iat, loginTime + 300)
    clock.advance(3600)
    const s2 = await refreshOk(srv, s1.refresh)
    assert.equal(claimsOf(s2.access).auth_time, loginTime)
    // Renewal of a refreshed access token at /api/token keeps it as well.
    const renewed = (await (await srv.get('/api/token', { bearer: s2.access })).json()) as { token: string }
    assert.equal(claimsOf(renewed.token).auth_time, loginTime)
  })

  test(`${kind}: scope can be narrowed at refresh but not widened; a refused widening does not use up the token (RFC 6749 §6)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REFRESH_GRACE: '0' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const client = await createClient(srv, { scopes: ['a', 'b', 'c'], grantTypes: ['password', 'refresh_token'] })
    const s0 = await login(srv, { client, scope: 'a b' })
    assert.equal(claimsOf(s0.access).scope, 'a b')
    const narrowed = await expectTokenResponse(await refreshGrant(srv, s0.refresh, { client, scope: 'a' }))
    assert.equal(narrowed.scope, 'a')
    assert.equal(claimsOf(narrowed.access_token).scope, 'a')
    const s1 = sessionOf(narrowed)
    // 'c' is one of the client's scopes but was not granted in this family: refused.
    for (const scope of ['a c', 'c', 'a b c']) {
      await expectOAuthError(await refreshGrant(srv, s1.refresh, { client, scope }), 400, 'invalid_scope')
    }
    // The refused requests did not rotate the token (with GRACE=0 a rotation would make the next use reuse).
    assert.equal(await familyRevokedAt(srv, s0.sid), null)
    // Omitting scope means the scope originally granted (RFC 6749 §6), even after a narrower refresh.
    const full = await expectTokenResponse(await refreshGrant(srv, s1.refresh, { client }))
    assert.equal(full.scope, 'a b')
    assert.equal(claimsOf(full.access_token).scope, 'a b')
    assert.equal(await familyRevokedAt(srv, s0.sid), null)
  })

  test(`${kind}: unknown, malformed or missing refresh tokens → invalid_grant / invalid_request (RFC 6749 §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const s0 = await login(srv)
    for (const token of ['A'.repeat(43), 'short', `${s0.refresh}x`, s0.access, s0.refresh.toUpperCase()]) {
      await expectOAuthError(await refreshGrant(srv, token), 400, 'invalid_grant')
    }
    await expectOAuthError(await postForm(srv, '/oauth/token', { grant_type: 'refresh_token' }), 400, 'invalid_request')
    await refreshOk(srv, s0.refresh)
  })

  test(`${kind}: 30 parallel refreshes of one token → all 200 with one identical successor, no 5xx, one live token in the family (grace window, RFC 9700 §4.14.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const s0 = await login(srv)
    const answers = await Promise.all(Array.from({ length: 30 }, () => refreshGrant(srv, s0.refresh)))
    const bodies = await Promise.all(answers.map(async (r) => ({ status: r.status, text: await r.text() })))
    for (const b of bodies) assert.equal(b.status, 200, b.text)
    const successors = new Set(bodies.map((b) => (JSON.parse(b.text) as TokenResponseJson).refresh_token))
    assert.equal(successors.size, 1, 'one identical successor')
    const [successor] = [...successors] as [string]
    assert.notEqual(successor, s0.refresh)
    assert.equal(await familyRevokedAt(srv, s0.sid), null)
    const rows = await refreshRowsOfFamily(srv, s0.sid)
    assert.equal(rows.length, 2, 'the original and its one successor')
    assert.equal(rows.filter((r) => r.rotated_at === null).length, 1)
    const client = await createClient(srv)
    assert.equal((await introspect(srv, client, successor))['active'], true)
    assert.deepEqual(await introspect(srv, client, s0.refresh), { active: false })
    // Every access token handed out works.
    for (const b of bodies.slice(0, 3)) await expectAccessWorks(srv, (JSON.parse(b.text) as TokenResponseJson).access_token)
    await refreshOk(srv, successor)
  })

  test(`${kind}: 30 parallel refreshes with AUTH_REFRESH_GRACE=0 → exactly one 200, the rest invalid_grant, no 5xx, no fork (RFC 9700 §4.14.2)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REFRESH_GRACE: '0' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const s0 = await login(srv)
    const answers = await Promise.all(Array.from({ length: 30 }, () => refreshGrant(srv, s0.refresh)))
    const bodies = await Promise.all(answers.map(async (r) => ({ status: r.status, text: await r.text() })))
    for (const b of bodies) assert.ok(b.status < 500, `${b.status} ${b.text}`)
    const ok = bodies.filter((b) => b.status === 200)
    assert.equal(ok.length, 1, bodies.map((b) => b.status).join(','))
    for (const b of bodies.filter((x) => x.status !== 200)) {
      assert.equal(b.status, 400)
      assert.equal((JSON.parse(b.text) as { error: string }).error, 'invalid_grant')
    }
    const rows = await refreshRowsOfFamily(srv, s0.sid)
    assert.ok(rows.filter((r) => r.rotated_at === null).length <= 1, 'no fork')
    assert.ok(rows.length <= 2)
    // The reuse revoked the family, including the one successor that was handed out.
    assert.notEqual(await familyRevokedAt(srv, s0.sid), null)
    const winner = JSON.parse(ok[0]?.text ?? '{}') as TokenResponseJson
    await expectOAuthError(await refreshGrant(srv, winner.refresh_token ?? ''), 400, 'invalid_grant')
    await expectAccessRevoked(srv, winner.access_token)
  })
}
