/**
 * The account-administration part of the Store port (users' status and roles, listing, updates,
 * deletion, invites, the audit log) over every dialect (house style §2.11: same tests for every
 * store, no mocks). Effects are read back through the port, or through the tables when the port
 * does not show them.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { KyselyStore } from '../../src/store/kysely-store.ts'
import type { NewAuditEntry, NewInvite, NewUser, User } from '../../src/store/store.ts'
import { freshStore } from '../helpers/fresh-store.ts'
import { STORES } from '../helpers/stores.ts'

/** A time past 2^31 seconds' worth of ms, so 32-bit truncation or bigint-as-string would show. */
const NOW = 1_795_000_000_123
const HOUR = 3_600_000

function newUser(username: string, overrides: Partial<NewUser> = {}): NewUser {
  return {
    username,
    usernameCanonical: username.normalize('NFC').toLowerCase(),
    passwordHash: `$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$${Buffer.from(username).toString('base64').replace(/=+$/, '')}`,
    now: NOW,
    ...overrides,
  }
}

async function created(store: KyselyStore, username: string, overrides: Partial<NewUser> = {}): Promise<User> {
  const user = await store.createUser(newUser(username, overrides))
  assert.ok(user !== undefined, `createUser(${username})`)
  return user
}

function newInvite(id: string, codeHash: string, overrides: Partial<NewInvite> = {}): NewInvite {
  return {
    id,
    codeHash,
    username: null,
    usernameCanonical: null,
    roles: [],
    createdBy: 'cli',
    createdAt: NOW,
    expiresAt: NOW + HOUR,
    ...overrides,
  }
}

function auditEntry(event: string, at: number, overrides: Partial<NewAuditEntry> = {}): NewAuditEntry {
  return {
    at,
    event,
    outcome: 'success',
    actorId: null,
    actor: 'cli',
    subjectId: null,
    subject: null,
    ip: null,
    detail: {},
    ...overrides,
  }
}

const names = (users: readonly User[]) => users.map((u) => u.username)

for (const kind of STORES) {
  test(`${kind}: createUser keeps status and roles (roles sorted, unique); defaults active, no roles, tokens_valid_after 0`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const pending = await created(store, 'pat', { status: 'pending', roles: ['viewer', 'admin', 'viewer', 'editor'] })
    assert.equal(pending.status, 'pending')
    assert.deepEqual(pending.roles, ['admin', 'editor', 'viewer'])
    assert.equal(pending.tokensValidAfter, 0)
    const found = await store.findUserById(pending.id)
    assert.deepEqual(found, pending, 'findUserById returns what createUser returned')
    assert.deepEqual(await store.findUserByCanonicalName('pat'), pending)

    const plain = await created(store, 'plain')
    assert.equal(plain.status, 'active')
    assert.deepEqual(plain.roles, [])
    assert.equal(plain.tokensValidAfter, 0)
    const disabled = await created(store, 'off', { status: 'disabled' })
    assert.equal((await store.findUserById(disabled.id))?.status, 'disabled')
  })

  test(`${kind}: listUsers pages by id (keyset afterId), ascending, at most limit`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const ids: number[] = []
    for (const name of ['u1', 'u2', 'u3', 'u4', 'u5']) ids.push((await created(store, name)).id)
    const seen: number[] = []
    let afterId: number | undefined
    const pages: number[] = []
    for (;;) {
      const page = await store.listUsers({ limit: 2, ...(afterId === undefined ? {} : { afterId }) })
      if (page.length === 0) break
      pages.push(page.length)
      seen.push(...page.map((u) => u.id))
      afterId = page[page.length - 1]?.id
    }
    assert.deepEqual(pages, [2, 2, 1])
    assert.deepEqual(seen, ids, 'every user once, in id order')
    assert.deepEqual(names(await store.listUsers({ limit: 100, afterId: ids[3] })), ['u5'])
    assert.deepEqual(await store.listUsers({ limit: 100, afterId: ids[4] }), [])
    // A deleted id in the middle does not break the keyset.
    assert.equal(await store.deleteUser(ids[2]!), true)
    assert.deepEqual(names(await store.listUsers({ limit: 2, afterId: ids[1] })), ['u4', 'u5'])
  })

  test(`${kind}: listUsers search is a literal substring: LIKE metacharacters % _ \\ match only themselves`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    for (const name of ['a_b', 'axb', 'a%c', 'abc', 'a\\d', 'zzz']) await created(store, name)
    const search = async (text: string) => names(await store.listUsers({ limit: 100, search: text }))
    assert.deepEqual(await search('_'), ['a_b'], "'_' is not 'any character'")
    assert.deepEqual(await search('a_b'), ['a_b'], "'a_b' does not find 'axb'")
    assert.deepEqual(await search('%'), ['a%c'], "'%' is not 'anything'")
    assert.deepEqual(await search('a%'), ['a%c'])
    assert.deepEqual(await search('\\'), ['a\\d'], 'the escape character itself is literal')
    assert.deepEqual(await search('x'), ['axb'], 'substring anywhere')
    assert.deepEqual(await search('b'), ['a_b', 'axb', 'abc'])
    assert.deepEqual(await search('nobody'), [])
    // Search combines with the other filters and with paging.
    assert.deepEqual(names(await store.listUsers({ limit: 1, search: 'b' })), ['a_b'])
  })

  test(`${kind}: listUsers role filter is exact ('edit' does not match 'editor'), status filter exact`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    await created(store, 'ed', { roles: ['editor'] })
    await created(store, 'e2', { roles: ['edit'] })
    await created(store, 'e3', { roles: ['admin', 'edit', 'viewer'] })
    await created(store, 'e4', { roles: ['a_b'] })
    await created(store, 'e5', { roles: ['axb'], status: 'pending' })
    await created(store, 'none')
    const byRole = async (role: string) => names(await store.listUsers({ limit: 100, role }))
    assert.deepEqual(await byRole('edit'), ['e2', 'e3'])
    assert.deepEqual(await byRole('editor'), ['ed'])
    assert.deepEqual(await byRole('dit'), [])
    assert.deepEqual(await byRole('admin'), ['e3'], 'a role in the middle of the list')
    assert.deepEqual(await byRole('viewer'), ['e3'], 'the last role of the list')
    assert.deepEqual(await byRole('a_b'), ['e4'], "'_' in a role name is literal")
    assert.deepEqual(names(await store.listUsers({ limit: 100, status: 'pending' })), ['e5'])
    assert.deepEqual(names(await store.listUsers({ limit: 100, status: 'active', role: 'axb' })), [])
    assert.deepEqual(names(await store.listUsers({ limit: 100, status: 'disabled' })), [])
  })

  test(`${kind}: role filters are case-sensitive on every dialect ('EDITOR' is not 'editor'; SQLite LIKE folds ASCII case)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    await created(store, 'boss', { roles: ['admin'] })
    await created(store, 'ed', { roles: ['editor'] })
    // Role names are lower-case (auth/roles.ts), so an upper-case filter names no role at all.
    assert.deepEqual(names(await store.listUsers({ limit: 100, role: 'EDITOR' })), [])
    assert.deepEqual(names(await store.listUsers({ limit: 100, role: 'Admin' })), [])
    assert.equal(await store.countActiveWithRole('ADMIN'), 0)
  })

  test(`${kind}: a filter holding NUL matches nothing (listUsers search and role, queryAudit event): never ignored, never a database error`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    // No username, role or event holds NUL (and PostgreSQL text cannot even be compared with one, error
    // 22021), as findUserByCanonicalName and revokeInvite already treat it: nothing matches.
    await created(store, 'miguel', { roles: ['admin'] })
    await store.appendAudit([auditEntry('user.created', NOW)])
    const outcome = async (run: () => Promise<readonly unknown[]>) => {
      try {
        return (await run()).length
      } catch (error) {
        return `error: ${error instanceof Error ? error.message : String(error)}`
      }
    }
    // Every case at once, so a failure shows them all.
    assert.deepEqual(
      {
        'search "zz\\0"': await outcome(() => store.listUsers({ limit: 100, search: 'zz\u0000' })),
        'role "\\0"': await outcome(() => store.listUsers({ limit: 100, role: '\u0000' })),
        'event "user\\0"': await outcome(() => store.queryAudit({ limit: 100, event: 'user\u0000' })),
        'event family "\\0.*"': await outcome(() => store.queryAudit({ limit: 100, event: '\u0000.*' })),
      },
      { 'search "zz\\0"': 0, 'role "\\0"': 0, 'event "user\\0"': 0, 'event family "\\0.*"': 0 },
    )
  })

  test(`${kind}: updateUser sets status, roles (sorted, unique) and password in one call; unknown id → undefined`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const user = await created(store, 'miguel', { status: 'pending' })
    const other = await created(store, 'other', { roles: ['viewer'] })
    const updated = await store.updateUser(user.id, { status: 'active', roles: ['viewer', 'editor', 'viewer'], passwordHash: '$argon2id$new' }, NOW + 5)
    assert.ok(updated !== undefined)
    assert.equal(updated.status, 'active')
    assert.deepEqual(updated.roles, ['editor', 'viewer'])
    assert.equal(updated.passwordHash, '$argon2id$new')
    assert.equal(updated.updatedAt, NOW + 5)
    assert.equal(updated.createdAt, NOW)
    assert.equal(updated.tokensValidAfter, 0, 'no revocation asked')
    assert.deepEqual(await store.findUserById(user.id), updated)

    // Only what is named changes.
    const disabled = await store.updateUser(user.id, { status: 'disabled' }, NOW + 6)
    assert.deepEqual(disabled?.roles, ['editor', 'viewer'])
    assert.equal(disabled?.passwordHash, '$argon2id$new')
    const cleared = await store.updateUser(user.id, { roles: [] }, NOW + 7)
    assert.deepEqual(cleared?.roles, [])
    assert.equal(cleared?.status, 'disabled')
    assert.deepEqual(await store.findUserById(other.id), other, 'other users are untouched')

    assert.equal(await store.updateUser(other.id + 100, { status: 'disabled' }, NOW), undefined)
    assert.equal(await store.updateUser(0, { status: 'disabled' }, NOW), undefined)
    assert.equal(await store.updateUser(-1, { status: 'disabled' }, NOW), undefined)
  })

  test(`${kind}: updateUser revokeTokensBefore raises tokens_valid_after, never lowers it, and revokes the user's refresh families`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const user = await created(store, 'miguel')
    const other = await created(store, 'other')
    const family = (id: string, userId: number) => ({
      family: { id, userId, clientId: null, scope: null, authTime: Math.floor(NOW / 1000), createdAt: NOW, expiresAt: NOW + 24 * HOUR },
      tokenHash: `hash-${id}`,
      idleExpiresAt: NOW + 12 * HOUR,
    })
    await store.createRefreshFamily(family('fam-a', user.id))
    await store.createRefreshFamily(family('fam-b', user.id))
    await store.createRefreshFamily(family('fam-other', other.id))

    // A change without revokeTokensBefore revokes nothing.
    await store.updateUser(user.id, { roles: ['editor'] }, NOW + 1)
    assert.equal((await store.findRefreshToken('hash-fam-a'))?.family.revokedAt, null)

    const mark = Math.floor(NOW / 1000) + 10
    const revoked = await store.updateUser(user.id, { revokeTokensBefore: mark }, NOW + 2)
    assert.equal(revoked?.tokensValidAfter, mark)
    assert.equal((await store.findUserById(user.id))?.tokensValidAfter, mark)
    assert.equal((await store.findRefreshToken('hash-fam-a'))?.family.revokedAt, NOW + 2)
    assert.equal((await store.findRefreshToken('hash-fam-b'))?.family.revokedAt, NOW + 2)
    assert.equal((await store.findRefreshToken('hash-fam-other'))?.family.revokedAt, null, "another user's family is untouched")
    assert.equal((await store.findUserById(other.id))?.tokensValidAfter, 0)

    // A lower mark never lowers it (an older request arriving late must not un-revoke tokens).
    const lower = await store.updateUser(user.id, { revokeTokensBefore: mark - 5, status: 'disabled' }, NOW + 3)
    assert.equal(lower?.tokensValidAfter, mark)
    assert.equal(lower?.status, 'disabled', 'the rest of the change still applies')
    assert.equal((await store.findRefreshToken('hash-fam-a'))?.family.revokedAt, NOW + 2, 'an already revoked family keeps its time')

    const higher = await store.updateUser(user.id, { revokeTokensBefore: mark + 5 }, NOW + 4)
    assert.equal(higher?.tokensValidAfter, mark + 5)
  })

  test(`${kind}: deleteUser removes the user and its refresh families; a new user gets a larger id (ids never reused)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const a = await created(store, 'alice')
    const b = await created(store, 'bob')
    await store.createRefreshFamily({
      family: { id: 'fam-bob', userId: b.id, clientId: null, scope: null, authTime: 1, createdAt: NOW, expiresAt: NOW + HOUR },
      tokenHash: 'hash-bob',
      idleExpiresAt: NOW + HOUR,
    })
    assert.equal(await store.deleteUser(b.id), true)
    assert.equal(await store.findUserById(b.id), undefined)
    assert.equal(await store.findUserByCanonicalName('bob'), undefined)
    assert.equal(await store.findRefreshToken('hash-bob'), undefined, 'refresh tokens go with the user')
    assert.equal((await store.revocationState('jti-x', 'fam-bob')).familyRevoked, true)
    assert.equal(await store.deleteUser(b.id), false, 'second delete: nothing to delete')
    assert.equal(await store.deleteUser(0), false)
    assert.equal(await store.deleteUser(Number.MAX_SAFE_INTEGER + 1), false)

    // The deleted id was the highest: a new user still gets a larger one, even with the same name.
    const bob2 = await created(store, 'bob')
    assert.ok(bob2.id > b.id, `new id ${bob2.id} must be above the deleted ${b.id}`)
    assert.equal(await store.deleteUser(a.id), true)
    assert.equal(await store.deleteUser(bob2.id), true)
    const c = await created(store, 'carol')
    assert.ok(c.id > bob2.id, `new id ${c.id} must be above ${bob2.id} after every row was deleted`)
  })

  test(`${kind}: countActiveWithRole counts active holders of exactly that role (last-admin guard)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    assert.equal(await store.countActiveWithRole('admin'), 0)
    const boss = await created(store, 'boss', { roles: ['admin'] })
    await created(store, 'waiting', { roles: ['admin'], status: 'pending' })
    await created(store, 'gone', { roles: ['admin', 'editor'], status: 'disabled' })
    await created(store, 'admins', { roles: ['admins', 'sysadmin'] })
    await created(store, 'ed', { roles: ['editor'] })
    assert.equal(await store.countActiveWithRole('admin'), 1)
    assert.equal(await store.countActiveWithRole('editor'), 1, 'the disabled editor does not count')
    assert.equal(await store.countActiveWithRole('viewer'), 0)
    await created(store, 'boss2', { roles: ['editor', 'admin'] })
    assert.equal(await store.countActiveWithRole('admin'), 2)
    await store.updateUser(boss.id, { status: 'disabled' }, NOW + 1)
    assert.equal(await store.countActiveWithRole('admin'), 1)
  })

  test(`${kind}: createUserWithInvite creates the user and marks the invite used by it`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    await store.createInvite(newInvite('inv_1', 'hash-1', { username: 'Dave', usernameCanonical: 'dave', roles: ['viewer', 'editor'] }))
    const invite = await store.findInviteByCodeHash('hash-1')
    assert.deepEqual(invite, {
      id: 'inv_1',
      username: 'Dave',
      usernameCanonical: 'dave',
      roles: ['editor', 'viewer'],
      createdBy: 'cli',
      createdAt: NOW,
      expiresAt: NOW + HOUR,
      usedAt: null,
      usedBy: null,
      revokedAt: null,
    })
    assert.equal(await store.findInviteByCodeHash('hash-unknown'), undefined)

    const result = await store.createUserWithInvite(newUser('Dave', { now: NOW + 10, roles: ['editor'] }), 'hash-1')
    assert.ok(typeof result === 'object', `expected a user, got ${String(result)}`)
    assert.equal(result.username, 'Dave')
    assert.deepEqual(result.roles, ['editor'])
    assert.deepEqual(await store.findUserByCanonicalName('dave'), result)
    const used = await store.findInviteByCodeHash('hash-1')
    assert.equal(used?.usedAt, NOW + 10)
    assert.equal(used?.usedBy, result.id)
    assert.equal(used?.revokedAt, null)
  })

  test(`${kind}: createUserWithInvite with a used, revoked, expired or unknown invite → 'invite_unusable', no user created`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    await store.createInvite(newInvite('inv_used', 'hash-used'))
    await store.createInvite(newInvite('inv_revoked', 'hash-revoked'))
    await store.createInvite(newInvite('inv_expired', 'hash-expired', { expiresAt: NOW + 100 }))
    const first = await store.createUserWithInvite(newUser('first'), 'hash-used')
    assert.ok(typeof first === 'object')
    assert.equal(await store.revokeInvite('inv_revoked', NOW + 1), true)

    const cases: ReadonlyArray<readonly [string, string, number]> = [
      ['used', 'hash-used', NOW + 1],
      ['revoked', 'hash-revoked', NOW + 1],
      ['expired (at its expiry instant)', 'hash-expired', NOW + 100],
      ['expired (after)', 'hash-expired', NOW + 101],
      ['unknown', 'hash-unknown', NOW + 1],
    ]
    for (const [label, hash, now] of cases) {
      const username = `u-${label.replace(/\W+/g, '-')}`
      assert.equal(await store.createUserWithInvite(newUser(username, { now }), hash), 'invite_unusable', label)
      assert.equal(await store.findUserByCanonicalName(username), undefined, `${label}: no user created`)
    }
    assert.equal((await store.findInviteByCodeHash('hash-used'))?.usedBy, first.id, 'the first user keeps the invite')
    assert.equal((await store.findInviteByCodeHash('hash-expired'))?.usedAt, null)
    assert.equal((await store.findInviteByCodeHash('hash-revoked'))?.usedAt, null)
    // Just before expiry it still works.
    assert.ok(typeof (await store.createUserWithInvite(newUser('intime', { now: NOW + 99 }), 'hash-expired')) === 'object')
    assert.deepEqual(names(await store.listUsers({ limit: 100 })), ['first', 'intime'])
  })

  test(`${kind}: createUserWithInvite with a taken username → 'taken' and the invite stays unused (transaction rolled back)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const dave = await created(store, 'dave')
    await store.createInvite(newInvite('inv_1', 'hash-1'))
    assert.equal(await store.createUserWithInvite(newUser('DAVE', { usernameCanonical: 'dave', now: NOW + 1 }), 'hash-1'), 'taken')
    const invite = await store.findInviteByCodeHash('hash-1')
    assert.equal(invite?.usedAt, null, 'the claim was rolled back')
    assert.equal(invite?.usedBy, null)
    assert.deepEqual(await store.findUserByCanonicalName('dave'), dave, 'the existing user is unchanged')
    assert.deepEqual((await store.listInvites(false, NOW + 2)).map((i) => i.id), ['inv_1'], 'still listed as usable')
    // The same invite still works for a free name.
    const erin = await store.createUserWithInvite(newUser('erin', { now: NOW + 3 }), 'hash-1')
    assert.ok(typeof erin === 'object')
    assert.equal((await store.findInviteByCodeHash('hash-1'))?.usedBy, erin.id)
  })

  test(`${kind}: 10 concurrent createUserWithInvite calls with one invite → exactly one user (single use, race-safe)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    // PostgreSQL: two pools, as two instances of the service would have. SQLite: one connection, as
    // one instance has. (Two better-sqlite3 connections in one process cannot race a transaction:
    // the waiting one blocks the thread in its busy handler while the other awaits its next statement.)
    const stores = kind === 'postgres' ? [fresh.store, fresh.openAnother()] : [fresh.store]
    await fresh.store.createInvite(newInvite('inv_race', 'hash-race'))
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => stores[i % stores.length]!.createUserWithInvite(newUser(`racer${i}`, { now: NOW + 1 }), 'hash-race')),
    )
    const users = results.filter((r): r is User => typeof r === 'object')
    assert.equal(users.length, 1, `exactly one succeeds: ${JSON.stringify(results.map((r) => (typeof r === 'object' ? r.username : r)))}`)
    assert.ok(results.every((r) => typeof r === 'object' || r === 'invite_unusable'))
    assert.deepEqual(names(await fresh.store.listUsers({ limit: 100 })), [users[0]!.username], 'no other user was created')
    assert.equal((await fresh.store.findInviteByCodeHash('hash-race'))?.usedBy, users[0]!.id)
  })

  test(`${kind}: revokeInvite succeeds once; a used, revoked or unknown invite → false`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    await store.createInvite(newInvite('inv_a', 'hash-a'))
    await store.createInvite(newInvite('inv_b', 'hash-b'))
    assert.equal(await store.revokeInvite('inv_a', NOW + 5), true)
    assert.equal((await store.findInviteByCodeHash('hash-a'))?.revokedAt, NOW + 5)
    assert.equal(await store.revokeInvite('inv_a', NOW + 6), false, 'second revoke')
    assert.equal((await store.findInviteByCodeHash('hash-a'))?.revokedAt, NOW + 5, 'the first revocation time stays')
    assert.equal(await store.revokeInvite('inv_unknown', NOW), false)
    assert.equal(await store.revokeInvite('inv\u0000a', NOW), false, 'NUL is no invite (PostgreSQL text cannot hold it)')
    assert.ok(typeof (await store.createUserWithInvite(newUser('bea'), 'hash-b')) === 'object')
    assert.equal(await store.revokeInvite('inv_b', NOW + 7), false, 'a used invite cannot be revoked')
    assert.equal((await store.findInviteByCodeHash('hash-b'))?.revokedAt, null)
  })

  test(`${kind}: listInvites shows usable invites, newest first; includeSpent adds used, revoked and expired ones`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const now = NOW + 1000
    await store.createInvite(newInvite('inv_old', 'h-old', { createdAt: NOW }))
    await store.createInvite(newInvite('inv_new', 'h-new', { createdAt: NOW + 2 }))
    await store.createInvite(newInvite('inv_used', 'h-used', { createdAt: NOW + 1 }))
    await store.createInvite(newInvite('inv_revoked', 'h-revoked', { createdAt: NOW + 3 }))
    await store.createInvite(newInvite('inv_expired', 'h-expired', { createdAt: NOW + 4, expiresAt: now }))
    assert.ok(typeof (await store.createUserWithInvite(newUser('used'), 'h-used')) === 'object')
    assert.equal(await store.revokeInvite('inv_revoked', NOW + 5), true)

    assert.deepEqual((await store.listInvites(false, now)).map((i) => i.id), ['inv_new', 'inv_old'])
    const all = await store.listInvites(true, now)
    assert.deepEqual(all.map((i) => i.id), ['inv_expired', 'inv_revoked', 'inv_new', 'inv_used', 'inv_old'])
    assert.ok(all.every((i) => !('codeHash' in i)), 'the code hash is not part of a listed invite')
    // Before its expiry, the expiring one is usable.
    assert.deepEqual((await store.listInvites(false, now - 1)).map((i) => i.id), ['inv_expired', 'inv_new', 'inv_old'])
  })

  test(`${kind}: appendAudit → queryAudit round-trips every field; newest first`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const entry = auditEntry('auth.failure', NOW, {
      outcome: 'failure',
      actorId: null,
      actor: 'anonymous',
      subjectId: 7,
      subject: 'miguel',
      ip: '203.0.113.5',
      detail: { reason: 'invalid_credentials', attempts: 3, locked: false, note: null },
    })
    await store.appendAudit([entry])
    await store.appendAudit([auditEntry('user.created', NOW + 1, { actorId: 2, actor: 'boss', subjectId: 8, subject: 'ann' })])
    const rows = await store.queryAudit({ limit: 10 })
    assert.equal(rows.length, 2)
    assert.equal(rows[0]?.event, 'user.created', 'newest first')
    const { id, ...rest } = rows[1]!
    assert.ok(Number.isSafeInteger(id) && id >= 1)
    assert.deepEqual(rest, entry)
    assert.ok(rows[0]!.id > id)
  })

  test(`${kind}: queryAudit filters: event exact or 'family.*', outcome, userId as actor or subject, since ≤ at < until, beforeId`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const entries: NewAuditEntry[] = [
      auditEntry('user.created', NOW, { subjectId: 1, subject: 'ann' }),
      auditEntry('user.disabled', NOW + 10, { actorId: 2, actor: 'boss', subjectId: 1, subject: 'ann' }),
      auditEntry('auth.failure', NOW + 20, { outcome: 'failure', actor: 'anonymous', subjectId: 3, subject: 'cy', ip: '192.0.2.1' }),
      auditEntry('invite.created', NOW + 30, { actorId: 2, actor: 'boss' }),
      auditEntry('users.listed', NOW + 40, { actorId: 2, actor: 'boss' }),
      auditEntry('user', NOW + 50),
      auditEntry('user_x.created', NOW + 60),
    ]
    for (const e of entries) await store.appendAudit([e])
    const all = await store.queryAudit({ limit: 100 })
    assert.deepEqual(
      all.map((e) => e.event),
      entries.map((e) => e.event).reverse(),
      'newest first',
    )
    const ids = all.map((e) => e.id)
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a))
    const events = async (q: Partial<Parameters<typeof store.queryAudit>[0]>) => (await store.queryAudit({ limit: 100, ...q })).map((e) => e.event)

    assert.deepEqual(await events({ event: 'user.created' }), ['user.created'])
    assert.deepEqual(await events({ event: 'user' }), ['user'], 'exact, not a prefix')
    assert.deepEqual(await events({ event: 'user.*' }), ['user.disabled', 'user.created'], "not 'users.listed', 'user' or 'user_x.created'")
    assert.deepEqual(await events({ event: 'nothing.*' }), [])
    assert.deepEqual(await events({ event: '*' }), [], "'*' alone is an event name, not a wildcard")
    assert.deepEqual(await events({ outcome: 'failure' }), ['auth.failure'])
    assert.equal((await events({ outcome: 'success' })).length, entries.length - 1)
    assert.deepEqual(await events({ userId: 1 }), ['user.disabled', 'user.created'], 'as subject')
    assert.deepEqual(await events({ userId: 2 }), ['users.listed', 'invite.created', 'user.disabled'], 'as actor')
    assert.deepEqual(await events({ userId: 3 }), ['auth.failure'])
    assert.deepEqual(await events({ userId: 99 }), [])
    assert.deepEqual(await events({ since: NOW + 10, until: NOW + 30 }), ['auth.failure', 'user.disabled'], 'since inclusive, until exclusive')
    assert.deepEqual(await events({ since: NOW + 55 }), ['user_x.created'])
    assert.deepEqual(await events({ until: NOW + 10 }), ['user.created'])
    assert.deepEqual(await events({ event: 'user.*', userId: 1, since: NOW + 1 }), ['user.disabled'], 'filters combine')

    // Keyset paging, newest first.
    const third = all[2]!
    assert.deepEqual(await events({ beforeId: third.id }), entries.slice(0, entries.length - 3).map((e) => e.event).reverse())
    assert.equal(third.event, 'users.listed')
    assert.deepEqual(await events({ beforeId: third.id, limit: 2 }), ['invite.created', 'auth.failure'])
    assert.deepEqual(await events({ beforeId: all[all.length - 1]!.id }), [])
    assert.deepEqual(await events({ limit: 1 }), ['user_x.created'])
  })

  test(`${kind}: purgeExpired(now, auditBefore) drops audit rows older than auditBefore only; without it, none`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const user = await created(store, 'miguel')
    await store.appendAudit([auditEntry('user.created', NOW - 20 * HOUR, { subjectId: user.id, subject: 'miguel' })])
    await store.appendAudit([auditEntry('user.disabled', NOW - 10 * HOUR)])
    await store.appendAudit([auditEntry('user.enabled', NOW - HOUR)])
    await store.revokeJti('jti-expired', String(user.id), NOW - 1, NOW - 2 * HOUR)
    await store.revokeJti('jti-live', String(user.id), NOW + HOUR, NOW - 2 * HOUR)

    assert.equal(await store.purgeExpired(NOW), 1, 'only the expired denylist row')
    assert.equal((await store.queryAudit({ limit: 10 })).length, 3, 'no auditBefore: the audit log is kept')

    assert.equal(await store.purgeExpired(NOW, NOW - 10 * HOUR), 1, 'only the entry strictly older than auditBefore')
    assert.deepEqual((await store.queryAudit({ limit: 10 })).map((e) => e.event), ['user.enabled', 'user.disabled'])
    assert.equal((await store.revocationState('jti-live', undefined)).jtiRevoked, true, 'a live denylist row stays')
    assert.ok((await store.findUserById(user.id)) !== undefined, 'users are not purged')

    assert.equal(await store.purgeExpired(NOW, NOW), 2)
    assert.deepEqual(await store.queryAudit({ limit: 10 }), [])
    assert.equal(await store.purgeExpired(NOW, NOW), 0, 'nothing left to purge')
  })
}

for (const kind of STORES) {
  test(`${kind}: guarded writes never leave no active admin, even when two instances demote two admins at the same instant (HolderGuard)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const one = fresh.store
    // PostgreSQL: a second pool, as a second instance would have. SQLite: the same store. Two SQLite
    // connections in one process cannot wait for each other (better-sqlite3 waits out busy_timeout
    // synchronously, so the holder of the lock never gets to commit); the workers of `serve` are
    // processes of their own, whose write waits in busy_timeout and then reads afresh.
    const two = kind === 'postgres' ? fresh.openAnother() : one
    const guard = { keepActiveWithRole: 'admin' }
    const admins = () => one.countActiveWithRole('admin')
    const cases: ReadonlyArray<[string, (store: KyselyStore, id: number) => Promise<unknown>]> = [
      ['roles removed', (store, id) => store.updateUser(id, { roles: [] }, NOW, guard)],
      ['disabled', (store, id) => store.updateUser(id, { status: 'disabled' }, NOW, guard)],
      ['deleted', (store, id) => store.deleteUser(id, guard)],
    ]
    for (const [what, write] of cases) {
      for (let round = 0; round < 5; round++) {
        const a = await created(one, `a_${what.replace(' ', '_')}_${round}`, { roles: ['admin'] })
        const b = await created(one, `b_${what.replace(' ', '_')}_${round}`, { roles: ['admin'] })
        // the admins of earlier rounds go first (unguarded), so exactly a and b remain
        for (const u of await one.listUsers({ role: 'admin', limit: 100 })) {
          if (u.id !== a.id && u.id !== b.id && u.status === 'active') await one.updateUser(u.id, { roles: [] }, NOW)
        }
        assert.equal(await admins(), 2)
        const outcomes = await Promise.allSettled([write(one, a.id), write(two, b.id)])
        const refused = outcomes.filter((o) => o.status === 'rejected')
        assert.equal(refused.length, 1, `${what}, round ${round}: exactly one of the two is refused (${outcomes.map((o) => o.status).join(', ')})`)
        const reason = (refused[0] as PromiseRejectedResult).reason as Error
        assert.equal(reason.name, 'LastHolderError', String(reason))
        assert.equal(await admins(), 1, `${what}, round ${round}: one active admin is left`)
      }
    }
    // Unguarded, the same race takes both (what the guard is for): nothing else stops it in the store.
    const a = await created(one, 'a_unguarded', { roles: ['admin'] })
    const b = await created(one, 'b_unguarded', { roles: ['admin'] })
    for (const u of await one.listUsers({ role: 'admin', limit: 100 })) {
      if (u.id !== a.id && u.id !== b.id && u.status === 'active') await one.updateUser(u.id, { roles: [] }, NOW)
    }
    await Promise.all([one.updateUser(a.id, { roles: [] }, NOW), two.updateUser(b.id, { roles: [] }, NOW)])
    assert.equal(await admins(), 0)
  })

  test(`${kind}: a guarded write that leaves another active admin goes through, and a refused one writes nothing (no change-log row, no revocation)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const store = fresh.store
    const guard = { keepActiveWithRole: 'admin' }
    const a = await created(store, 'admin_a', { roles: ['admin'] })
    const b = await created(store, 'admin_b', { roles: ['admin'] })
    const updated = await store.updateUser(a.id, { status: 'disabled', revokeTokensBefore: 5 }, NOW, guard)
    assert.equal(updated?.status, 'disabled')
    const before = await store.changesSince(0, 1000)
    await assert.rejects(store.updateUser(b.id, { status: 'disabled', revokeTokensBefore: 7 }, NOW + 1, guard), { name: 'LastHolderError' })
    await assert.rejects(store.deleteUser(b.id, guard), { name: 'LastHolderError' })
    const still = await store.findUserById(b.id)
    assert.equal(still?.status, 'active')
    assert.ok(still !== undefined && still.tokensValidAfter < 7, 'the refused write revoked nothing')
    assert.deepEqual(await store.changesSince(0, 1000), before, 'no change-log row for a refused write')
  })
}
