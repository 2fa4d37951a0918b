/**
 * The admin API (`/api/admin`, role `admin`) over real HTTP, against every store: who may call it,
 * users (list, create, show, approve, disable, enable, delete, roles, password, revoke tokens), the
 * last-admin guard and invites. Effects are proven with the user's own credentials, never by a call.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CLI_ACTOR } from '../../src/audit/audit.ts'
import type { User } from '../../src/store/store.ts'
import type { RequestOptions, TestServer } from '../helpers/server.ts'
import { startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, registerOk, STRONG, tokenOf } from './support.ts'

const ADMIN = ['boss', STRONG] as const
const OTHER_PASSWORD = 'plaid elephant cobbles the river'

interface AccountJson {
  readonly id: number
  readonly username: string
  readonly status: 'active' | 'pending' | 'disabled'
  readonly roles: readonly string[]
  readonly created_at: string
  readonly updated_at: string
}

interface UserPageJson {
  readonly users: readonly AccountJson[]
  readonly next_after: number | null
}

interface InviteJson {
  readonly id: string
  readonly username: string | null
  readonly roles: readonly string[]
  readonly created_by: string
  readonly created_at: string
  readonly expires_at: string
  readonly state: 'usable' | 'used' | 'revoked' | 'expired'
  readonly used_by: number | null
}

/** The first admin, made as the CLI makes it: through the account service, without HTTP. */
function makeAdmin(srv: TestServer): Promise<User> {
  return srv.runtime.accounts.create(CLI_ACTOR, { username: 'boss', password: STRONG, roles: ['admin'] })
}

function asAdmin(srv: TestServer, method: string, path: string, json?: unknown): Promise<Response> {
  const options: RequestOptions = json === undefined ? { basic: ADMIN } : { basic: ADMIN, json }
  return srv.request(method, path, options)
}

async function createUser(
  srv: TestServer,
  body: { username: string; password?: string; roles?: string[]; status?: 'active' | 'pending' },
): Promise<AccountJson> {
  return expectJson<AccountJson>(await asAdmin(srv, 'POST', '/api/admin/users', { password: STRONG, ...body }), 201)
}

/** Every admin route, with a body that passes its schema, aimed at user `id`. */
function adminRoutes(id: number): ReadonlyArray<{ method: string; path: string; json?: unknown }> {
  return [
    { method: 'GET', path: '/api/admin/users' },
    { method: 'POST', path: '/api/admin/users', json: { username: 'intruder', password: STRONG, roles: ['admin'] } },
    { method: 'GET', path: `/api/admin/users/${id}` },
    { method: 'DELETE', path: `/api/admin/users/${id}` },
    { method: 'POST', path: `/api/admin/users/${id}/approve` },
    { method: 'POST', path: `/api/admin/users/${id}/disable` },
    { method: 'POST', path: `/api/admin/users/${id}/enable` },
    { method: 'PUT', path: `/api/admin/users/${id}/roles`, json: { roles: [] } },
    { method: 'PUT', path: `/api/admin/users/${id}/password`, json: { password: OTHER_PASSWORD } },
    { method: 'POST', path: `/api/admin/users/${id}/revoke-tokens` },
    { method: 'GET', path: '/api/admin/invites' },
    { method: 'POST', path: '/api/admin/invites', json: { roles: ['admin'] } },
    { method: 'DELETE', path: '/api/admin/invites/inv_unknown' },
    { method: 'GET', path: '/api/admin/audit' },
  ]
}

for (const kind of STORES) {
  test(`${kind}: every admin route without credentials → 401 authentication_required with the Basic challenge (RFC 7617 §2)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)
    for (const route of adminRoutes(boss.id)) {
      const res = await srv.request(route.method, route.path, route.json === undefined ? {} : { json: route.json })
      const label = `${route.method} ${route.path}`
      await expectProblem(res, 401, 'authentication_required').catch((error: unknown) => {
        throw new Error(`${label}: ${String(error)}`)
      })
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="/, label)
    }
    // nothing was done
    const after = await srv.store.findUserById(boss.id)
    assert.deepEqual(after?.roles, ['admin'])
    assert.equal(after?.status, 'active')
    assert.equal(await srv.store.findUserByCanonicalName('intruder'), undefined)
  })

  test(`${kind}: a non-admin gets 403 role_required on every admin route, with the challenge of its scheme (RFC 6750 §3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)
    await registerOk(srv, 'alice')
    const token = await srv.token('alice', STRONG)
    for (const route of adminRoutes(boss.id)) {
      const label = `${route.method} ${route.path}`
      const json = route.json === undefined ? {} : { json: route.json }

      const basic = await srv.request(route.method, route.path, { basic: ['alice', STRONG], ...json })
      const viaBasic = await expectProblem(basic, 403, 'role_required')
      assert.match(viaBasic.detail, /"admin"/, label)
      assert.equal(basic.headers.get('www-authenticate'), 'Basic realm="Authentication Required"', label)

      const bearer = await srv.request(route.method, route.path, { bearer: token, ...json })
      await expectProblem(bearer, 403, 'role_required')
      const challenge = bearer.headers.get('www-authenticate') ?? ''
      assert.match(challenge, /^Bearer realm="[^"]*", error="insufficient_scope"/, `${label}: ${challenge}`)

      // REST-auth's token-as-Basic-username is a Basic request: Basic challenge
      const tokenAsBasic = await srv.request(route.method, route.path, { basic: [token, 'unused'], ...json })
      await expectProblem(tokenAsBasic, 403, 'role_required')
      assert.match(tokenAsBasic.headers.get('www-authenticate') ?? '', /^Basic realm="/, label)
    }
    const after = await srv.store.findUserById(boss.id)
    assert.deepEqual(after?.roles, ['admin'])
    assert.equal(after?.status, 'active')
    assert.equal(await srv.store.findUserByCanonicalName('intruder'), undefined)
    await expectJson(await srv.get('/api/resource', { basic: ADMIN }), 200)
  })

  test(`${kind}: role changes apply at once to tokens already issued (roles are read per request)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    const token = await srv.token('alice', STRONG)
    await expectProblem(await srv.get('/api/admin/users', { bearer: token }), 403, 'role_required')

    const promoted = await expectJson<AccountJson>(await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/roles`, { roles: ['admin'] }), 200)
    assert.deepEqual(promoted.roles, ['admin'])
    await expectJson<UserPageJson>(await srv.get('/api/admin/users', { bearer: token }), 200)

    const demoted = await expectJson<AccountJson>(await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/roles`, { roles: [] }), 200)
    assert.deepEqual(demoted.roles, [])
    await expectProblem(await srv.get('/api/admin/users', { bearer: token }), 403, 'role_required')
    // the token itself still works where no role is needed
    await expectJson(await srv.get('/api/resource', { bearer: token }), 200)
  })

  test(`${kind}: PUT roles stores them sorted and unique, and refuses invalid names with invalid_request`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    const set = await expectJson<AccountJson>(
      await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/roles`, { roles: ['ops', 'editor', 'ops'] }),
      200,
    )
    assert.deepEqual(set.roles, ['editor', 'ops'])
    for (const roles of [['Editor'], ['two words'], ['1st'], 'editor']) {
      await expectProblem(await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/roles`, { roles }), 400, 'invalid_request')
    }
    const shown = await expectJson<AccountJson>(await asAdmin(srv, 'GET', `/api/admin/users/${alice.id}`), 200)
    assert.deepEqual(shown.roles, ['editor', 'ops'])
  })

  test(`${kind}: list users pages by id with limit and next_after until null, each user once`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)
    const created: AccountJson[] = []
    for (const username of ['alice', 'Bob', 'carol', 'dave', 'erin', 'frank', 'Grace.Hopper']) {
      created.push(await createUser(srv, { username }))
    }
    const expected = [boss.id, ...created.map((u) => u.id)].sort((a, b) => a - b)

    const first = await expectJson<UserPageJson>(await asAdmin(srv, 'GET', '/api/admin/users?limit=3'), 200)
    assert.equal(first.users.length, 3)
    assert.equal(first.next_after, first.users[2]?.id)

    const seen: number[] = []
    let page: UserPageJson = first
    for (let i = 0; i < 10; i++) {
      seen.push(...page.users.map((u) => u.id))
      assert.ok(page.users.length <= 3)
      if (page.next_after === null) break
      page = await expectJson<UserPageJson>(await asAdmin(srv, 'GET', `/api/admin/users?limit=3&after=${page.next_after}`), 200)
    }
    assert.equal(page.next_after, null, 'the last page says so')
    assert.deepEqual(seen, expected, 'every user once, in id order')

    const all = await expectJson<UserPageJson>(await asAdmin(srv, 'GET', '/api/admin/users'), 200)
    assert.deepEqual(all.users.map((u) => u.id), expected, 'default page holds them all')
    assert.equal(all.next_after, null)
    const grace = all.users.find((u) => u.username === 'Grace.Hopper')
    assert.deepEqual(Object.keys(grace ?? {}).sort(), ['created_at', 'id', 'roles', 'status', 'updated_at', 'username'])
  })

  test(`${kind}: list users filters: search (substring, case-insensitive), status and role`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    await createUser(srv, { username: 'alice' })
    await createUser(srv, { username: 'Bob' })
    await createUser(srv, { username: 'carol', roles: ['editor'] })
    await createUser(srv, { username: 'dave', status: 'pending' })
    await createUser(srv, { username: 'erin', status: 'pending', roles: ['editorial'] })
    await createUser(srv, { username: 'frank', roles: ['ops', 'editor'] })
    await createUser(srv, { username: 'Grace.Hopper' })
    const names = async (query: string): Promise<string[]> => {
      const body = await expectJson<UserPageJson>(await asAdmin(srv, 'GET', `/api/admin/users?${query}`), 200)
      return body.users.map((u) => u.username)
    }
    assert.deepEqual(await names('search=BO'), ['boss', 'Bob'])
    assert.deepEqual(await names('search=hopper'), ['Grace.Hopper'])
    assert.deepEqual(await names('search=HOPPER'), ['Grace.Hopper'])
    assert.deepEqual(await names('search=e.h'), ['Grace.Hopper'])
    assert.deepEqual(await names('search=%25'), [], "'%' is literal, not a LIKE wildcard")
    assert.deepEqual(await names('search=_'), [], "'_' is literal, not a LIKE wildcard")
    assert.deepEqual(await names('search=nobody'), [])
    assert.deepEqual(await names('status=pending'), ['dave', 'erin'])
    assert.deepEqual(await names('status=disabled'), [])
    assert.deepEqual(await names('role=editor'), ['carol', 'frank'], 'whole role names only')
    assert.deepEqual(await names('role=admin'), ['boss'])
    assert.deepEqual(await names('role=edit'), [])
    assert.deepEqual(await names('role=editor&status=pending'), [])
    assert.deepEqual(await names('role=editorial&status=pending'), ['erin'])
    assert.deepEqual(await names('search=a&status=active&limit=1'), ['alice'])
  })

  test(`${kind}: list users search is compared in canonical form (RFC 8265 §3.4, as the OpenAPI document says)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    await createUser(srv, { username: 'Grace.Hopper' })
    // full-width letters canonicalize to their ASCII forms, as at login and registration
    const q = encodeURIComponent('ＨＯＰＰＥＲ')
    const body = await expectJson<UserPageJson>(await asAdmin(srv, 'GET', `/api/admin/users?search=${q}`), 200)
    assert.deepEqual(body.users.map((u) => u.username), ['Grace.Hopper'])
  })

  test(`${kind}: list users refuses limit=0, limit=201, bad values and unknown parameters with 400 invalid_request`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    for (const query of ['limit=0', 'limit=201', 'limit=999', 'limit=-1', 'limit=abc', 'after=x', 'status=gone', 'foo=1', 'password_hash=1']) {
      await expectProblem(await asAdmin(srv, 'GET', `/api/admin/users?${query}`), 400, 'invalid_request')
    }
    const one = await expectJson<UserPageJson>(await asAdmin(srv, 'GET', '/api/admin/users?limit=1'), 200)
    assert.equal(one.users.length, 1)
    assert.equal((await expectJson<UserPageJson>(await asAdmin(srv, 'GET', '/api/admin/users?limit=200'), 200)).users.length, 1)
  })

  test(`${kind}: no admin answer ever carries a password hash`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)
    const alice = await createUser(srv, { username: 'alice', roles: ['editor'] })
    const answers = [
      await asAdmin(srv, 'GET', '/api/admin/users'),
      await asAdmin(srv, 'GET', '/api/admin/users?search=ali'),
      await asAdmin(srv, 'GET', `/api/admin/users/${alice.id}`),
      await asAdmin(srv, 'GET', `/api/admin/users/${boss.id}`),
      await asAdmin(srv, 'POST', '/api/admin/users', { username: 'bert', password: STRONG }),
      await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/roles`, { roles: ['ops'] }),
      await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/password`, { password: OTHER_PASSWORD }),
      await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/disable`),
      await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/enable`),
      await asAdmin(srv, 'GET', '/api/admin/audit'),
    ]
    for (const res of answers) {
      const text = await res.text()
      assert.ok(res.status < 300, `${res.status} ${text}`)
      assert.ok(!text.includes('$argon2'), text)
      assert.ok(!text.includes('password_hash') && !text.includes('passwordHash'), text)
      assert.ok(!text.includes(STRONG) && !text.includes(OTHER_PASSWORD), text)
    }
  })

  test(`${kind}: POST /api/admin/users → 201 with Location /api/admin/users/<id>, status and roles`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const res = await asAdmin(srv, 'POST', '/api/admin/users', { username: 'Newbie', password: STRONG, roles: ['ops', 'editor'] })
    const created = await expectJson<AccountJson>(res, 201)
    assert.equal(res.headers.get('location'), `${srv.config.publicUrl}/api/admin/users/${created.id}`)
    assert.equal(created.username, 'Newbie')
    assert.equal(created.status, 'active')
    assert.deepEqual(created.roles, ['editor', 'ops'])
    assert.ok(!Number.isNaN(Date.parse(created.created_at)))
    const shown = await expectJson<AccountJson>(await asAdmin(srv, 'GET', new URL(res.headers.get('location') ?? '').pathname), 200)
    assert.deepEqual(shown, created)
    // the account works at once
    await expectJson(await srv.get('/api/resource', { basic: ['newbie', STRONG] }), 200)

    const pending = await createUser(srv, { username: 'waiting', status: 'pending' })
    assert.equal(pending.status, 'pending')
    assert.deepEqual(pending.roles, [])
    await expectProblem(await srv.get('/api/resource', { basic: ['waiting', STRONG] }), 403, 'account_pending')
  })

  test(`${kind}: POST /api/admin/users refuses a taken username, a reserved one, invalid roles and weak passwords`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    await createUser(srv, { username: 'newbie' })
    const post = (json: unknown) => asAdmin(srv, 'POST', '/api/admin/users', json)

    await expectProblem(await post({ username: 'NEWBIE', password: STRONG }), 400, 'username_taken')
    await expectProblem(await post({ username: 'ｎｅｗｂｉｅ', password: STRONG }), 400, 'username_taken')
    await expectProblem(await post({ username: 'Boss', password: STRONG }), 400, 'username_taken')
    for (const reserved of ['admin', 'root']) {
      await expectProblem(await post({ username: reserved, password: STRONG }), 400, 'username_invalid')
    }
    for (const roles of [['Admin'], ['has space'], ['9'], ['']]) {
      await expectProblem(await post({ username: 'fresh', password: STRONG, roles }), 400, 'invalid_request')
    }
    await expectProblem(await post({ username: 'fresh', password: 'short' }), 400, 'password_too_short')
    await expectProblem(await post({ username: 'fresh', password: 'password' }), 400, 'password_too_common')
    await expectProblem(await post({ username: 'freshman', password: 'freshman-2026' }), 400, 'password_contains_context')
    await expectProblem(await post({ username: 'fresh' }), 400, 'invalid_request')
    await expectProblem(await post({ username: 'fresh', password: STRONG, status: 'disabled' }), 400, 'invalid_request')
    assert.equal(await srv.store.findUserByCanonicalName('fresh'), undefined, 'no refused request created a user')
    assert.equal(await srv.store.findUserByCanonicalName('freshman'), undefined)
  })

  test(`${kind}: show an unknown or non-numeric user id → 404 user_not_found`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)
    for (const id of [String(boss.id + 1), '999999', 'abc', '0', '-1', '1.5', `0${boss.id}`, '99999999999999999999']) {
      await expectProblem(await asAdmin(srv, 'GET', `/api/admin/users/${id}`), 404, 'user_not_found')
    }
    for (const action of ['approve', 'disable', 'enable', 'revoke-tokens']) {
      await expectProblem(await asAdmin(srv, 'POST', `/api/admin/users/999999/${action}`), 404, 'user_not_found')
      await expectProblem(await asAdmin(srv, 'POST', `/api/admin/users/abc/${action}`), 404, 'user_not_found')
    }
    await expectProblem(await asAdmin(srv, 'DELETE', '/api/admin/users/999999'), 404, 'user_not_found')
    await expectProblem(await asAdmin(srv, 'PUT', '/api/admin/users/999999/roles', { roles: [] }), 404, 'user_not_found')
    await expectProblem(await asAdmin(srv, 'PUT', '/api/admin/users/abc/password', { password: OTHER_PASSWORD }), 404, 'user_not_found')
  })

  test(`${kind}: disable revokes the user's tokens at once (401 token_revoked) and its password gets 403 account_disabled`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    const token = await srv.token('alice', STRONG)
    await expectJson(await srv.get('/api/resource', { bearer: token }), 200)

    const disabled = await expectJson<AccountJson>(await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/disable`), 200)
    assert.equal(disabled.status, 'disabled')
    const revoked = await srv.get('/api/resource', { bearer: token })
    await expectProblem(revoked, 401, 'token_revoked')
    assert.match(revoked.headers.get('www-authenticate') ?? '', /^Bearer realm="[^"]*", error="invalid_token"/)
    await expectProblem(await srv.get('/api/resource', { basic: [token, 'x'] }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { basic: ['alice', STRONG] }), 403, 'account_disabled')
    await expectProblem(await srv.get('/api/token', { basic: ['alice', STRONG] }), 403, 'account_disabled')
    // the wrong password still says nothing about the account's state
    await expectProblem(await srv.get('/api/token', { basic: ['alice', OTHER_PASSWORD] }), 401, 'invalid_credentials')
    // disabling twice is harmless
    await expectJson<AccountJson>(await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/disable`), 200)
  })

  test(`${kind}: enable restores password login, but tokens revoked by the disable stay revoked`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    const old = await srv.token('alice', STRONG)
    await expectJson(await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/disable`), 200)
    const enabled = await expectJson<AccountJson>(await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/enable`), 200)
    assert.equal(enabled.status, 'active')
    await expectJson(await srv.get('/api/resource', { basic: ['alice', STRONG] }), 200)
    const fresh = await tokenOf(srv, { basic: ['alice', STRONG] })
    await expectJson(await srv.get('/api/resource', { bearer: fresh }), 200)
    await expectProblem(await srv.get('/api/resource', { bearer: old }), 401, 'token_revoked')
    // enabling an active user changes nothing
    assert.equal((await expectJson<AccountJson>(await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/enable`), 200)).status, 'active')
  })

  test(`${kind}: approve makes a pending user active; approve on a disabled user → 400 invalid_request`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const waiting = await createUser(srv, { username: 'waiting', status: 'pending' })
    await expectProblem(await srv.get('/api/token', { basic: ['waiting', STRONG] }), 403, 'account_pending')
    const approved = await expectJson<AccountJson>(await asAdmin(srv, 'POST', `/api/admin/users/${waiting.id}/approve`), 200)
    assert.equal(approved.status, 'active')
    await expectJson(await srv.get('/api/token', { basic: ['waiting', STRONG] }), 200)
    // approving an active user changes nothing
    assert.equal((await expectJson<AccountJson>(await asAdmin(srv, 'POST', `/api/admin/users/${waiting.id}/approve`), 200)).status, 'active')

    await expectJson(await asAdmin(srv, 'POST', `/api/admin/users/${waiting.id}/disable`), 200)
    await expectProblem(await asAdmin(srv, 'POST', `/api/admin/users/${waiting.id}/approve`), 400, 'invalid_request')
    const still = await expectJson<AccountJson>(await asAdmin(srv, 'GET', `/api/admin/users/${waiting.id}`), 200)
    assert.equal(still.status, 'disabled')
    await expectProblem(await srv.get('/api/token', { basic: ['waiting', STRONG] }), 403, 'account_disabled')
  })

  test(`${kind}: delete → 204, then the user is 404 and its token 401`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    const token = await srv.token('alice', STRONG)
    await expectJson(await srv.get('/api/resource', { bearer: token }), 200)

    const res = await asAdmin(srv, 'DELETE', `/api/admin/users/${alice.id}`)
    assert.equal(res.status, 204, await res.text())
    await expectProblem(await asAdmin(srv, 'GET', `/api/admin/users/${alice.id}`), 404, 'user_not_found')
    await expectProblem(await srv.get(`/api/users/${alice.id}`), 404, 'user_not_found')
    await expectProblem(await asAdmin(srv, 'DELETE', `/api/admin/users/${alice.id}`), 404, 'user_not_found')
    const refused = await srv.get('/api/resource', { bearer: token })
    await expectProblem(refused, 401)
    assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer /)
    await expectProblem(await srv.get('/api/resource', { basic: ['alice', STRONG] }), 401, 'invalid_credentials')
    // the name is free again, under a new id
    const again = await registerOk(srv, 'alice')
    assert.ok(again.id > alice.id, 'ids are never reused')
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401)
  })

  test(`${kind}: PUT password → the old password 401, the new one 200, old tokens 401 token_revoked`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    const token = await srv.token('alice', STRONG)

    await expectProblem(await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/password`, { password: 'short' }), 400, 'password_too_short')
    await expectProblem(await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/password`, { password: 'password' }), 400, 'password_too_common')
    await expectJson(await srv.get('/api/resource', { bearer: token }), 200)

    const set = await expectJson<AccountJson>(
      await asAdmin(srv, 'PUT', `/api/admin/users/${alice.id}/password`, { password: OTHER_PASSWORD }),
      200,
    )
    assert.equal(set.id, alice.id)
    await expectProblem(await srv.get('/api/resource', { basic: ['alice', STRONG] }), 401, 'invalid_credentials')
    await expectJson(await srv.get('/api/resource', { basic: ['alice', OTHER_PASSWORD] }), 200)
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_revoked')
    const fresh = await tokenOf(srv, { basic: ['alice', OTHER_PASSWORD] })
    await expectJson(await srv.get('/api/resource', { bearer: fresh }), 200)
  })

  test(`${kind}: revoke-tokens → 204, old tokens 401 token_revoked, the password still works`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    const first = await srv.token('alice', STRONG)
    const second = await tokenOf(srv, { bearer: first })

    const res = await asAdmin(srv, 'POST', `/api/admin/users/${alice.id}/revoke-tokens`)
    assert.equal(res.status, 204, await res.text())
    await expectProblem(await srv.get('/api/resource', { bearer: first }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { bearer: second }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/token', { bearer: second }), 401, 'token_revoked')
    await expectJson(await srv.get('/api/resource', { basic: ['alice', STRONG] }), 200)
    // a token issued after the revocation, even within the same second, works
    const fresh = await tokenOf(srv, { basic: ['alice', STRONG] })
    await expectJson(await srv.get('/api/resource', { bearer: fresh }), 200)
    const account = await expectJson<AccountJson>(await asAdmin(srv, 'GET', `/api/admin/users/${alice.id}`), 200)
    assert.equal(account.status, 'active')
  })

  test(`${kind}: two admins disabling each other at the same instant → one 200, one 409 last_admin, and one active admin is left`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)
    const second = await createUser(srv, { username: 'second', roles: ['admin'] })
    const [a, b] = await Promise.all([
      asAdmin(srv, 'POST', `/api/admin/users/${second.id}/disable`),
      srv.request('POST', `/api/admin/users/${boss.id}/disable`, { basic: ['second', STRONG] }),
    ])
    const statuses = [a.status, b.status].sort()
    // 200 + 409 when both passed authentication; 200 + 401/403 when one request arrived after its sender was disabled
    assert.equal(statuses.filter((s) => s === 200).length, 1, `exactly one disable succeeds: ${statuses.join(', ')}`)
    for (const res of [a, b]) if (res.status === 409) await expectProblem(res, 409, 'last_admin')
    const active = (await Promise.all([boss.id, second.id].map((id) => srv.store.findUserById(id)))).filter((u) => u?.status === 'active')
    assert.equal(active.length, 1, 'one active admin is left')
  })

  test(`${kind}: the last active admin cannot be disabled, deleted or lose the admin role (409 last_admin); with a second admin it can`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)

    await expectProblem(await asAdmin(srv, 'POST', `/api/admin/users/${boss.id}/disable`), 409, 'last_admin')
    await expectProblem(await asAdmin(srv, 'DELETE', `/api/admin/users/${boss.id}`), 409, 'last_admin')
    await expectProblem(await asAdmin(srv, 'PUT', `/api/admin/users/${boss.id}/roles`, { roles: [] }), 409, 'last_admin')
    await expectProblem(await asAdmin(srv, 'PUT', `/api/admin/users/${boss.id}/roles`, { roles: ['editor'] }), 409, 'last_admin')
    // keeping the admin role while changing others is fine
    const kept = await expectJson<AccountJson>(await asAdmin(srv, 'PUT', `/api/admin/users/${boss.id}/roles`, { roles: ['admin', 'ops'] }), 200)
    assert.deepEqual(kept.roles, ['admin', 'ops'])
    const still = await expectJson<AccountJson>(await asAdmin(srv, 'GET', `/api/admin/users/${boss.id}`), 200)
    assert.equal(still.status, 'active')
    assert.deepEqual(still.roles, ['admin', 'ops'])

    // a pending or disabled admin does not count as a second one
    const waiting = await createUser(srv, { username: 'waiting', status: 'pending', roles: ['admin'] })
    await expectProblem(await asAdmin(srv, 'POST', `/api/admin/users/${boss.id}/disable`), 409, 'last_admin')
    await expectJson(await asAdmin(srv, 'POST', `/api/admin/users/${waiting.id}/disable`), 200)
    await expectProblem(await asAdmin(srv, 'DELETE', `/api/admin/users/${boss.id}`), 409, 'last_admin')

    const second = await createUser(srv, { username: 'second', roles: ['admin'] })
    const asSecond = (method: string, path: string, json?: unknown) =>
      srv.request(method, path, json === undefined ? { basic: ['second', STRONG] } : { basic: ['second', STRONG], json })

    const demoted = await expectJson<AccountJson>(await asSecond('PUT', `/api/admin/users/${boss.id}/roles`, { roles: [] }), 200)
    assert.deepEqual(demoted.roles, [])
    await expectProblem(await asAdmin(srv, 'GET', '/api/admin/users'), 403, 'role_required')
    // now second is the last one
    await expectProblem(await asSecond('POST', `/api/admin/users/${second.id}/disable`), 409, 'last_admin')
    await expectJson(await asSecond('PUT', `/api/admin/users/${boss.id}/roles`, { roles: ['admin'] }), 200)

    const disabled = await expectJson<AccountJson>(await asSecond('POST', `/api/admin/users/${boss.id}/disable`), 200)
    assert.equal(disabled.status, 'disabled')
    await expectJson(await asSecond('POST', `/api/admin/users/${boss.id}/enable`), 200)
    const deleted = await asSecond('DELETE', `/api/admin/users/${boss.id}`)
    assert.equal(deleted.status, 204, await deleted.text())
    await expectProblem(await asSecond('DELETE', `/api/admin/users/${second.id}`), 409, 'last_admin')
    await expectProblem(await asSecond('PUT', `/api/admin/users/${second.id}/roles`, { roles: [] }), 409, 'last_admin')
    await expectJson(await asSecond('GET', '/api/admin/users'), 200)
  })

  test(`${kind}: invites: POST → 201 with a code (no-store), listed as usable without the code, all=true shows used and revoked ones`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)

    const res = await asAdmin(srv, 'POST', '/api/admin/invites', { roles: ['editor'] })
    const invite = await expectJson<InviteJson & { code: string }>(res, 201)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    assert.match(invite.code, /^rai_[A-Za-z0-9_-]{43}$/)
    assert.equal(invite.state, 'usable')
    assert.deepEqual(invite.roles, ['editor'])
    assert.equal(invite.created_by, 'boss')
    assert.equal(invite.used_by, null)
    assert.equal(invite.username, null)

    const second = await expectJson<InviteJson & { code: string }>(
      await asAdmin(srv, 'POST', '/api/admin/invites', { username: 'Carol', expires_in: 3600 }),
      201,
    )
    assert.equal(second.username, 'Carol')
    assert.equal(Date.parse(second.expires_at) - Date.parse(second.created_at), 3600 * 1000)
    assert.notEqual(second.code, invite.code)

    const listed = await asAdmin(srv, 'GET', '/api/admin/invites')
    const listedText = await listed.text()
    assert.equal(listed.status, 200, listedText)
    assert.ok(!listedText.includes(invite.code) && !listedText.includes(second.code), 'the list never shows a code')
    const usable = (JSON.parse(listedText) as { invites: InviteJson[] }).invites
    assert.deepEqual(usable.map((i) => i.id).sort(), [invite.id, second.id].sort())
    assert.ok(usable.every((i) => i.state === 'usable' && !('code' in i)))

    // use the first, revoke the second
    const invited = await expectJson<{ id: number; username: string }>(
      await srv.post('/api/users', { json: { username: 'invited', password: STRONG, invite: invite.code } }),
      201,
    )
    const revoked = await asAdmin(srv, 'DELETE', `/api/admin/invites/${second.id}`)
    assert.equal(revoked.status, 204, await revoked.text())
    await expectProblem(await srv.post('/api/users', { json: { username: 'Carol', password: STRONG, invite: second.code } }), 400, 'invite_invalid')
    await expectProblem(await srv.post('/api/users', { json: { username: 'again', password: STRONG, invite: invite.code } }), 400, 'invite_invalid')

    const now = await expectJson<{ invites: InviteJson[] }>(await asAdmin(srv, 'GET', '/api/admin/invites'), 200)
    assert.deepEqual(now.invites, [], 'used and revoked invites are not usable')
    const explicitFalse = await expectJson<{ invites: InviteJson[] }>(await asAdmin(srv, 'GET', '/api/admin/invites?all=false'), 200)
    assert.deepEqual(explicitFalse.invites, [])

    const allRes = await asAdmin(srv, 'GET', '/api/admin/invites?all=true')
    const allText = await allRes.text()
    assert.equal(allRes.status, 200, allText)
    assert.ok(!allText.includes(invite.code) && !allText.includes(second.code))
    const all = (JSON.parse(allText) as { invites: InviteJson[] }).invites
    const used = all.find((i) => i.id === invite.id)
    const gone = all.find((i) => i.id === second.id)
    assert.equal(all.length, 2)
    assert.equal(used?.state, 'used')
    assert.equal(used?.used_by, invited.id)
    assert.equal(gone?.state, 'revoked')
    assert.equal(gone?.used_by, null)

    // the invite's roles were granted
    const account = await expectJson<AccountJson>(await asAdmin(srv, 'GET', `/api/admin/users/${invited.id}`), 200)
    assert.deepEqual(account.roles, ['editor'])
    await expectProblem(await asAdmin(srv, 'GET', '/api/admin/invites?all=yes'), 400, 'invalid_request')
  })

  test(`${kind}: invites: DELETE an unknown, used or already revoked invite → 404 invite_not_found`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    await expectProblem(await asAdmin(srv, 'DELETE', '/api/admin/invites/inv_doesnotexist'), 404, 'invite_not_found')
    await expectProblem(await asAdmin(srv, 'DELETE', '/api/admin/invites/x%00y'), 404, 'invite_not_found')
    const invite = await expectJson<InviteJson & { code: string }>(await asAdmin(srv, 'POST', '/api/admin/invites', {}), 201)
    // the code is not the id
    await expectProblem(await asAdmin(srv, 'DELETE', `/api/admin/invites/${invite.code}`), 404, 'invite_not_found')
    assert.equal((await asAdmin(srv, 'DELETE', `/api/admin/invites/${invite.id}`)).status, 204)
    await expectProblem(await asAdmin(srv, 'DELETE', `/api/admin/invites/${invite.id}`), 404, 'invite_not_found')

    const used = await expectJson<InviteJson & { code: string }>(await asAdmin(srv, 'POST', '/api/admin/invites', {}), 201)
    await expectJson(await srv.post('/api/users', { json: { username: 'invited', password: STRONG, invite: used.code } }), 201)
    await expectProblem(await asAdmin(srv, 'DELETE', `/api/admin/invites/${used.id}`), 404, 'invite_not_found')
  })

  test(`${kind}: invites: expires_in below 60 s, an invalid role or a taken username → 400`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    await expectProblem(await asAdmin(srv, 'POST', '/api/admin/invites', { expires_in: 59 }), 400, 'invalid_request')
    await expectProblem(await asAdmin(srv, 'POST', '/api/admin/invites', { expires_in: 366 * 86_400 }), 400, 'invalid_request')
    await expectProblem(await asAdmin(srv, 'POST', '/api/admin/invites', { roles: ['Bad Role'] }), 400, 'invalid_request')
    await expectProblem(await asAdmin(srv, 'POST', '/api/admin/invites', { username: 'BOSS' }), 400, 'username_taken')
    const none = await expectJson<{ invites: InviteJson[] }>(await asAdmin(srv, 'GET', '/api/admin/invites?all=true'), 200)
    assert.deepEqual(none.invites, [])
  })
}
