/**
 * The Store port over every dialect (house style §2.11: same tests for every store, no mocks).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { NewUser, SigningKey } from '../../src/store/store.ts'
import { freshStore } from '../helpers/fresh-store.ts'
import { STORES } from '../helpers/stores.ts'

/** A time past 2^31 seconds' worth of ms, so 32-bit truncation or bigint-as-string would show. */
const NOW = 1_795_000_000_123

function newUser(username: string, overrides: Partial<NewUser> = {}): NewUser {
  return {
    username,
    usernameCanonical: username.normalize('NFC').toLowerCase(),
    passwordHash: `$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$${Buffer.from(username).toString('base64').replace(/=+$/, '')}`,
    now: NOW,
    ...overrides,
  }
}

function signingKey(kid: string, activatesAt: number, retiresAt: number | null = null): SigningKey {
  return {
    kid,
    alg: 'ES256',
    publicJwk: JSON.stringify({ kty: 'EC', crv: 'P-256', x: `x-${kid}`, y: `y-${kid}` }),
    privateJwk: JSON.stringify({ kty: 'EC', crv: 'P-256', x: `x-${kid}`, y: `y-${kid}`, d: `d-${kid}` }),
    createdAt: activatesAt - 1,
    activatesAt,
    retiresAt,
  }
}

for (const kind of STORES) {
  test(`${kind}: createUser → findUserById / findUserByCanonicalName round trip (Store port)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const input = newUser('Miguel')
    const created = await store.createUser(input)
    assert.ok(created !== undefined)
    assert.ok(Number.isSafeInteger(created.id) && created.id >= 1)
    const expected = {
      id: created.id,
      username: 'Miguel',
      usernameCanonical: 'miguel',
      passwordHash: input.passwordHash,
      createdAt: NOW,
      updatedAt: NOW,
    }
    const pick = (u: typeof created | undefined) =>
      u && { id: u.id, username: u.username, usernameCanonical: u.usernameCanonical, passwordHash: u.passwordHash, createdAt: u.createdAt, updatedAt: u.updatedAt }
    assert.deepEqual(pick(created), expected)
    assert.deepEqual(pick(await store.findUserById(created.id)), expected)
    assert.deepEqual(pick(await store.findUserByCanonicalName('miguel')), expected)
    // Lookups are by the canonical form only: the display form is not a key.
    assert.equal(await store.findUserByCanonicalName('Miguel'), undefined)
    assert.equal(await store.findUserByCanonicalName('nobody'), undefined)
    assert.equal(await store.findUserById(created.id + 1), undefined)
  })

  test(`${kind}: non-ASCII usernames round-trip unchanged (RFC 8265 display vs canonical)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const created = await store.createUser(newUser('Ñandú', { usernameCanonical: 'ñandú' }))
    assert.equal(created?.username, 'Ñandú')
    const found = await store.findUserByCanonicalName('ñandú')
    assert.equal(found?.username, 'Ñandú')
    assert.equal(found?.usernameCanonical, 'ñandú')
  })

  test(`${kind}: findUserById refuses ids that are not positive safe integers`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    await store.createUser(newUser('miguel'))
    for (const id of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1, 2 ** 63]) {
      assert.equal(await store.findUserById(id), undefined, `id ${id}`)
    }
    assert.equal(await store.findUserById(Number.MAX_SAFE_INTEGER), undefined)
  })

  test(`${kind}: createUser with a taken canonical name returns undefined (unique username_canonical)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const first = await store.createUser(newUser('Miguel'))
    assert.ok(first !== undefined)
    assert.equal(await store.createUser(newUser('MIGUEL')), undefined)
    assert.equal(await store.createUser(newUser('miguel')), undefined)
    assert.equal((await store.findUserByCanonicalName('miguel'))?.username, 'Miguel', 'the first registration is kept')
  })

  test(`${kind}: 20 concurrent createUser calls with one canonical name → exactly one user (race-safe)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    // Two connections (pools), as two instances of the service would have.
    const stores = [fresh.store, fresh.openAnother()]
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => stores[i % 2]!.createUser(newUser(i % 2 === 0 ? 'Racer' : 'RACER', { usernameCanonical: 'racer' }))),
    )
    const created = results.filter((u) => u !== undefined)
    assert.equal(created.length, 1, 'exactly one createUser succeeds')
    assert.equal((await fresh.store.findUserByCanonicalName('racer'))?.id, created[0]?.id)
  })

  test(`${kind}: replacePasswordHash is a compare-and-set (rehash on login never overwrites a newer hash)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const user = await store.createUser(newUser('miguel'))
    assert.ok(user !== undefined)
    assert.equal(await store.replacePasswordHash(user.id, 'not-the-current-hash', '$argon2id$wrong', NOW + 1), false)
    assert.equal((await store.findUserById(user.id))?.passwordHash, user.passwordHash, 'unchanged after a failed CAS')

    assert.equal(await store.replacePasswordHash(user.id, user.passwordHash, '$argon2id$next', NOW + 2), true)
    const after = await store.findUserById(user.id)
    assert.equal(after?.passwordHash, '$argon2id$next')
    assert.equal(after?.updatedAt, NOW + 2)
    assert.equal(after?.createdAt, NOW)

    // The old hash is no longer current: a second upgrade racing the first loses.
    assert.equal(await store.replacePasswordHash(user.id, user.passwordHash, '$argon2id$other', NOW + 3), false)
    assert.equal((await store.findUserById(user.id))?.passwordHash, '$argon2id$next')
    // Unknown user: nothing to replace.
    assert.equal(await store.replacePasswordHash(user.id + 100, '$argon2id$next', 'x', NOW), false)
  })

  test(`${kind}: user ids are never reused, even after the last row is deleted (contract §1: ids never reused)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    const a = await store.createUser(newUser('alice'))
    const b = await store.createUser(newUser('bob'))
    assert.ok(a !== undefined && b !== undefined)
    assert.ok(b.id > a.id)
    // The Store port has no delete yet; an operator deleting rows by hand is the case to survive.
    await store.db.deleteFrom('users').where('id', '=', b.id).execute()
    const c = await store.createUser(newUser('carol'))
    assert.ok(c !== undefined)
    assert.ok(c.id > b.id, `new id ${c.id} must be above the deleted ${b.id}`)
    // Same after deleting every row.
    await store.db.deleteFrom('users').execute()
    const d = await store.createUser(newUser('dave'))
    assert.ok(d !== undefined && d.id > c.id, `new id ${d?.id} must be above ${c.id}`)
    // A failed insert (taken name) may consume a sequence value but never hands out an old id.
    assert.equal(await store.createUser(newUser('DAVE')), undefined)
    const e = await store.createUser(newUser('erin'))
    assert.ok(e !== undefined && e.id > d.id)
  })

  test(`${kind}: signing keys insert and list, ordered by activation then kid (keyring storage)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const { store } = fresh
    assert.deepEqual(await store.listSigningKeys(), [])
    const k2 = signingKey('kid-b', NOW + 1000)
    const k1 = signingKey('kid-z', NOW)
    const k3 = signingKey('kid-a', NOW + 1000, NOW + 5000)
    await store.insertSigningKey(k2)
    await store.insertSigningKey(k1)
    await store.insertSigningKey(k3)
    assert.deepEqual(await store.listSigningKeys(), [k1, k3, k2])
    // kid is the primary key: a second insert with the same kid fails.
    await assert.rejects(store.insertSigningKey(signingKey('kid-b', NOW + 2000)))
    // Another connection sees the same keys (instances share the keyring through the database).
    assert.deepEqual(await fresh.openAnother().listSigningKeys(), [k1, k3, k2])
  })

  test(`${kind}: ping resolves on a reachable database (GET /readyz)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    await fresh.store.ping()
  })

  test(`${kind}: migrate on an up-to-date database is a no-op (Kysely Migrator)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const user = await fresh.store.createUser(newUser('miguel'))
    assert.deepEqual(await fresh.store.migrate(), [])
    assert.deepEqual(await fresh.openAnother().migrate(), [])
    assert.equal((await fresh.store.findUserById(user!.id))?.username, 'miguel', 'data survives')
  })
}

test('postgres: migrate in ?schema=A works while schema B of the same database already has Kysely migration tables (DATABASE_URL ?schema)', async (t) => {
  const a = await freshStore(t, 'postgres')
  if (a === undefined) return
  // A is migrated; B starts empty. Kysely's migrator, unless told the schema, finds A's
  // kysely_migration tables through introspection and then fails to query them through B's search_path.
  const b = await freshStore(t, 'postgres', { migrate: false })
  assert.ok(b !== undefined)
  const outcomes = await b.store.migrate()
  assert.ok(outcomes.length > 0 && outcomes.every((o) => o.status === 'Success'), JSON.stringify(outcomes))
  assert.ok((await b.store.createUser(newUser('miguel'))) !== undefined)
  assert.equal(await a.store.findUserByCanonicalName('miguel'), undefined, 'schemas do not share tables')
})
