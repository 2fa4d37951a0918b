/**
 * Registration policies over real HTTP, against every store: AUTH_REGISTRATION (`open`, `approval`,
 * `closed` with invite codes), AUTH_USERNAME_ALLOW, and how they meet authentication and the admin API
 * (configuration; docs/errors.md: account_pending, registration_closed, invite_invalid, username_not_allowed).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CLI_ACTOR } from '../../src/audit/audit.ts'
import { expectOAuthError, postForm } from '../helpers/oauth.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, manualClock, STRONG, tokenOf } from './support.ts'

const ADMIN = ['boss', STRONG] as const

interface AccountJson {
  readonly id: number
  readonly username: string
  readonly status: string
  readonly roles: readonly string[]
  readonly created_at: string
  readonly updated_at: string
}

interface InviteJson {
  readonly id: string
  readonly code: string
  readonly username: string | null
  readonly roles: readonly string[]
  readonly state: string
  readonly expires_at: string
}

/** The first admin, made as the CLI makes it (no HTTP: registration cannot grant roles). */
async function makeAdmin(srv: TestServer): Promise<void> {
  await srv.runtime.accounts.create(CLI_ACTOR, { username: ADMIN[0], password: ADMIN[1], roles: ['admin'] })
}

async function createInvite(srv: TestServer, body: Record<string, unknown> = {}): Promise<InviteJson> {
  const res = await srv.post('/api/admin/invites', { basic: ADMIN, json: body })
  const invite = await expectJson<InviteJson>(res, 201)
  assert.equal(res.headers.get('cache-control'), 'no-store', 'the code is shown once and never cached')
  assert.equal(typeof invite.code, 'string')
  assert.ok(invite.code.length > 0)
  assert.equal(invite.state, 'usable')
  return invite
}

function registerWith(srv: TestServer, username: string, invite: string, password = STRONG): Promise<Response> {
  return srv.post('/api/users', { json: { username, password, invite } })
}

/** Status, body and headers of a response, minus `date` (which legitimately differs). */
async function snapshot(res: Response): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  const headers: Record<string, string> = {}
  res.headers.forEach((value, name) => {
    if (name !== 'date') headers[name] = value
  })
  return { status: res.status, body: await res.text(), headers }
}

for (const kind of STORES) {
  // ---- open ----

  test(`${kind}: open: registration → 201 exactly {id, username}, and a token at once (AUTH_REGISTRATION=open)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'open' } })
    if (!srv) return
    const body = await expectJson<Record<string, unknown>>(await srv.register('miguel', STRONG), 201)
    assert.deepEqual(Object.keys(body).sort(), ['id', 'username'])
    assert.equal(body['username'], 'miguel')
    assert.ok(Number.isSafeInteger(body['id']) && (body['id'] as number) > 0)
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { bearer: token }), 200), { data: 'Hello, miguel!' })
  })

  // ---- approval ----

  test(`${kind}: approval: registration → 201 {id, username, status: 'pending'} (AUTH_REGISTRATION=approval)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'approval' } })
    if (!srv) return
    const body = await expectJson<Record<string, unknown>>(await srv.register('miguel', STRONG), 201)
    assert.deepEqual(Object.keys(body).sort(), ['id', 'status', 'username'])
    assert.equal(body['username'], 'miguel')
    assert.equal(body['status'], 'pending')
    // The public user URL still shows REST-auth's shape.
    assert.deepEqual(await expectJson(await srv.get(`/api/users/${String(body['id'])}`), 200), { id: body['id'], username: 'miguel' })
  })

  test(`${kind}: approval: a pending user with the right password → 403 account_pending on /api/token and /api/resource`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'approval' } })
    if (!srv) return
    await expectJson(await srv.register('miguel', STRONG), 201)
    for (const path of ['/api/token', '/api/resource']) {
      const res = await srv.get(path, { basic: ['miguel', STRONG] })
      await expectProblem(res, 403, 'account_pending')
    }
    // Any spelling of the name reaches the same pending account.
    await expectProblem(await srv.get('/api/token', { basic: ['MIGUEL', STRONG] }), 403, 'account_pending')
  })

  test(`${kind}: approval: a pending user with a wrong password → 401 invalid_credentials, identical to an unknown user (no state leak before the password is proven)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'approval' } })
    if (!srv) return
    await expectJson(await srv.register('miguel', STRONG), 201)
    for (const path of ['/api/token', '/api/resource']) {
      const pendingRes = await srv.get(path, { basic: ['miguel', 'not the password at all'] })
      const unknownRes = await srv.get(path, { basic: ['nobody', 'not the password at all'] })
      const pending = await snapshot(pendingRes)
      const unknown = await snapshot(unknownRes)
      assert.equal(pending.status, 401, pending.body)
      assert.equal(JSON.parse(pending.body).code, 'invalid_credentials')
      assert.match(pending.headers['www-authenticate'] ?? '', /^Basic realm=/)
      assert.ok(!pending.body.includes('pending'), 'nothing about the account state')
      assert.deepEqual(pending, unknown, `${path}: a wrong password of a pending user looks like an unknown user`)
    }
  })

  test(`${kind}: approval: a pending user's OAuth password grant → 400 invalid_grant (RFC 6749 §5.2)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'approval' } })
    if (!srv) return
    await expectJson(await srv.register('miguel', STRONG), 201)
    const res = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: STRONG })
    await expectOAuthError(res, 400, 'invalid_grant')
    // A wrong password is the same error code.
    await expectOAuthError(
      await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: 'wrong wrong wrong' }),
      400,
      'invalid_grant',
    )
  })

  test(`${kind}: approval: after POST /api/admin/users/:id/approve the user gets a token (AUTH_REGISTRATION=approval)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'approval' } })
    if (!srv) return
    await makeAdmin(srv)
    const { id } = await expectJson<{ id: number }>(await srv.register('miguel', STRONG), 201)
    await expectProblem(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 403, 'account_pending')
    // Approval is an admin action.
    await expectProblem(await srv.post(`/api/admin/users/${id}/approve`), 401, 'authentication_required')
    await expectProblem(await srv.post(`/api/admin/users/${id}/approve`, { basic: ['miguel', STRONG] }), 403, 'account_pending')

    const approved = await expectJson<AccountJson>(await srv.post(`/api/admin/users/${id}/approve`, { basic: ADMIN }), 200)
    assert.equal(approved.id, id)
    assert.equal(approved.status, 'active')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { bearer: token }), 200), { data: 'Hello, miguel!' })
  })

  // ---- closed, invites ----

  test(`${kind}: closed: registration without an invite → 403 registration_closed (AUTH_REGISTRATION=closed)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    await expectProblem(await srv.register('miguel', STRONG), 403, 'registration_closed')
    await expectProblem(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 401, 'invalid_credentials')
  })

  test(`${kind}: closed: an admin's invite code registers an active user, once (single-use invite)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const invite = await createInvite(srv)
    assert.equal(invite.username, null)
    assert.deepEqual(invite.roles, [])

    const body = await expectJson<Record<string, unknown>>(await registerWith(srv, 'miguel', invite.code), 201)
    assert.deepEqual(Object.keys(body).sort(), ['id', 'username'], 'active: no status member')
    assert.equal(body['username'], 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const me = await expectJson<AccountJson>(await srv.get('/api/users/me', { bearer: token }), 200)
    assert.equal(me.status, 'active')

    const again = await expectProblem(await registerWith(srv, 'susan', invite.code), 400, 'invite_invalid')
    assert.equal(again['field'], 'invite')
    await expectProblem(await srv.get('/api/token', { basic: ['susan', STRONG] }), 401, 'invalid_credentials')

    const listed = await expectJson<{ invites: Array<{ id: string; state: string; used_by: number | null }> }>(
      await srv.get('/api/admin/invites?all=true', { basic: ADMIN }),
      200,
    )
    const row = listed.invites.find((i) => i.id === invite.id)
    assert.equal(row?.state, 'used')
    assert.equal(row?.used_by, body['id'])
    assert.ok(!JSON.stringify(listed).includes(invite.code), 'the code is never shown again')
  })

  test(`${kind}: closed: an invite with a fixed username refuses another username and accepts its own`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const invite = await createInvite(srv, { username: 'susan' })
    assert.equal(invite.username, 'susan')
    await expectProblem(await registerWith(srv, 'miguel', invite.code), 400, 'invite_invalid')
    // The refusal did not use up the code.
    const body = await expectJson<{ id: number; username: string }>(await registerWith(srv, 'Susan', invite.code), 201)
    assert.equal(body.username, 'Susan')
    await tokenOf(srv, { basic: ['susan', STRONG] })
  })

  test(`${kind}: closed: an invite with roles gives the user those roles (GET /api/users/me)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const invite = await createInvite(srv, { roles: ['reports', 'editor'] })
    assert.deepEqual(invite.roles, ['editor', 'reports'])
    await expectJson(await registerWith(srv, 'miguel', invite.code), 201)
    const me = await expectJson<AccountJson>(await srv.get('/api/users/me', { basic: ['miguel', STRONG] }), 200)
    assert.deepEqual(me.roles, ['editor', 'reports'])
    assert.equal(me.status, 'active')
  })

  test(`${kind}: closed: an expired invite → 400 invite_invalid (expires_in)`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const early = await createInvite(srv, { expires_in: 60 })
    const late = await createInvite(srv, { expires_in: 60 })
    clock.advance(59)
    await expectJson(await registerWith(srv, 'miguel', early.code), 201) // still within its lifetime
    clock.advance(2)
    await expectProblem(await registerWith(srv, 'susan', late.code), 400, 'invite_invalid')
    await expectProblem(await srv.get('/api/token', { basic: ['susan', STRONG] }), 401, 'invalid_credentials')
  })

  test(`${kind}: closed: a revoked invite → 400 invite_invalid (DELETE /api/admin/invites/:id → 204)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const invite = await createInvite(srv)
    const res = await srv.request('DELETE', `/api/admin/invites/${encodeURIComponent(invite.id)}`, { basic: ADMIN })
    assert.equal(res.status, 204, await res.text())
    await expectProblem(await registerWith(srv, 'miguel', invite.code), 400, 'invite_invalid')
    // Revoking twice: nothing left to revoke.
    await expectProblem(
      await srv.request('DELETE', `/api/admin/invites/${encodeURIComponent(invite.id)}`, { basic: ADMIN }),
      404,
      'invite_not_found',
    )
  })

  test(`${kind}: closed: a malformed invite → 400 invite_invalid, never 5xx`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const real = await createInvite(srv)
    const malformed = [
      '',
      ' ',
      'x',
      'rai_',
      `rai_${'A'.repeat(43)}`, // right shape, never issued
      `rai_${'A'.repeat(42)}`,
      `rai_${'A'.repeat(44)}`,
      `${real.code} `,
      ` ${real.code}`,
      real.code.toUpperCase() === real.code ? real.code.toLowerCase() : real.code.toUpperCase(),
      real.code.slice(0, -1),
      `${real.code}\u0000`,
      'rai_\u0000',
      "' OR 1=1 --",
      '%00',
      'ｒａｉ_',
      '😀'.repeat(50),
      'x'.repeat(4000),
      real.id,
    ]
    for (const invite of malformed) {
      const res = await registerWith(srv, 'miguel', invite)
      assert.ok(res.status < 500, `${JSON.stringify(invite.slice(0, 60))}: ${res.status}`)
      const problem = await expectProblem(res, 400, 'invite_invalid')
      assert.equal(problem['field'], 'invite')
    }
    // Not a string at all: refused as input, still no 5xx, and nothing was created.
    for (const invite of [null, 42, true, [real.code], { code: real.code }]) {
      const res = await srv.post('/api/users', { json: { username: 'miguel', password: STRONG, invite } })
      assert.ok(res.status >= 400 && res.status < 500, `${JSON.stringify(invite)}: ${res.status}`)
      await expectProblem(res, 400)
    }
    await expectProblem(await srv.get('/api/token', { basic: ['miguel', STRONG] }), 401, 'invalid_credentials')
    // The genuine code is still unused.
    await expectJson(await registerWith(srv, 'miguel', real.code), 201)
  })

  test(`${kind}: approval: an invite skips approval (the user is active at once)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'approval' } })
    if (!srv) return
    await makeAdmin(srv)
    const invite = await createInvite(srv)
    const body = await expectJson<Record<string, unknown>>(await registerWith(srv, 'miguel', invite.code), 201)
    assert.deepEqual(Object.keys(body).sort(), ['id', 'username'])
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const me = await expectJson<AccountJson>(await srv.get('/api/users/me', { bearer: token }), 200)
    assert.equal(me.status, 'active')
    // Without an invite the same server still makes users wait.
    const other = await expectJson<Record<string, unknown>>(await srv.register('susan', STRONG), 201)
    assert.equal(other['status'], 'pending')
  })

  // ---- concurrency ----

  test(`${kind}: 20 parallel registrations with one invite code → exactly one 201, 19 × 400 invite_invalid, no 5xx (single-use invite)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const invite = await createInvite(srv)
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => registerWith(srv, `racer${i}`, invite.code)))
    const statuses = results.map((r) => r.status)
    assert.ok(statuses.every((s) => s < 500), `statuses: ${statuses.join(',')}`)
    assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${statuses.join(',')}`)
    assert.equal(statuses.filter((s) => s === 400).length, 19, `statuses: ${statuses.join(',')}`)
    let winner: string | undefined
    for (const res of results) {
      if (res.status === 400) await expectProblem(res, 400, 'invite_invalid')
      else winner = (await expectJson<{ username: string }>(res, 201)).username
    }
    // Exactly one account was made besides the admin, and it is the winner's.
    const listed = await expectJson<{ users: AccountJson[] }>(await srv.get('/api/admin/users', { basic: ADMIN }), 200)
    assert.deepEqual(listed.users.map((u) => u.username).sort(), [ADMIN[0], winner].sort())
  })

  test(`${kind}: parallel registrations of one name with different invites → one 201, the rest 400 username_taken, and the losers' invites stay usable`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await makeAdmin(srv)
    const invites: InviteJson[] = []
    for (let i = 0; i < 5; i++) invites.push(await createInvite(srv))
    const spellings = ['dup', 'Dup', 'DUP', 'ｄｕｐ', 'dUp']
    const results = await Promise.all(invites.map((inv, i) => registerWith(srv, spellings[i] ?? 'dup', inv.code)))
    const statuses = results.map((r) => r.status)
    assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${statuses.join(',')}`)
    const losers: InviteJson[] = []
    for (const [i, res] of results.entries()) {
      if (res.status === 201) await res.body?.cancel()
      else {
        await expectProblem(res, 400, 'username_taken')
        const invite = invites[i]
        assert.ok(invite !== undefined)
        losers.push(invite)
      }
    }
    assert.equal(losers.length, 4)
    const usable = await expectJson<{ invites: Array<{ id: string }> }>(await srv.get('/api/admin/invites', { basic: ADMIN }), 200)
    assert.deepEqual(usable.invites.map((i) => i.id).sort(), losers.map((i) => i.id).sort(), 'a lost name race does not use up the invite')
    for (const [i, invite] of losers.entries()) await expectJson(await registerWith(srv, `other${i}`, invite.code), 201)
  })

  // ---- username allow-list ----

  test(`${kind}: AUTH_USERNAME_ALLOW: matching names register (case-insensitively), others → 400 username_not_allowed; admins may create outside it`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_USERNAME_ALLOW: '*@example.com,*@example.org' } })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await expectJson<{ id: number; username: string }>(await srv.register('alice@example.com', STRONG), 201)
    assert.equal(alice.username, 'alice@example.com')
    const alice2 = await expectJson<{ id: number; username: string }>(await srv.register('ALICE2@EXAMPLE.COM', STRONG), 201)
    assert.equal(alice2.username, 'ALICE2@EXAMPLE.COM')
    await expectJson(await srv.register('carol@example.org', STRONG), 201)

    for (const name of ['bob@evil.com', 'bob@example.com.evil', 'bob@xexample.com', 'example.com']) {
      const problem = await expectProblem(await srv.register(name, STRONG), 400, 'username_not_allowed')
      assert.equal(problem['field'], 'username', name)
    }
    await expectProblem(await srv.get('/api/token', { basic: ['bob@evil.com', STRONG] }), 401, 'invalid_credentials')

    const res = await srv.post('/api/admin/users', { basic: ADMIN, json: { username: 'bob@evil.com', password: STRONG } })
    const bob = await expectJson<AccountJson>(res, 201)
    assert.equal(bob.username, 'bob@evil.com')
    assert.equal(bob.status, 'active')
    await tokenOf(srv, { basic: ['bob@evil.com', STRONG] })
  })

  test(`${kind}: AUTH_USERNAME_ALLOW: a pattern with '-' (e.g. *@my-company.com) starts the server and matches literally (configuration)`, async (t) => {
    // '-' is a username character, so it is a character a pattern must be able to hold.
    const srv = await startServer(t, { store: kind, env: { AUTH_USERNAME_ALLOW: '*@my-company.com' } })
    if (!srv) return
    await expectJson(await srv.register('ann@my-company.com', STRONG), 201)
    await expectJson(await srv.register('ANN2@MY-COMPANY.COM', STRONG), 201)
    await expectProblem(await srv.register('ann@mycompany.com', STRONG), 400, 'username_not_allowed')
    await expectProblem(await srv.register('ann@my_company.com', STRONG), 400, 'username_not_allowed')
  })
}
