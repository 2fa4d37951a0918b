/**
 * Log redaction (house style §3 anti-pattern B and convention 3: `detail`/`cause` go to the log "after
 * redaction"; security baseline "Refresh token … SHA-256 hash at rest"). One server at LOG_LEVEL=trace, the
 * most talkative level, goes through every flow that handles a secret, successful and failed; then its whole
 * log must hold none of the passwords sent, none of the tokens, refresh tokens, client secrets or invite
 * codes issued, no argon2 hash and no private signing-key material.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CLI_ACTOR } from '../../src/audit/audit.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { createClient, expectTokenResponse, postForm, type TestClient } from '../helpers/oauth.ts'
import { expectJson, expectProblem, STRONG, tamperSignature, tokenOf } from '../http/support.ts'

/** Secrets made only of [A-Za-z0-9-], so that they appear verbatim (no JSON escaping) if they are logged. */
const PASSWORD = 'orchid-Lantern-7741-quarry'
const NEW_PASSWORD = 'saffron-Harbor-2290-velvet'
const INVITED_PASSWORD = 'juniper-Comet-5813-anvil'
const WRONG_PASSWORD = 'walrus-Meadow-0062-ember'
const UNKNOWN_USER_PASSWORD = 'gravel-Sonnet-3307-plume'
const TOKEN_AS_USERNAME_PASSWORD = 'unused-Kettle-9148-drift'
const BAD_JSON_PASSWORD = 'marble-Tundra-4471-hollow'

interface Issued {
  readonly label: string
  readonly value: string
}

class Secrets {
  readonly #all: Issued[] = []

  add(label: string, value: string | undefined): string {
    assert.equal(typeof value, 'string', `${label} was issued`)
    const v = value as string
    assert.ok(v.length >= 16, `${label} is long enough to search for`)
    this.#all.push({ label, value: v })
    return v
  }

  /** A token is also searched for by each of its segments (a log line could hold its signature alone). */
  addToken(label: string, token: string | undefined): string {
    const t = this.add(label, token)
    const parts = t.split('.')
    if (parts.length === 3) {
      parts.forEach((part, i) => {
        // The header segment is shared by every token of one key, so only payload and signature identify it.
        if (i > 0) this.#all.push({ label: `${label} (segment ${i + 1})`, value: part })
      })
    }
    return t
  }

  get all(): readonly Issued[] {
    return this.#all
  }
}

async function oauthToken(srv: TestServer, params: Record<string, string>, client: TestClient): Promise<{ access_token: string; refresh_token?: string }> {
  return expectTokenResponse(await postForm(srv, '/oauth/token', params, { client }))
}

for (const kind of STORES) {
  test(`${kind}: at LOG_LEVEL=trace no password, token, refresh token, client secret, invite code, argon2 hash or private key reaches the log (house style anti-pattern B)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { LOG_LEVEL: 'trace' } })
    if (!srv) return
    assert.equal(srv.config.logLevel, 'trace')
    const s = new Secrets()
    for (const p of [PASSWORD, NEW_PASSWORD, INVITED_PASSWORD, WRONG_PASSWORD, UNKNOWN_USER_PASSWORD, TOKEN_AS_USERNAME_PASSWORD, BAD_JSON_PASSWORD, STRONG]) {
      s.add('a password', p)
    }

    // Registration, Basic login, /api/token
    const reg = await srv.register('miguel', PASSWORD)
    assert.equal(reg.status, 201, await reg.text())
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { basic: ['miguel', PASSWORD] }), 200), { data: 'Hello, miguel!' })
    const t1 = s.addToken('token from /api/token', await tokenOf(srv, { basic: ['miguel', PASSWORD] }))

    // The token as the Basic username, as Bearer, and renewal with it
    assert.equal((await srv.get('/api/resource', { basic: [t1, TOKEN_AS_USERNAME_PASSWORD] })).status, 200)
    assert.equal((await srv.get('/api/resource', { bearer: t1 })).status, 200)
    const t2 = s.addToken('renewed token', await tokenOf(srv, { bearer: t1 }))
    const t2b = s.addToken('token renewed through the Basic username', await tokenOf(srv, { basic: [t1, TOKEN_AS_USERNAME_PASSWORD] }))

    // OAuth: password grant with a confidential client, refresh, reuse within the grace window, revoke
    const client = await createClient(srv, { grantTypes: ['password', 'refresh_token'] })
    s.add('client secret', client.secret)
    const g1 = await oauthToken(srv, { grant_type: 'password', username: 'miguel', password: PASSWORD }, client)
    const a1 = s.addToken('OAuth access token', g1.access_token)
    const r1 = s.add('refresh token', g1.refresh_token)
    const g2 = await oauthToken(srv, { grant_type: 'refresh_token', refresh_token: r1 }, client)
    s.addToken('refreshed access token', g2.access_token)
    const r2 = s.add('rotated refresh token', g2.refresh_token)
    const reuse = await postForm(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: r1 }, { client })
    await reuse.arrayBuffer()
    // The public password grant (no client) too.
    const pub = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: PASSWORD })
    const pubBody = (await pub.json()) as { access_token?: string; refresh_token?: string }
    if (pub.status === 200) {
      s.addToken('public-grant access token', pubBody.access_token)
      if (pubBody.refresh_token !== undefined) s.add('public-grant refresh token', pubBody.refresh_token)
    }
    assert.equal((await postForm(srv, '/oauth/introspect', { token: a1 }, { client })).status, 200)
    assert.equal((await postForm(srv, '/oauth/revoke', { token: r2 }, { client })).status, 200)
    assert.equal((await postForm(srv, '/oauth/revoke', { token: a1 }, { client })).status, 200)

    // Logout of a token, and the revoked token presented again
    assert.equal((await srv.request('DELETE', '/api/token', { bearer: t2 })).status, 204)
    await expectProblem(await srv.get('/api/resource', { bearer: t2 }), 401, 'token_revoked')

    // Failures: wrong password, unknown user, failed password grant, forged token, malformed JSON holding a password
    await expectProblem(await srv.get('/api/resource', { basic: ['miguel', WRONG_PASSWORD] }), 401, 'invalid_credentials')
    await expectProblem(await srv.get('/api/token', { basic: ['nobody-here', UNKNOWN_USER_PASSWORD] }), 401, 'invalid_credentials')
    const badGrant = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: WRONG_PASSWORD }, { client })
    assert.equal(badGrant.status, 400, await badGrant.text())
    await expectProblem(await srv.get('/api/resource', { bearer: tamperSignature(t2b) }), 401, 'token_invalid')
    const badJson = await srv.request('POST', '/api/users', {
      headers: { 'content-type': 'application/json' },
      body: `{"username":"mallory","password":"${BAD_JSON_PASSWORD}" oops}`,
    })
    await expectProblem(badJson, 400, 'invalid_json')
    const weak = await srv.register('mallory', 'password')
    assert.equal(weak.status, 400, await weak.text())

    // Password change (revokes every token, returns a fresh one)
    const changed = await srv.request('PUT', '/api/users/me/password', {
      basic: ['miguel', PASSWORD],
      json: { current_password: PASSWORD, new_password: NEW_PASSWORD },
    })
    const changedBody = await expectJson<{ token: string }>(changed, 200)
    s.addToken('token after the password change', changedBody.token)
    await expectProblem(await srv.get('/api/resource', { bearer: t2b }), 401, 'token_revoked')
    assert.equal((await srv.get('/api/resource', { basic: ['miguel', NEW_PASSWORD] })).status, 200)

    // Admin: the first admin made as the CLI does, an invite created through the API, and used
    await srv.runtime.accounts.create(CLI_ACTOR, { username: 'boss', password: STRONG, roles: ['admin'] })
    const boss = s.addToken('admin token', await tokenOf(srv, { basic: ['boss', STRONG] }))
    const invite = await expectJson<{ id: string; code: string }>(
      await srv.post('/api/admin/invites', { bearer: boss, json: { expires_in: 3600 } }),
      201,
    )
    const code = s.add('invite code', invite.code)
    const invited = await srv.request('POST', '/api/users', { json: { username: 'invited', password: INVITED_PASSWORD, invite: code } })
    assert.equal(invited.status, 201, await invited.text())
    assert.equal((await srv.get('/api/resource', { basic: ['invited', INVITED_PASSWORD] })).status, 200)

    // The private halves of every signing key (their "d").
    const keys = await srv.store.listSigningKeys()
    assert.ok(keys.length > 0)
    for (const key of keys) {
      const d = (JSON.parse(key.privateJwk) as { d?: string }).d
      s.add(`private key d of ${key.kid}`, d)
    }

    // ---- the log ----
    const log = srv.logs()
    const lines = log.split('\n').filter((l) => l.trim() !== '')
    assert.ok(lines.length > 50, `the server logged (${lines.length} lines)`)
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `a log line that is not JSON: ${line.slice(0, 200)}`)
    assert.match(log, /incoming request/, 'requests were logged')
    const leaks = s.all.filter(({ value }) => log.includes(value)).map(({ label }) => label)
    assert.deepEqual(leaks, [], `secrets in the log: ${leaks.join(', ')}`)
    assert.ok(!log.includes('$argon2'), 'an argon2 hash is in the log')
    assert.doesNotMatch(log, /"d"\s*:\s*"/, 'a private JWK member is in the log')
    assert.doesNotMatch(log, /"authorization"\s*:\s*"(?!\[redacted\])/i, 'an Authorization header is in the log')
  })
}
