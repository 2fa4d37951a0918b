/**
 * The audit log over real HTTP, against every store: what is recorded (who, what, when, from where,
 * outcome), `GET /api/admin/audit` filters and pagination, and that no secret is ever written.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CLI_ACTOR } from '../../src/audit/audit.ts'
import type { AuditEntry, User } from '../../src/store/store.ts'
import { hashInviteCode } from '../../src/users/invites.ts'
import { hashRefreshToken } from '../../src/tokens/refresh.ts'
import { postForm } from '../helpers/oauth.ts'
import type { TestServer } from '../helpers/server.ts'
import { startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, manualClock, registerOk, STRONG, tokenOf } from './support.ts'

const ADMIN = ['boss', STRONG] as const
const WRONG = 'not the right password at all'

interface AuditEntryJson {
  readonly id: number
  readonly at: string
  readonly event: string
  readonly outcome: 'success' | 'failure'
  readonly actor_id: number | null
  readonly actor: string
  readonly subject_id: number | null
  readonly subject: string | null
  readonly ip: string | null
  readonly detail: Readonly<Record<string, unknown>>
}

interface AuditPageJson {
  readonly entries: readonly AuditEntryJson[]
  readonly next_before: number | null
}

function makeAdmin(srv: TestServer): Promise<User> {
  return srv.runtime.accounts.create(CLI_ACTOR, { username: 'boss', password: STRONG, roles: ['admin'] })
}

async function audit(srv: TestServer, query = ''): Promise<AuditPageJson> {
  return expectJson<AuditPageJson>(await srv.get(`/api/admin/audit${query === '' ? '' : `?${query}`}`, { basic: ADMIN }), 200)
}

const events = (page: AuditPageJson): string[] => page.entries.map((e) => e.event)

/** Every audit row, straight from the store. */
async function allEntries(srv: TestServer): Promise<readonly AuditEntry[]> {
  await srv.runtime.audit.flush() // entries are written in batches (AuditLog batchMs)
  return srv.store.queryAudit({ limit: 1000 })
}

for (const kind of STORES) {
  test(`${kind}: login failure, token, registration, disable and role change are audited newest first with actor, subject, ip and outcome`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const boss = await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')
    await expectProblem(await srv.get('/api/token', { basic: ['Alice', WRONG] }), 401, 'invalid_credentials')
    await tokenOf(srv, { basic: ['alice', STRONG] })
    await expectJson(await srv.request('PUT', `/api/admin/users/${alice.id}/roles`, { basic: ADMIN, json: { roles: ['editor'] } }), 200)
    await expectJson(await srv.post(`/api/admin/users/${alice.id}/disable`, { basic: ADMIN }), 200)

    const page = await audit(srv)
    assert.deepEqual(events(page), ['user.disabled', 'user.roles_changed', 'token.issued', 'auth.failure', 'user.registered', 'user.created'])
    assert.equal(page.next_before, null)
    const ids = page.entries.map((e) => e.id)
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first')
    const times = page.entries.map((e) => Date.parse(e.at))
    assert.deepEqual(times, [...times].sort((a, b) => b - a))
    const [disabled, rolesChanged, issued, failure, registered, created] = page.entries
    assert.ok(disabled && rolesChanged && issued && failure && registered && created)

    for (const e of [disabled, rolesChanged, issued, failure, registered]) assert.equal(e.ip, '127.0.0.1', e.event)

    assert.equal(failure.outcome, 'failure')
    assert.equal(failure.actor, 'anonymous')
    assert.equal(failure.actor_id, null)
    assert.equal(failure.subject, 'Alice', 'the name as attempted')
    assert.equal(failure.detail['reason'], 'invalid_credentials')

    assert.equal(registered.outcome, 'success')
    assert.equal(registered.actor, 'anonymous')
    assert.equal(registered.subject, 'alice')
    assert.equal(registered.subject_id, alice.id)

    assert.equal(issued.outcome, 'success')
    assert.equal(issued.actor, 'alice')
    assert.equal(issued.actor_id, alice.id)
    assert.equal(issued.subject_id, alice.id)

    for (const e of [rolesChanged, disabled]) {
      assert.equal(e.outcome, 'success', e.event)
      assert.equal(e.actor, 'boss', e.event)
      assert.equal(e.actor_id, boss.id, e.event)
      assert.equal(e.subject, 'alice', e.event)
      assert.equal(e.subject_id, alice.id, e.event)
    }
    assert.equal(rolesChanged.detail['from'], '')
    assert.equal(rolesChanged.detail['to'], 'editor')

    // the first admin was made by the CLI, without a network address
    assert.equal(created.actor, 'cli')
    assert.equal(created.actor_id, null)
    assert.equal(created.subject_id, boss.id)
    assert.equal(created.ip, null)
  })

  test(`${kind}: audit filters: event, event family (user.*), outcome, user_id, since/until`, async (t) => {
    const clock = manualClock()
    const srv = await startServer(t, { store: kind, clock })
    if (!srv) return
    const boss = await makeAdmin(srv) // user.created          t0
    clock.advance(10)
    const alice = await registerOk(srv, 'alice') // user.registered    t0+10
    clock.advance(10)
    await expectProblem(await srv.get('/api/token', { basic: ['alice', WRONG] }), 401) // auth.failure  t0+20
    clock.advance(10)
    await tokenOf(srv, { basic: ['alice', STRONG] }) // token.issued      t0+30
    clock.advance(10)
    await expectJson(await srv.request('PUT', `/api/admin/users/${alice.id}/roles`, { basic: ADMIN, json: { roles: ['ops'] } }), 200) // t0+40
    clock.advance(10)
    await expectJson(await srv.post(`/api/admin/users/${alice.id}/disable`, { basic: ADMIN }), 200) // user.disabled t0+50
    const t0 = clock.now() - 50_000
    const iso = (offsetSeconds: number) => encodeURIComponent(new Date(t0 + offsetSeconds * 1000).toISOString())

    assert.deepEqual(events(await audit(srv, 'event=auth.failure')), ['auth.failure'])
    assert.deepEqual(events(await audit(srv, 'event=token.issued')), ['token.issued'])
    assert.deepEqual(events(await audit(srv, 'event=user.*')), ['user.disabled', 'user.roles_changed', 'user.registered', 'user.created'])
    assert.deepEqual(events(await audit(srv, 'event=token.*')), ['token.issued'])
    assert.deepEqual(events(await audit(srv, 'event=user')), [], 'a bare prefix is not a family')
    assert.deepEqual(events(await audit(srv, 'event=us%25.*')), [], "'%' is literal")
    assert.deepEqual(events(await audit(srv, 'event=_ser.*')), [], "'_' is literal")
    assert.deepEqual(events(await audit(srv, 'outcome=failure')), ['auth.failure'])
    assert.deepEqual(events(await audit(srv, 'outcome=success')), ['user.disabled', 'user.roles_changed', 'token.issued', 'user.registered', 'user.created'])
    assert.deepEqual(events(await audit(srv, 'event=user.*&outcome=failure')), [])

    const ofAlice = await audit(srv, `user_id=${alice.id}`)
    assert.ok(ofAlice.entries.every((e) => e.actor_id === alice.id || e.subject_id === alice.id))
    for (const expected of ['user.disabled', 'user.roles_changed', 'token.issued', 'user.registered']) {
      assert.ok(events(ofAlice).includes(expected), `${expected} in ${events(ofAlice).join(', ')}`)
    }
    assert.ok(!events(ofAlice).includes('user.created'))
    const ofBoss = await audit(srv, `user_id=${boss.id}`)
    assert.deepEqual(events(ofBoss), ['user.disabled', 'user.roles_changed', 'user.created'], 'as actor and as subject')
    assert.deepEqual(events(await audit(srv, 'user_id=999999')), [])

    assert.deepEqual(events(await audit(srv, `since=${iso(30)}`)), ['user.disabled', 'user.roles_changed', 'token.issued'], 'since is inclusive')
    assert.deepEqual(events(await audit(srv, `until=${iso(20)}`)), ['user.registered', 'user.created'], 'until is exclusive')
    assert.deepEqual(events(await audit(srv, `since=${iso(10)}&until=${iso(40)}`)), ['token.issued', 'auth.failure', 'user.registered'])
    assert.deepEqual(events(await audit(srv, `since=${iso(15)}&until=${iso(45)}&event=user.*`)), ['user.roles_changed'])
    assert.deepEqual(events(await audit(srv, `since=${iso(60)}`)), [])

    for (const bad of ['since=yesterday', 'until=2026-13-01T00:00:00Z', 'outcome=maybe', 'user_id=abc', 'limit=0', 'limit=201', 'before=x', 'actor=boss']) {
      await expectProblem(await srv.get(`/api/admin/audit?${bad}`, { basic: ADMIN }), 400, 'invalid_request')
    }
  })

  test(`${kind}: audit pagination: limit and next_before walk every entry once, newest first`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    for (const name of ['alice', 'bob', 'carol']) {
      await registerOk(srv, name)
      await tokenOf(srv, { basic: [name, STRONG] })
    }
    const everything = await audit(srv, 'limit=200')
    assert.equal(everything.entries.length, 7)
    assert.equal(everything.next_before, null)

    const first = await audit(srv, 'limit=2')
    assert.equal(first.entries.length, 2)
    assert.equal(first.next_before, first.entries[1]?.id)
    const seen: number[] = []
    let page = first
    for (let i = 0; i < 10; i++) {
      seen.push(...page.entries.map((e) => e.id))
      if (page.next_before === null) break
      page = await audit(srv, `limit=2&before=${page.next_before}`)
    }
    assert.equal(page.next_before, null)
    assert.deepEqual(seen, everything.entries.map((e) => e.id))

    // filters and pagination together
    const tokens1 = await audit(srv, 'event=token.issued&limit=2')
    assert.deepEqual(events(tokens1), ['token.issued', 'token.issued'])
    assert.notEqual(tokens1.next_before, null)
    const tokens2 = await audit(srv, `event=token.issued&limit=2&before=${tokens1.next_before}`)
    assert.deepEqual(events(tokens2), ['token.issued'])
    assert.equal(tokens2.next_before, null)
  })

  test(`${kind}: no secret in the audit log: passwords, tokens, refresh tokens, invite codes and hashes are never written`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const secrets: string[] = [STRONG, WRONG]
    const newOwn = 'quiet lantern over seven hills'
    const adminSet = 'brass owl sings at midnight'
    secrets.push(newOwn, adminSet)

    const alice = await registerOk(srv, 'alice')
    await expectProblem(await srv.get('/api/token', { basic: ['alice', WRONG] }), 401)
    const token = await tokenOf(srv, { basic: ['alice', STRONG] })
    const renewed = await tokenOf(srv, { bearer: token })
    secrets.push(token, renewed)
    await expectJson(await srv.get('/api/resource', { basic: [token, 'unused'] }), 200)

    // self-service: a wrong current password, then a change
    await expectProblem(
      await srv.request('PUT', '/api/users/me/password', { bearer: renewed, json: { current_password: WRONG, new_password: newOwn } }),
      400,
      'current_password_incorrect',
    )
    const changed = await expectJson<{ token: string }>(
      await srv.request('PUT', '/api/users/me/password', { bearer: renewed, json: { current_password: STRONG, new_password: newOwn } }),
      200,
    )
    secrets.push(changed.token)
    await expectProblem(await srv.get('/api/resource', { bearer: token }), 401, 'token_revoked')

    // an admin sets a password, revokes tokens
    await expectJson(await srv.request('PUT', `/api/admin/users/${alice.id}/password`, { basic: ADMIN, json: { password: adminSet } }), 200)
    assert.equal((await srv.post(`/api/admin/users/${alice.id}/revoke-tokens`, { basic: ADMIN })).status, 204)

    // invites: create, use, a wrong code
    const invite = await expectJson<{ id: string; code: string }>(await srv.post('/api/admin/invites', { basic: ADMIN, json: { roles: ['editor'] } }), 201)
    secrets.push(invite.code, hashInviteCode(invite.code))
    await expectJson(await srv.post('/api/users', { json: { username: 'invited', password: STRONG, invite: invite.code } }), 201)
    const bogus = `rai_${'A'.repeat(43)}`
    await expectProblem(await srv.post('/api/users', { json: { username: 'other', password: STRONG, invite: bogus } }), 400, 'invite_invalid')

    // the OAuth password grant: access and refresh tokens, and a wrong password
    const grant = await expectJson<{ access_token: string; refresh_token: string }>(
      await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'alice', password: adminSet }),
      200,
    )
    secrets.push(grant.access_token, grant.refresh_token, hashRefreshToken(grant.refresh_token))
    assert.equal((await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'alice', password: WRONG })).status, 400)
    const refreshed = await expectJson<{ access_token: string; refresh_token: string }>(
      await postForm(srv, '/oauth/token', { grant_type: 'refresh_token', refresh_token: grant.refresh_token }),
      200,
    )
    secrets.push(refreshed.access_token, refreshed.refresh_token)

    // logout and delete one's own account
    assert.equal((await srv.request('DELETE', '/api/token', { bearer: refreshed.access_token })).status, 204)
    await expectProblem(await srv.request('DELETE', '/api/users/me', { basic: ['invited', STRONG], json: { password: WRONG } }), 400)
    assert.equal((await srv.request('DELETE', '/api/users/me', { basic: ['invited', STRONG], json: { password: STRONG } })).status, 204)

    const entries = await allEntries(srv)
    const names = new Set(entries.map((e) => e.event))
    for (const e of ['auth.failure', 'token.issued', 'user.password_changed', 'user.password_set', 'user.tokens_revoked', 'invite.created', 'user.registered', 'user.deleted']) {
      assert.ok(names.has(e), `${e} was recorded (so the check below covers it): ${[...names].join(', ')}`)
    }
    const storedHashes = [(await srv.store.findUserById(alice.id))?.passwordHash ?? 'missing-hash']
    for (const entry of entries) {
      const json = JSON.stringify(entry)
      assert.ok(!json.includes('$argon2'), `a password hash in ${json}`)
      for (const hash of storedHashes) assert.ok(!json.includes(hash), `a password hash in ${json}`)
      for (const secret of secrets) assert.ok(!json.includes(secret), `a secret (${secret.slice(0, 8)}…) in ${json}`)
    }
    // and the same over HTTP
    const text = await (await srv.get('/api/admin/audit?limit=200', { basic: ADMIN })).text()
    assert.ok(!text.includes('$argon2'))
    for (const secret of secrets) assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 8)}…) in the audit answer`)
  })

  test(`${kind}: no secret in the audit log: a refresh token or invite code sent as the Basic username is not recorded`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    await registerOk(srv, 'alice')
    const grant = await expectJson<{ refresh_token: string }>(
      await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'alice', password: STRONG }),
      200,
    )
    const invite = await expectJson<{ code: string }>(await srv.post('/api/admin/invites', { basic: ADMIN, json: {} }), 201)
    // REST-auth clients send their token as the Basic username (`curl -u TOKEN:unused`); one that
    // sends the refresh token (or an invite code) that way is refused, and that secret must not be kept.
    for (const secret of [grant.refresh_token, invite.code]) {
      await expectProblem(await srv.get('/api/resource', { basic: [secret, 'unused'] }), 401)
      await expectProblem(await srv.get('/api/token', { basic: [secret, ''] }), 401)
    }
    assert.equal((await postForm(srv, '/oauth/token', { grant_type: 'password', username: grant.refresh_token, password: 'x' })).status, 400)
    const leaked = (await allEntries(srv))
      .filter((entry) => [grant.refresh_token, invite.code].some((secret) => JSON.stringify(entry).includes(secret)))
      .map((entry) => `${entry.event} ${String(entry.detail['route'] ?? entry.detail['via'] ?? '')}`)
    assert.deepEqual(leaked, [], 'audit entries that hold the refresh token or the invite code')
  })

  test(`${kind}: the OAuth password grant records token.issued on success and auth.failure on a wrong password (RFC 6749 §4.3)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await makeAdmin(srv)
    const alice = await registerOk(srv, 'alice')

    const ok = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'alice', password: STRONG })
    assert.equal(ok.status, 200, await ok.text())
    const bad = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'alice', password: WRONG })
    assert.equal(bad.status, 400)
    assert.equal(((await bad.json()) as { error: string }).error, 'invalid_grant')

    const page = await audit(srv, 'event=token.issued')
    assert.equal(page.entries.length, 1)
    const issued = page.entries[0]
    assert.ok(issued !== undefined)
    assert.equal(issued.outcome, 'success')
    assert.equal(issued.actor, 'alice')
    assert.equal(issued.actor_id, alice.id)
    assert.equal(issued.subject_id, alice.id)
    assert.equal(issued.subject, 'alice')
    assert.equal(issued.ip, '127.0.0.1')
    assert.equal(issued.detail['via'], 'oauth_password_grant')

    const failures = await audit(srv, 'event=auth.failure')
    assert.equal(failures.entries.length, 1)
    const failure = failures.entries[0]
    assert.ok(failure !== undefined)
    assert.equal(failure.outcome, 'failure')
    assert.equal(failure.actor, 'anonymous')
    assert.equal(failure.subject, 'alice')
    assert.equal(failure.ip, '127.0.0.1')
    assert.equal(failure.detail['reason'], 'invalid_credentials')
    assert.equal(failure.detail['via'], 'oauth_password_grant')

    // an unknown user is recorded the same way
    assert.equal((await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'nobody', password: WRONG })).status, 400)
    const two = await audit(srv, 'event=auth.failure')
    assert.deepEqual(two.entries.map((e) => e.subject), ['nobody', 'alice'])
  })
}
