/**
 * Self-service over real HTTP, against every store: GET /api/users/me, PUT /api/users/me/password,
 * DELETE /api/users/me, the last-admin guard, and what disabling an account does to its password and
 * tokens (docs/errors.md: current_password_incorrect, last_admin, account_disabled, token_revoked).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CLI_ACTOR } from '../../src/audit/audit.ts'
import { isRestAuthError } from '../../src/errors.ts'
import { checkPassword } from '../../src/passwords/policy.ts'
import { expectOAuthError, passwordGrant, refreshGrant } from '../helpers/oauth.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, registerOk, STRONG, tokenOf } from './support.ts'

const ADMIN = ['boss', STRONG] as const
const NEW_PASSWORD = 'purple elephant under water'

interface AccountJson {
  readonly id: number
  readonly username: string
  readonly status: string
  readonly roles: readonly string[]
  readonly created_at: string
  readonly updated_at: string
}

async function makeAdmin(srv: TestServer, username: string = ADMIN[0]): Promise<number> {
  const user = await srv.runtime.accounts.create(CLI_ACTOR, { username, password: STRONG, roles: ['admin'] })
  return user.id
}

function changePassword(srv: TestServer, auth: { basic?: readonly [string, string]; bearer?: string }, current: string, next: string) {
  return srv.request('PUT', '/api/users/me/password', { ...auth, json: { current_password: current, new_password: next } })
}

function deleteMe(srv: TestServer, auth: { basic?: readonly [string, string]; bearer?: string }, password: string) {
  return srv.request('DELETE', '/api/users/me', { ...auth, json: { password } })
}

/** The code the configured password policy gives `password` (or undefined if it accepts it). */
function policyCode(srv: TestServer, password: string, username: string): string | undefined {
  try {
    checkPassword(srv.config.passwordPolicy, password, { username })
    return undefined
  } catch (error) {
    if (isRestAuthError(error)) return error.code
    throw error
  }
}

function isIsoDateTime(value: unknown): boolean {
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(value) && !Number.isNaN(Date.parse(value))
}

for (const kind of STORES) {
  // ---- GET /api/users/me ----

  test(`${kind}: GET /api/users/me → 200 {id, username, status, roles, created_at, updated_at} by password, Bearer token and token as Basic username`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const user = await registerOk(srv, 'Miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const auths: Array<[string, { basic?: readonly [string, string]; bearer?: string }]> = [
      ['Basic password', { basic: ['Miguel', STRONG] }],
      ['Bearer', { bearer: token }],
      ['token as Basic username', { basic: [token, 'unused'] }],
    ]
    const seen: AccountJson[] = []
    for (const [how, auth] of auths) {
      const res: Response = await srv.get('/api/users/me', auth)
      const text = await res.clone().text()
      const me = await expectJson<AccountJson>(res, 200)
      assert.deepEqual(Object.keys(me).sort(), ['created_at', 'id', 'roles', 'status', 'updated_at', 'username'], how)
      assert.equal(me.id, user.id, how)
      assert.equal(me.username, 'Miguel', how)
      assert.equal(me.status, 'active', how)
      assert.deepEqual(me.roles, [], how)
      assert.ok(isIsoDateTime(me.created_at), `${how}: created_at ${me.created_at}`)
      assert.ok(isIsoDateTime(me.updated_at), `${how}: updated_at ${me.updated_at}`)
      assert.doesNotMatch(text, /\$argon2|password|hash/i, `${how}: no password or hash in ${text}`)
      seen.push(me)
    }
    assert.deepEqual(seen[1], seen[0])
    assert.deepEqual(seen[2], seen[0])
  })

  test(`${kind}: GET /api/users/me unauthenticated → 401 with WWW-Authenticate (RFC 7235 §3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const none = await srv.get('/api/users/me')
    assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/)
    await expectProblem(none, 401, 'authentication_required')
    const wrong = await srv.get('/api/users/me', { basic: ['miguel', 'not the password'] })
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic realm=/)
    await expectProblem(wrong, 401, 'invalid_credentials')
  })

  // ---- PUT /api/users/me/password ----

  test(`${kind}: PUT /api/users/me/password with a wrong current password → 400 current_password_incorrect, nothing changes`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const problem = await expectProblem(
      await changePassword(srv, { basic: ['miguel', STRONG] }, 'not the password', NEW_PASSWORD),
      400,
      'current_password_incorrect',
    )
    assert.equal(problem['field'], 'current_password')
    // Authenticated by token: the body must still prove the password.
    await expectProblem(await changePassword(srv, { bearer: token }, 'not the password', NEW_PASSWORD), 400, 'current_password_incorrect')
    await tokenOf(srv, { basic: ['miguel', STRONG] })
    await expectProblem(await srv.get('/api/token', { basic: ['miguel', NEW_PASSWORD] }), 401, 'invalid_credentials')
    assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200, 'the token still works')
  })

  test(`${kind}: PUT /api/users/me/password with a new password the policy refuses → 400 with the policy's code, nothing changes`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    for (const weak of ['password', 'miguel', 'short']) {
      const code = policyCode(srv, weak, 'miguel')
      assert.ok(code !== undefined, `test premise: the ${srv.config.passwordPolicy} policy refuses ${weak}`)
      const problem = await expectProblem(await changePassword(srv, { basic: ['miguel', STRONG] }, STRONG, weak), 400, code)
      assert.ok(!problem.detail.includes(weak) || weak === 'password', 'the reason never echoes the password')
      await expectProblem(await srv.get('/api/token', { basic: ['miguel', weak] }), 401, 'invalid_credentials')
    }
    await tokenOf(srv, { basic: ['miguel', STRONG] })
    assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200, 'no token was revoked')
  })

  test(`${kind}: PUT /api/users/me/password → 200 {token, duration}, no-store; old password, earlier tokens and refresh tokens stop working`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const oldToken = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const grant = await passwordGrant(srv, 'miguel', { password: STRONG })
    assert.ok(grant.refresh_token !== undefined, 'test premise: the password grant gives a refresh token')

    const res = await changePassword(srv, { bearer: oldToken }, STRONG, NEW_PASSWORD)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    const body = await expectJson<Record<string, unknown>>(res, 200)
    assert.deepEqual(Object.keys(body).sort(), ['duration', 'token'])
    assert.equal(typeof body['token'], 'string')
    assert.ok(Number.isSafeInteger(body['duration']) && (body['duration'] as number) > 0)
    const freshToken = body['token'] as string

    // The old password no longer logs in; the new one does.
    await expectProblem(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 401, 'invalid_credentials')
    await expectProblem(await srv.get('/api/resource', { basic: ['miguel', STRONG] }), 401, 'invalid_credentials')
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { basic: ['miguel', NEW_PASSWORD] }), 200), {
      data: 'Hello, miguel!',
    })

    // Every token issued before the change is revoked, however it is presented.
    await expectProblem(await srv.get('/api/resource', { bearer: oldToken }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { basic: [oldToken, 'unused'] }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/token', { bearer: oldToken }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { bearer: grant.access_token }), 401, 'token_revoked')
    await expectOAuthError(await refreshGrant(srv, grant.refresh_token), 400, 'invalid_grant')

    // The token the change returned works.
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { bearer: freshToken }), 200), { data: 'Hello, miguel!' })
    const me = await expectJson<AccountJson>(await srv.get('/api/users/me', { basic: [freshToken, 'unused'] }), 200)
    assert.equal(me.username, 'miguel')
  })

  // ---- DELETE /api/users/me ----

  test(`${kind}: DELETE /api/users/me with a wrong password → 400 current_password_incorrect, the user still exists`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const user = await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    await expectProblem(await deleteMe(srv, { bearer: token }, 'not the password'), 400, 'current_password_incorrect')
    await expectProblem(await deleteMe(srv, { basic: ['miguel', STRONG] }, ''), 400, 'current_password_incorrect')
    assert.deepEqual(await expectJson(await srv.get(`/api/users/${user.id}`), 200), { id: user.id, username: 'miguel' })
    assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200)
    await tokenOf(srv, { basic: ['miguel', STRONG] })
  })

  test(`${kind}: DELETE /api/users/me wrong password: the problem's field names the body field \`password\` (RFC 9457 §3.2 extension)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const problem = await expectProblem(await deleteMe(srv, { basic: ['miguel', STRONG] }, 'not the password'), 400, 'current_password_incorrect')
    // The body of DELETE /api/users/me is {password}; there is no `current_password` field to fix.
    assert.equal(problem['field'], 'password')
  })

  test(`${kind}: DELETE /api/users/me → 204; its token stops working, the id is gone and never reused`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'first')
    const user = await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const grant = await passwordGrant(srv, 'miguel', { password: STRONG })

    const res = await deleteMe(srv, { bearer: token }, STRONG)
    assert.equal(res.status, 204, await res.text())

    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/users/me', { basic: [token, 'unused'] }), 401, 'token_invalid')
    await expectProblem(await srv.get(`/api/users/${user.id}`), 404, 'user_not_found')
    await expectProblem(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 401, 'invalid_credentials')
    if (grant.refresh_token !== undefined) await expectOAuthError(await refreshGrant(srv, grant.refresh_token), 400, 'invalid_grant')

    // The name is free again; the new account gets a new, larger id, and the old token is not it.
    const again = await registerOk(srv, 'miguel')
    assert.ok(again.id > user.id, `new id ${again.id} must be greater than the deleted ${user.id}`)
    for (const auth of [{ bearer: token }, { basic: [token, 'unused'] as const }]) {
      const refused = await expectProblem(await srv.get('/api/users/me', auth), 401, 'token_invalid')
      assert.ok(!JSON.stringify(refused).includes(String(again.id)))
    }
    await expectProblem(await srv.get('/api/resource', { bearer: grant.access_token }), 401, 'token_invalid')
    const me = await expectJson<AccountJson>(await srv.get('/api/users/me', { basic: ['miguel', STRONG] }), 200)
    assert.equal(me.id, again.id)
  })

  test(`${kind}: the last active admin cannot delete itself → 409 last_admin; with two admins it can`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const bossId = await makeAdmin(srv, 'boss')
    await expectProblem(await deleteMe(srv, { basic: ADMIN }, STRONG), 409, 'last_admin')
    // Still there, still an admin.
    const me = await expectJson<AccountJson>(await srv.get('/api/users/me', { basic: ADMIN }), 200)
    assert.deepEqual(me.roles, ['admin'])
    assert.equal((await srv.get('/api/admin/users', { basic: ADMIN })).status, 200)

    await makeAdmin(srv, 'chief')
    const res = await deleteMe(srv, { basic: ADMIN }, STRONG)
    assert.equal(res.status, 204, await res.text())
    await expectProblem(await srv.get(`/api/users/${bossId}`), 404, 'user_not_found')
    // Now chief is the last one.
    await expectProblem(await deleteMe(srv, { basic: ['chief', STRONG] }, STRONG), 409, 'last_admin')
    assert.equal((await srv.get('/api/admin/users', { basic: ['chief', STRONG] })).status, 200)
  })

  // ---- disable / enable ----

  test(`${kind}: a disabled user → 403 account_disabled with its password, its tokens → 401 token_revoked at once; /enable restores the password`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const user = await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const grant = await passwordGrant(srv, 'miguel', { password: STRONG })

    const disabled = await expectJson<AccountJson>(await srv.post(`/api/admin/users/${user.id}/disable`, { basic: ADMIN }), 200)
    assert.equal(disabled.status, 'disabled')

    await expectProblem(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 403, 'account_disabled')
    await expectProblem(await srv.get('/api/resource', { basic: ['miguel', STRONG] }), 403, 'account_disabled')
    // A wrong password learns nothing about the state.
    await expectProblem(await srv.get('/api/token', { basic: ['miguel', 'not the password'] }), 401, 'invalid_credentials')
    const bearer = await srv.get('/api/resource', { bearer: token })
    assert.match(bearer.headers.get('www-authenticate') ?? '', /^Bearer /)
    await expectProblem(bearer, 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { basic: [token, 'unused'] }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/users/me', { bearer: grant.access_token }), 401, 'token_revoked')
    if (grant.refresh_token !== undefined) await expectOAuthError(await refreshGrant(srv, grant.refresh_token), 400, 'invalid_grant')

    const enabled = await expectJson<AccountJson>(await srv.post(`/api/admin/users/${user.id}/enable`, { basic: ADMIN }), 200)
    assert.equal(enabled.status, 'active')
    const fresh = await tokenOf(srv, { basic: ['miguel', STRONG] })
    assert.equal((await srv.get('/api/resource', { bearer: fresh })).status, 200)
    // Enabling does not bring back the tokens the disabling revoked.
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_revoked')
  })
}
