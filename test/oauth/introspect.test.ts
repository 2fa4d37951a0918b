/**
 * POST /oauth/introspect (RFC 7662) over real HTTP, against every store: the caller must be an
 * authenticated client (§2.1); an active token is described (§2.2); anything else is exactly
 * `{"active": false}` and nothing more (§2.2: "the authorization server MUST return ... active false").
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import {
  apiToken,
  claimsOf,
  createClient,
  expectOAuthError,
  expectTokenResponse,
  introspect,
  manualClock,
  passwordGrant,
  postForm,
  refreshGrant,
  registerUser,
} from '../helpers/oauth.ts'

const INACTIVE = { active: false }

for (const kind of STORES) {
  test(`${kind}: introspection without client authentication → 401 invalid_client (RFC 7662 §2.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    const client = await createClient(srv)
    const none = await postForm(srv, '/oauth/introspect', { token })
    assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/)
    await expectOAuthError(none, 401, 'invalid_client')
    await expectOAuthError(await postForm(srv, '/oauth/introspect', { token }, { client: { ...client, secret: 'wrong' } }), 401, 'invalid_client')
    await expectOAuthError(await postForm(srv, '/oauth/introspect', { token, client_id: client.clientId }), 401, 'invalid_client')
    // A user's token or password is not client authentication.
    await expectOAuthError(await postForm(srv, '/oauth/introspect', { token }, { headers: { authorization: `Bearer ${token}` } }), 401, 'invalid_client')
    // With client authentication (either method) it answers; a missing token parameter is invalid_request.
    assert.equal((await introspect(srv, client, token))['active'], true)
    const post = await postForm(srv, '/oauth/introspect', { token, client_id: client.clientId, client_secret: client.secret })
    assert.equal(post.status, 200)
    assert.equal(((await post.json()) as { active: boolean }).active, true)
    await expectOAuthError(await postForm(srv, '/oauth/introspect', {}, { client }), 400, 'invalid_request')
  })

  test(`${kind}: an active access token → active true with token_type, sub, username, iat, exp, and client_id/scope when present (RFC 7662 §2.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const id = await registerUser(srv, 'miguel')
    const caller = await createClient(srv)
    const app = await createClient(srv, { scopes: ['notes:read', 'notes:write'], grantTypes: ['password', 'refresh_token', 'client_credentials'] })

    const plain = await apiToken(srv, 'miguel')
    const c = claimsOf(plain)
    assert.deepEqual(await introspect(srv, caller, plain), {
      active: true,
      token_type: 'Bearer',
      iss: srv.config.publicUrl,
      aud: srv.config.tokenAudience,
      sub: String(id),
      iat: c.iat,
      exp: c.exp,
      jti: c.jti,
      username: 'miguel',
      auth_time: c.auth_time,
    })

    const viaClient = await passwordGrant(srv, 'miguel', { client: app, scope: 'notes:read' })
    const answer = await introspect(srv, caller, viaClient.access_token)
    assert.equal(answer['active'], true)
    assert.equal(answer['sub'], String(id))
    assert.equal(answer['username'], 'miguel')
    assert.equal(answer['client_id'], app.clientId)
    assert.equal(answer['scope'], 'notes:read')
    assert.equal(answer['exp'], claimsOf(viaClient.access_token).exp)
    assert.equal(answer['iat'], claimsOf(viaClient.access_token).iat)

    const service = await expectTokenResponse(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client: app }))
    const own = await introspect(srv, caller, service.access_token)
    assert.equal(own['active'], true)
    assert.equal(own['sub'], app.clientId)
    assert.equal(own['client_id'], app.clientId)
    assert.equal(own['scope'], 'notes:read notes:write')
    assert.equal(own['username'], undefined, 'a client token has no user')
  })

  test(`${kind}: an active refresh token → active true, token_type refresh_token (RFC 7662 §2.2, RFC 7009 §2.1 token types)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    const id = await registerUser(srv, 'miguel')
    const caller = await createClient(srv)
    const app = await createClient(srv, { scopes: ['notes:read'], grantTypes: ['password', 'refresh_token'] })
    const open = await passwordGrant(srv, 'miguel')
    const answer = await introspect(srv, caller, open.refresh_token ?? '')
    assert.equal(answer['active'], true)
    assert.equal(answer['token_type'], 'refresh_token')
    assert.equal(answer['sub'], String(id))
    assert.equal(answer['username'], 'miguel')
    assert.equal(answer['client_id'], undefined)
    assert.equal(answer['iat'], clock.seconds())
    assert.equal(answer['exp'], clock.seconds() + srv.config.refreshIdleTtl, 'the nearer of idle and absolute expiry')
    assert.equal(answer['auth_time'], clock.seconds())

    const bound = await passwordGrant(srv, 'miguel', { client: app, scope: 'notes:read' })
    const boundAnswer = await introspect(srv, caller, bound.refresh_token ?? '')
    assert.equal(boundAnswer['active'], true)
    assert.equal(boundAnswer['token_type'], 'refresh_token')
    assert.equal(boundAnswer['client_id'], app.clientId)
    assert.equal(boundAnswer['scope'], 'notes:read')
    // Introspection does not use the token up.
    await expectTokenResponse(await refreshGrant(srv, bound.refresh_token ?? '', { client: app }))
  })

  test(`${kind}: revoked, expired, garbage and rotated tokens → exactly {"active":false} (RFC 7662 §2.2)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { AUTH_REFRESH_IDLE_TTL: '3600' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const caller = await createClient(srv)
    const expectInactive = async (token: string, what: string) => {
      const res = await postForm(srv, '/oauth/introspect', { token }, { client: caller })
      const text = await res.text()
      assert.equal(res.status, 200, `${what}: ${text}`)
      assert.equal(res.headers.get('cache-control'), 'no-store')
      assert.deepEqual(JSON.parse(text), INACTIVE, `${what}: ${text}`)
    }

    // Revoked access tokens: by logout, by RFC 7009 revocation, by "log out everywhere".
    const loggedOut = await apiToken(srv, 'miguel')
    assert.equal((await srv.request('DELETE', '/api/token', { bearer: loggedOut })).status, 204)
    await expectInactive(loggedOut, 'logged-out access token')
    const revoked = await apiToken(srv, 'miguel')
    assert.equal((await postForm(srv, '/oauth/revoke', { token: revoked })).status, 200)
    await expectInactive(revoked, 'revoked access token')

    // Refresh tokens: rotated (even inside the grace window), then a revoked family.
    const grant = await passwordGrant(srv, 'miguel')
    const rotated = grant.refresh_token ?? ''
    const next = await expectTokenResponse(await refreshGrant(srv, rotated))
    await expectInactive(rotated, 'rotated refresh token, inside the grace window')
    assert.equal((await introspect(srv, caller, next.refresh_token ?? ''))['active'], true)
    assert.equal((await postForm(srv, '/oauth/revoke', { token: next.refresh_token ?? '' })).status, 200)
    await expectInactive(next.refresh_token ?? '', 'refresh token of a revoked family')
    await expectInactive(next.access_token, 'access token of a revoked family')
    await expectInactive(grant.access_token, 'first access token of a revoked family')

    // Garbage of every shape.
    for (const garbage of ['garbage', 'A'.repeat(43), 'a.b.c', `${loggedOut}x`, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.', '']) {
      if (garbage === '') {
        await expectOAuthError(await postForm(srv, '/oauth/introspect', { token: garbage }, { client: caller }), 400, 'invalid_request')
      } else {
        await expectInactive(garbage, `garbage ${garbage.slice(0, 20)}`)
      }
    }

    // Expired: an access token past exp + leeway, a refresh token past its idle time.
    const live = await apiToken(srv, 'miguel')
    const liveRefresh = (await passwordGrant(srv, 'miguel')).refresh_token ?? ''
    assert.equal((await introspect(srv, caller, live))['active'], true)
    clock.advance(600 + srv.config.clockLeeway + 1)
    await expectInactive(live, 'expired access token')
    clock.advance(3600)
    await expectInactive(liveRefresh, 'idle-expired refresh token')

    // Log out everywhere: the user's earlier tokens are inactive (a fresh one, issued after, is active).
    const fresh = await apiToken(srv, 'miguel')
    assert.equal((await srv.request('DELETE', '/api/tokens', { bearer: fresh })).status, 204)
    await expectInactive(fresh, 'access token revoked by log out everywhere')
    clock.advance(1)
    assert.equal((await introspect(srv, caller, await apiToken(srv, 'miguel')))['active'], true)
  })
}
