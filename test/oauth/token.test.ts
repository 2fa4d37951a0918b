/**
 * POST /oauth/token over real HTTP, against every store: the password grant (RFC 6749 §4.3), client
 * credentials (§4.4), client authentication (§2.3.1), request syntax (§3.1, §3.2) and error answers
 * (§5.2), and what a service client's token may do (RFC 6750 §3.1).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import {
  apiToken,
  assertBearerChallenge,
  claimsOf,
  createClient,
  expectOAuthError,
  expectProblem,
  expectTokenResponse,
  formBody,
  passwordGrant,
  PASSWORD,
  postForm,
  registerUser,
} from '../helpers/oauth.ts'

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

for (const kind of STORES) {
  test(`${kind}: password grant → access_token, token_type Bearer, expires_in, refresh_token, no-store (RFC 6749 §4.3.3, §5.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const id = await registerUser(srv, 'miguel')
    const res = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: PASSWORD })
    const body = await expectTokenResponse(res)
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type'])
    assert.equal(body.expires_in, 600)
    assert.match(body.refresh_token ?? '', /^[A-Za-z0-9_-]{43}$/, '256-bit opaque refresh token')
    const claims = claimsOf(body.access_token)
    assert.equal(claims.sub, String(id))
    assert.equal(claims.exp - claims.iat, 600)
    assert.equal(typeof claims.sid, 'string', 'the access token names its refresh family')
    assert.equal(claims.client_id, undefined)
    // The access token is a normal user token.
    const resource = await srv.get('/api/resource', { bearer: body.access_token })
    assert.equal(resource.status, 200)
    assert.deepEqual(await resource.json(), { data: 'Hello, miguel!' })
    // Usernames are matched as at Basic login (case-insensitive canonical form).
    await expectTokenResponse(await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'MIGUEL', password: PASSWORD }))
    // Two logins: two families, two different refresh tokens.
    const again = await passwordGrant(srv, 'miguel')
    assert.notEqual(again.refresh_token, body.refresh_token)
    assert.notEqual(claimsOf(again.access_token).sid, claims.sid)
  })

  test(`${kind}: password grant with a wrong password → 400 invalid_grant; an unknown user gets the identical answer (RFC 6749 §5.2, house style 14)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const wrong = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: 'not the password at all' })
    const unknown = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'nobody', password: 'not the password at all' })
    const wrongText = await wrong.clone().text()
    const unknownText = await unknown.clone().text()
    await expectOAuthError(wrong, 400, 'invalid_grant')
    await expectOAuthError(unknown, 400, 'invalid_grant')
    assert.equal(unknownText, wrongText)
    assert.equal(unknown.headers.get('www-authenticate'), wrong.headers.get('www-authenticate'))
    // Missing fields are invalid_request, not invalid_grant.
    const missing = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel' })
    await expectOAuthError(missing, 400, 'invalid_request')
    // The wrong password did not count as a login: no token was issued, the right one still works.
    await passwordGrant(srv, 'miguel')
  })

  test(`${kind}: AUTH_PASSWORD_GRANT=off → 400 unsupported_grant_type and the metadata omits password; GET /api/token still works (RFC 9700 §2.4, RFC 8414 §2)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_PASSWORD_GRANT: 'off' } })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const res = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: PASSWORD })
    await expectOAuthError(res, 400, 'unsupported_grant_type')
    // Even a client registered for the password grant cannot use it.
    const client = await createClient(srv, { grantTypes: ['password', 'refresh_token'] })
    const withClient = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: PASSWORD }, { client })
    await expectOAuthError(withClient, 400, 'unsupported_grant_type')
    const metadata = (await (await srv.get('/.well-known/oauth-authorization-server')).json()) as { grant_types_supported: string[] }
    assert.deepEqual([...metadata.grant_types_supported].sort(), ['client_credentials', 'refresh_token'])
    assert.equal((await srv.get('/api/token', { basic: ['miguel', PASSWORD] })).status, 200)

    const on = await startServer(t, { store: kind })
    if (!on) return
    const onMeta = (await (await on.get('/.well-known/oauth-authorization-server')).json()) as { grant_types_supported: string[] }
    assert.ok(onMeta.grant_types_supported.includes('password'))
  })

  test(`${kind}: a JSON body, no body or another media type → 4xx with an RFC 6749 error member (RFC 6749 §3.2, §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const json = await srv.post('/oauth/token', { json: { grant_type: 'password', username: 'miguel', password: PASSWORD } })
    assert.ok(json.status >= 400 && json.status < 500, `status ${json.status}`)
    await expectOAuthError(json, json.status, 'invalid_request')
    const none = await srv.post('/oauth/token')
    await expectOAuthError(none, 400, 'invalid_request')
    const text = await srv.post('/oauth/token', { headers: { 'content-type': 'text/plain' }, body: 'grant_type=password' })
    assert.ok(text.status >= 400 && text.status < 500)
    await expectOAuthError(text, text.status, 'invalid_request')
    // The same body form-encoded works (the charset parameter is allowed).
    const ok = await srv.post('/oauth/token', {
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
      body: formBody({ grant_type: 'password', username: 'miguel', password: PASSWORD }),
    })
    await expectTokenResponse(ok)
  })

  test(`${kind}: missing grant_type → invalid_request, unknown grant_type → unsupported_grant_type (RFC 6749 §4.3.2, §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    await expectOAuthError(await postForm(srv, '/oauth/token', { username: 'miguel', password: PASSWORD }), 400, 'invalid_request')
    await expectOAuthError(await postForm(srv, '/oauth/token', { grant_type: '' }), 400, 'invalid_request')
    for (const grant of ['authorization_code', 'implicit', 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'PASSWORD', 'password ']) {
      const res = await postForm(srv, '/oauth/token', { grant_type: grant, username: 'miguel', password: PASSWORD })
      await expectOAuthError(res, 400, 'unsupported_grant_type')
    }
  })

  test(`${kind}: a repeated parameter → invalid_request (RFC 6749 §3.1: parameters MUST NOT be included more than once)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const client = await createClient(srv, { scopes: ['a', 'b'] })
    const cases: Array<Array<[string, string]>> = [
      [['grant_type', 'password'], ['grant_type', 'password'], ['username', 'miguel'], ['password', PASSWORD]],
      [['grant_type', 'password'], ['username', 'miguel'], ['username', 'susan'], ['password', PASSWORD]],
      [['grant_type', 'password'], ['username', 'miguel'], ['password', 'wrong'], ['password', PASSWORD]],
      [['grant_type', 'client_credentials'], ['scope', 'a'], ['scope', 'b']],
      [['grant_type', 'client_credentials'], ['client_id', client.clientId], ['client_id', client.clientId], ['client_secret', client.secret]],
    ]
    for (const params of cases) {
      const res = await srv.post('/oauth/token', { headers: FORM, body: new URLSearchParams(params).toString() })
      const body = await expectOAuthError(res, 400, 'invalid_request')
      assert.match(body.error_description ?? '', /repeated/)
    }
  })

  test(`${kind}: client_credentials with client_secret_basic and with client_secret_post → a client token without refresh token (RFC 6749 §2.3.1, §4.4.3)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const client = await createClient(srv, { scopes: ['reports:read', 'invoices:write'] })
    const basic = await expectTokenResponse(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client }))
    assert.equal(basic.refresh_token, undefined)
    assert.equal(basic.scope, 'reports:read invoices:write')
    assert.equal(basic.expires_in, 600)
    const post = await expectTokenResponse(
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret }),
    )
    assert.equal(post.refresh_token, undefined)
    for (const token of [basic.access_token, post.access_token]) {
      const c = claimsOf(token)
      assert.equal(c.sub, client.clientId)
      assert.equal(c.client_id, client.clientId)
      assert.equal(c.scope, 'reports:read invoices:write')
      assert.equal(c.auth_time, undefined)
      assert.equal(c.sid, undefined)
    }
    // Basic with client_id repeated in the body (same value) is allowed; a different one is not.
    await expectTokenResponse(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: client.clientId }, { client }))
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: 'ra_someoneelse' }, { client }),
      400,
      'invalid_request',
    )
    // Both methods at once → invalid_request (RFC 6749 §2.3: one method per request).
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.secret }, { client }),
      400,
      'invalid_request',
    )
  })

  test(`${kind}: wrong client secret or unknown client → 401 invalid_client with WWW-Authenticate (RFC 6749 §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const client = await createClient(srv, { scopes: ['a'] })
    const wrongSecret = { clientId: client.clientId, secret: `${client.secret.slice(0, -1)}${client.secret.endsWith('A') ? 'B' : 'A'}` }
    const unknown = { clientId: 'ra_doesnotexist0000000', secret: client.secret }
    const answers: Response[] = [
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client: wrongSecret }),
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client: unknown }),
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: client.clientId, client_secret: 'wrong' }),
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: unknown.clientId, client_secret: client.secret }),
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: client.clientId, client_secret: '' }),
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { headers: { authorization: 'Basic !!!' } }),
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { headers: { authorization: 'Bearer abc' } }),
    ]
    const bodies = new Set<string>()
    for (const res of answers) {
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm=/)
      const body = await expectOAuthError(res, 401, 'invalid_client')
      if (body.error_description === 'Client authentication failed.') bodies.add(JSON.stringify(body))
    }
    // An unknown client and a wrong secret read the same.
    assert.equal(bodies.size, 1)
  })

  test(`${kind}: client_credentials without client authentication, or client_id without secret → 401 invalid_client (RFC 6749 §4.4.2, §3.2.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const client = await createClient(srv)
    const none = await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' })
    assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/)
    await expectOAuthError(none, 401, 'invalid_client')
    const idOnly = await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', client_id: client.clientId })
    await expectOAuthError(idOnly, 401, 'invalid_client')
  })

  test(`${kind}: a client without the grant type → 400 unauthorized_client (RFC 6749 §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const service = await createClient(srv, { grantTypes: ['client_credentials'] })
    const app = await createClient(srv, { grantTypes: ['password', 'refresh_token'] })
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: PASSWORD }, { client: service }),
      400,
      'unauthorized_client',
    )
    await expectOAuthError(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client: app }), 400, 'unauthorized_client')
    const grant = await passwordGrant(srv, 'miguel', { client: app })
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: grant.refresh_token ?? '' }, { client: service }),
      400,
      'unauthorized_client',
    )
  })

  test(`${kind}: a subset of the client's scopes is granted; a scope outside them → invalid_scope (RFC 6749 §3.3, §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const client = await createClient(srv, { scopes: ['reports:read', 'invoices:write'], grantTypes: ['client_credentials', 'password', 'refresh_token'] })
    const subset = await expectTokenResponse(
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', scope: 'reports:read' }, { client }),
    )
    assert.equal(subset.scope, 'reports:read')
    assert.equal(claimsOf(subset.access_token).scope, 'reports:read')
    // Extra spaces and duplicates are tolerated (scope is a space-delimited set).
    const spaced = await expectTokenResponse(
      await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', scope: ' reports:read  reports:read ' }, { client }),
    )
    assert.equal(spaced.scope, 'reports:read')
    for (const scope of ['admin', 'reports:read admin', 'reports:read "x"', 'reports:read\\x']) {
      await expectOAuthError(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', scope }, { client }), 400, 'invalid_scope')
    }
    // The password grant applies the same rule for a client; without a client no scope can be asked for.
    const user = await passwordGrant(srv, 'miguel', { client, scope: 'invoices:write' })
    assert.equal(user.scope, 'invoices:write')
    assert.equal(claimsOf(user.access_token).client_id, client.clientId)
    assert.equal(claimsOf(user.access_token).scope, 'invoices:write')
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: PASSWORD, scope: 'admin' }, { client }),
      400,
      'invalid_scope',
    )
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: PASSWORD, scope: 'reports:read' }),
      400,
      'invalid_scope',
    )
  })

  test(`${kind}: a client token carries client_id and scope and gets 403 insufficient_scope on user routes (RFC 9068 §2.2, RFC 6750 §3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const client = await createClient(srv, { scopes: ['reports:read'] })
    const { access_token: token } = await expectTokenResponse(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client }))
    const c = claimsOf(token)
    assert.equal(c.client_id, client.clientId)
    assert.equal(c.scope, 'reports:read')
    for (const path of ['/api/resource', '/api/token']) {
      const res = await srv.get(path, { bearer: token })
      assertBearerChallenge(res, 'insufficient_scope')
      await expectProblem(res, 403, 'insufficient_scope')
    }
    const all = await srv.request('DELETE', '/api/tokens', { bearer: token })
    assertBearerChallenge(all, 'insufficient_scope')
    await expectProblem(all, 403, 'insufficient_scope')
    // A user's token on the same routes is fine.
    assert.equal((await srv.get('/api/resource', { bearer: await apiToken(srv, 'miguel') })).status, 200)
  })
}
