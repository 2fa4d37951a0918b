/**
 * What other services see of rest-auth, against every store: the RFC 8414 metadata, the RFC 7517 JWK
 * Set, a resource server that verifies tokens knowing only the JWKS URL (jose `createRemoteJWKSet`),
 * a signing-key rotation seen from outside (security baseline "Key rotation": publish before use, keep
 * the retired key for TTL + leeway), and the operator's CLI (`keys`, `client`) as a real child process.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRemoteJWKSet, jwtVerify, type JWK, type JWTVerifyResult } from 'jose'
import { runCli } from '../helpers/cli.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'
import { rotateSigningKey } from '../../src/tokens/rotation.ts'
import {
  apiToken,
  claimsOf,
  expectOAuthError,
  expectTokenResponse,
  kidOf,
  manualClock,
  passwordGrant,
  postForm,
  registerUser,
} from '../helpers/oauth.ts'

const ISSUER = 'https://auth.example.test'

async function jwksOf(srv: TestServer): Promise<{ res: Response; keys: JWK[] }> {
  const res = await srv.get('/.well-known/jwks.json')
  assert.equal(res.status, 200)
  const body = (await res.clone().json()) as { keys: JWK[] }
  assert.ok(Array.isArray(body.keys))
  return { res, keys: body.keys }
}

async function kidsOf(srv: TestServer): Promise<string[]> {
  return (await jwksOf(srv)).keys.map((k) => k.kid as string).sort()
}

/** The Keyring re-reads keys in the background: ask until the JWK Set shows what we wait for (bounded). */
async function eventuallyKids(srv: TestServer, check: (kids: string[]) => boolean, what: string): Promise<string[]> {
  let kids: string[] = []
  for (let i = 0; i < 50; i++) {
    kids = await kidsOf(srv)
    if (check(kids)) return kids
    await sleep(20)
  }
  assert.fail(`${what}; JWKS kids: ${kids.join(', ')}`)
}

function verifierOptions(srv: TestServer, now: number) {
  return {
    algorithms: ['ES256'],
    issuer: srv.config.publicUrl,
    audience: srv.config.tokenAudience,
    typ: 'at+jwt',
    currentDate: new Date(now),
  }
}

for (const kind of STORES) {
  test(`${kind}: authorization server metadata: issuer equals PUBLIC_URL, endpoints absolute, required members present (RFC 8414 §2, §3.2)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { PUBLIC_URL: `${ISSUER}/` } })
    if (!srv) return
    const res = await srv.get('/.well-known/oauth-authorization-server')
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/)
    const m = (await res.json()) as Record<string, unknown>
    assert.equal(m['issuer'], ISSUER, 'the issuer is PUBLIC_URL without a trailing slash')
    assert.equal(m['issuer'], srv.config.publicUrl)
    const expected: Record<string, string> = {
      token_endpoint: `${ISSUER}/oauth/token`,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      revocation_endpoint: `${ISSUER}/oauth/revoke`,
      introspection_endpoint: `${ISSUER}/oauth/introspect`,
    }
    for (const [member, url] of Object.entries(expected)) {
      assert.equal(m[member], url, member)
      const parsed = new URL(String(m[member]))
      assert.equal(parsed.protocol, 'https:', `${member} is absolute`)
      assert.equal(parsed.search + parsed.hash, '')
    }
    assert.deepEqual(m['response_types_supported'], [], 'required member, empty: no authorization endpoint')
    assert.deepEqual([...(m['grant_types_supported'] as string[])].sort(), ['client_credentials', 'password', 'refresh_token'])
    assert.ok((m['token_endpoint_auth_methods_supported'] as string[]).includes('client_secret_basic'))
    assert.ok((m['token_endpoint_auth_methods_supported'] as string[]).includes('client_secret_post'))
    // Introspection needs client authentication (RFC 7662 §2.1): 'none' is not offered there.
    assert.ok(!(m['introspection_endpoint_auth_methods_supported'] as string[]).includes('none'))
    // The tokens carry the same issuer (RFC 8414 §3.3, RFC 9068 §2.2).
    await registerUser(srv, 'miguel')
    assert.equal(claimsOf(await apiToken(srv, 'miguel')).iss, ISSUER)
  })

  test(`${kind}: the JWK Set holds only public members (kty, crv, x, y, kid, alg, use) and Cache-Control: public, max-age=300 (RFC 7517 §4, RFC 7518 §6.2.1, security baseline "Key rotation")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const { res, keys } = await jwksOf(srv)
    assert.equal(res.headers.get('cache-control'), 'public, max-age=300')
    assert.ok(keys.length >= 1)
    for (const key of keys) {
      assert.deepEqual(Object.keys(key).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
      assert.equal(key.kty, 'EC')
      assert.equal(key.crv, 'P-256')
      assert.equal(key.alg, 'ES256')
      assert.equal(key.use, 'sig')
      assert.equal(key.d, undefined, 'no private member')
      assert.equal(Buffer.from(key.x ?? '', 'base64url').length, 32)
      assert.equal(Buffer.from(key.y ?? '', 'base64url').length, 32)
    }
    assert.doesNotMatch(await res.text(), /"d"\s*:/)
    await registerUser(srv, 'miguel')
    const signing = kidOf(await apiToken(srv, 'miguel'))
    assert.ok(keys.some((k) => k.kid === signing), 'the signing key is published')

    const short = await startServer(t, { store: kind, env: { AUTH_JWKS_MAX_AGE: '120' } })
    if (!short) return
    assert.equal((await jwksOf(short)).res.headers.get('cache-control'), 'public, max-age=120')
  })

  test(`${kind}: a resource server that knows only the JWKS URL verifies tokens with createRemoteJWKSet + jwtVerify (RFC 7517, RFC 9068 §4)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await apiToken(srv, 'miguel')
    const oauth = await passwordGrant(srv, 'miguel')
    const jwks = createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`))
    for (const each of [token, oauth.access_token]) {
      const verified: JWTVerifyResult = await jwtVerify(each, jwks, {
        algorithms: ['ES256'],
        issuer: srv.config.publicUrl,
        audience: srv.config.tokenAudience,
        typ: 'at+jwt',
      })
      assert.equal(verified.payload.sub, claimsOf(token).sub)
      assert.equal(verified.protectedHeader.alg, 'ES256')
    }
    // And refuses what it should: another audience, another algorithm list, a changed signature.
    await assert.rejects(jwtVerify(token, jwks, { algorithms: ['ES256'], issuer: srv.config.publicUrl, audience: 'https://other.example' }))
    await assert.rejects(jwtVerify(token, jwks, { algorithms: ['RS256'] }))
    const dot = token.lastIndexOf('.')
    const tampered = `${token.slice(0, dot + 5)}${token[dot + 5] === 'A' ? 'B' : 'A'}${token.slice(dot + 6)}`
    await assert.rejects(jwtVerify(tampered, jwks, { algorithms: ['ES256'] }))
  })

  test(`${kind}: across a key rotation the new key is published before it signs, both keys verify, and the old key leaves the JWKS after retirement + TTL + leeway (security baseline "Key rotation", RFC 7517 §4.5)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const start = clock.now()
    const jwksUrl = new URL(`${srv.url}/.well-known/jwks.json`)
    const remote = createRemoteJWKSet(jwksUrl, { cooldownDuration: 0 })

    const a = await apiToken(srv, 'miguel')
    const oldKid = kidOf(a)
    assert.deepEqual(await kidsOf(srv), [oldKid])
    await jwtVerify(a, remote, verifierOptions(srv, clock.now())) // the verifier caches a JWKS with only the old key

    const verifyWindowMs = (600 + 30) * 1000
    const next = await rotateSigningKey(srv.store, clock.now(), 300_000, verifyWindowMs)
    assert.notEqual(next.kid, oldKid)
    // Running servers re-read the keys at most once a minute (of their clock): after that, the new
    // key is published while the old one still signs.
    clock.advance(61)
    await eventuallyKids(srv, (kids) => kids.includes(next.kid) && kids.includes(oldKid), 'the staged key is published')
    const staged = await apiToken(srv, 'miguel')
    assert.equal(kidOf(staged), oldKid, 'a staged key does not sign')
    // A verifier that fetches the JWK Set now already has the next key.
    const fetched = (await (await fetch(jwksUrl)).json()) as { keys: JWK[] }
    assert.ok(fetched.keys.some((k) => k.kid === next.kid))

    // One second before activation the old key still signs; past activation the new one does.
    clock.set(start)
    clock.advance(299)
    const lastOld = await apiToken(srv, 'miguel')
    assert.equal(kidOf(lastOld), oldKid)
    clock.advance(2)
    const b = await apiToken(srv, 'miguel')
    assert.equal(kidOf(b), next.kid, 'the new key signs after activation')
    assert.equal(kidOf((await passwordGrant(srv, 'miguel')).access_token), next.kid)

    // Everyone verifies both generations: the server itself and the remote verifier (which refetches
    // on the unknown kid), and a brand-new verifier.
    for (const token of [a, staged, lastOld, b]) {
      assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200, `server accepts ${kidOf(token)}`)
      await jwtVerify(token, remote, verifierOptions(srv, clock.now()))
      await jwtVerify(token, createRemoteJWKSet(jwksUrl), verifierOptions(srv, clock.now()))
    }

    // The old key retired at activation (start + 300 s). It stays published while a token it signed can
    // still verify: until retirement + TTL + leeway (630 s).
    const retiredAt = start + 300_000
    clock.set(retiredAt)
    clock.advance(628)
    assert.ok((await kidsOf(srv)).includes(oldKid), 'the retired key is still published')
    assert.equal((await srv.get('/api/resource', { bearer: lastOld })).status, 200, 'a token of the retired key, inside the leeway')
    clock.advance(3)
    await eventuallyKids(srv, (kids) => !kids.includes(oldKid) && kids.includes(next.kid), 'the expired key left the JWKS')
    assert.equal((await srv.get('/api/resource', { bearer: lastOld })).status, 401)
    assert.equal(kidOf(await apiToken(srv, 'miguel')), next.kid)
  })

  test(`${kind}: CLI keys list|rotate and client create|list|delete: exit codes, --json, the secret shown once and working at /oauth/token (RFC 6749 §2.3.1)`, async (t) => {
    const databaseUrl = await freshDatabaseUrl(t, kind)
    if (databaseUrl === undefined) return
    const env = { DATABASE_URL: databaseUrl }

    // keys
    const empty = await runCli(['keys', 'list', '--json'], env)
    assert.equal(empty.code, 0, empty.stderr)
    assert.deepEqual(JSON.parse(empty.stdout), { keys: [] })
    const before = Date.now()
    const rotated = await runCli(['keys', 'rotate', '--json'], env)
    assert.equal(rotated.code, 0, rotated.stderr)
    const staged = JSON.parse(rotated.stdout) as { kid: string; alg: string; activatesAt: string }
    assert.equal(staged.alg, 'ES256')
    const activatesAt = Date.parse(staged.activatesAt)
    assert.ok(activatesAt >= before + 300_000 && activatesAt <= Date.now() + 300_000, 'signs after AUTH_JWKS_MAX_AGE')
    const second = await runCli(['keys', 'rotate'], env)
    assert.equal(second.code, 1, 'a second rotation while a key is staged is refused')
    assert.match(second.stderr, /refused: key .* is already staged/)
    assert.equal(second.stdout, '')
    const listed = await runCli(['keys', 'list', '--json'], env)
    assert.equal(listed.code, 0)
    const keys = (JSON.parse(listed.stdout) as { keys: Array<{ kid: string; state: string }> }).keys
    assert.deepEqual(keys.map((k) => [k.kid, k.state]), [[staged.kid, 'staged']])
    assert.doesNotMatch(listed.stdout, /"d"|private/i)
    const table = await runCli(['keys', 'list'], env)
    assert.equal(table.code, 0)
    assert.match(table.stdout, new RegExp(`${staged.kid}.*staged`))
    assert.equal((await runCli(['keys', 'spin'], env)).code, 2)
    assert.equal((await runCli(['keys', 'rotate', '--activate-in', 'soon'], env)).code, 2)

    // clients
    const created = await runCli(['client', 'create', 'billing', '--scope', 'reports:read invoices:write'], env)
    assert.equal(created.code, 0, created.stderr)
    const billingId = /client_id:\s+(\S+)/.exec(created.stdout)?.[1]
    const billingSecret = /client_secret:\s+(\S+)/.exec(created.stdout)?.[1]
    assert.ok(billingId !== undefined && billingSecret !== undefined, created.stdout)
    assert.equal(created.stdout.split(billingSecret).length - 1, 1, 'the secret is printed exactly once')
    const app = await runCli(['client', 'create', 'mobile app', '--grant', 'password', '--grant', 'refresh_token', '--json'], env)
    assert.equal(app.code, 0, app.stderr)
    const appJson = JSON.parse(app.stdout) as { client_id: string; client_secret: string; grantTypes: string[] }
    assert.deepEqual(appJson.grantTypes, ['password', 'refresh_token'])
    assert.equal((await runCli(['client', 'create', 'bad', '--grant', 'implicit'], env)).code, 2)
    assert.equal((await runCli(['client', 'create'], env)).code, 2)

    const list = await runCli(['client', 'list', '--json'], env)
    assert.equal(list.code, 0)
    const clients = (JSON.parse(list.stdout) as { clients: Array<{ client_id: string; name: string; scopes: string[] }> }).clients
    assert.deepEqual(clients.map((c) => c.client_id).sort(), [billingId, appJson.client_id].sort())
    assert.deepEqual(clients.find((c) => c.client_id === billingId)?.scopes, ['reports:read', 'invoices:write'])
    const listText = await runCli(['client', 'list'], env)
    for (const out of [list.stdout, listText.stdout]) {
      assert.ok(!out.includes(billingSecret) && !out.includes(appJson.client_secret), 'list never shows a secret')
      assert.doesNotMatch(out, /[0-9a-f]{64}/, 'nor its hash')
    }
    assert.match(listText.stdout, /mobile app/)

    // A server on that database accepts the printed secrets.
    const srv = await startServer(t, { store: kind, databaseUrl })
    assert.ok(srv)
    const billing = { clientId: billingId, secret: billingSecret }
    const issued = await expectTokenResponse(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials', scope: 'reports:read' }, { client: billing }))
    assert.equal(issued.scope, 'reports:read')
    await registerUser(srv, 'miguel')
    const mobile = { clientId: appJson.client_id, secret: appJson.client_secret }
    const grant = await passwordGrant(srv, 'miguel', { client: mobile })
    assert.equal(claimsOf(grant.access_token).client_id, mobile.clientId)
    // The staged key is published by the server; it made its own active key to sign meanwhile.
    assert.ok((await kidsOf(srv)).includes(staged.kid))
    assert.notEqual(kidOf(grant.access_token), staged.kid)

    const deleted = await runCli(['client', 'delete', billingId, '--json'], env)
    assert.equal(deleted.code, 0, deleted.stderr)
    assert.deepEqual(JSON.parse(deleted.stdout), { deleted: billingId })
    const again = await runCli(['client', 'delete', billingId], env)
    assert.equal(again.code, 1)
    await srv.sync()
    await expectOAuthError(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client: billing }), 401, 'invalid_client')
    // Deleting a client removes its refresh tokens, and the access tokens of those sessions stop working.
    assert.equal((await srv.get('/api/resource', { bearer: grant.access_token })).status, 200)
    assert.equal((await runCli(['client', 'delete', mobile.clientId], env)).code, 0)
    // the CLI is another process: the server learns of its change from the change log (sync reads it now)
    await srv.sync()
    await expectOAuthError(await postForm(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: grant.refresh_token ?? '' }, { client: mobile }), 401, 'invalid_client')
    await expectOAuthError(await postForm(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: grant.refresh_token ?? '' }), 400, 'invalid_grant')
    assert.equal((await srv.get('/api/resource', { bearer: grant.access_token })).status, 401)
  })
}
