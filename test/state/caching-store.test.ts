/**
 * CachingStore + ChangeFeed (src/state/, README "Performance and caches") over a real SQLite file.
 * Two "instances" are two createStore calls on one database file, each with its own feed and cache.
 * The feeds never poll by themselves here (pollMs 60 s): the tests call `feed.poll()`, so "before the
 * poll" and "after the poll" are exact. Caching is proven by changing rows behind the cache's back
 * with raw SQL (through `KyselyStore.db`) and seeing the old value until a change event.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { type Clock, systemClock } from '../../src/clock.ts'
import { CachingStore, type CacheLimits, DEFAULT_CACHE_LIMITS } from '../../src/state/caching-store.ts'
import { ChangeFeed } from '../../src/state/feed.ts'
import { KyselyStore } from '../../src/store/kysely-store.ts'
import type { OAuthClient, RevocationState, StateChange, User } from '../../src/store/store.ts'
import { freshStore, type FreshStore } from '../helpers/fresh-store.ts'
import { manualClock } from '../http/support.ts'

const NEVER_BY_ITSELF = 60_000

interface Instance {
  readonly inner: KyselyStore
  readonly feed: ChangeFeed
  readonly cache: CachingStore
  readonly errors: unknown[]
}

async function database(t: TestContext): Promise<FreshStore> {
  const fresh = await freshStore(t, 'sqlite')
  assert.ok(fresh !== undefined, 'SQLite is always available')
  return fresh
}

async function instance(
  t: TestContext,
  inner: KyselyStore,
  options: { clock?: Clock; staleMs?: number; limits?: CacheLimits } = {},
): Promise<Instance> {
  const errors: unknown[] = []
  const feed = new ChangeFeed(inner, options.clock ?? systemClock, {
    pollMs: NEVER_BY_ITSELF,
    staleMs: options.staleMs ?? NEVER_BY_ITSELF,
    onError: (error) => errors.push(error),
  })
  const cache = new CachingStore(inner, feed, options.limits ?? DEFAULT_CACHE_LIMITS)
  await feed.start()
  t.after(() => feed.stop())
  return { inner, feed, cache, errors }
}

/** Two instances on one database file. */
async function twoInstances(t: TestContext): Promise<readonly [Instance, Instance]> {
  const fresh = await database(t)
  return [await instance(t, fresh.store), await instance(t, fresh.openAnother())]
}

async function createUser(store: KyselyStore | CachingStore, name: string): Promise<User> {
  const user = await store.createUser({ username: name, usernameCanonical: name, passwordHash: '$argon2id$not-a-real-hash', now: Date.now() })
  assert.ok(user !== undefined, `created ${name}`)
  return user
}

function client(id: string): OAuthClient {
  return { clientId: id, name: `client ${id}`, secretHash: 'ab'.repeat(32), scopes: ['read'], grantTypes: ['client_credentials'], createdAt: Date.now() }
}

/** Changes a user's row behind every cache (no change-log row), as an operator with psql would. */
async function editBehindTheBack(store: KyselyStore, id: number, set: { status?: string; roles?: string }): Promise<void> {
  await store.db.updateTable('users').set(set).where('id', '=', id).execute()
}

/** Appends a change-log row by hand: what any other writer (an instance, the CLI) does with its change. */
async function appendChange(store: KyselyStore, change: Pick<StateChange, 'kind' | 'ref'>): Promise<void> {
  await store.db.insertInto('state_changes').values({ at: Date.now(), kind: change.kind, ref: change.ref }).execute()
}

const NOT_REVOKED: RevocationState = { jtiRevoked: false, familyRevoked: false }

test('two instances: a user change written through instance 1 is invisible to instance 2\'s cache until its feed polls, then visible', async (t) => {
  const [one, two] = await twoInstances(t)
  const user = await createUser(one.cache, 'ada')
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active')
  assert.equal((await two.cache.findUserById(user.id))?.status, 'active')
  assert.equal((await two.cache.findUserByCanonicalName('ada'))?.status, 'active')

  const mark = Math.floor(Date.now() / 1000) + 1
  await one.cache.updateUser(user.id, { status: 'disabled', roles: ['admin'], revokeTokensBefore: mark }, Date.now())

  // the writing instance applies its own write at once
  assert.equal((await one.cache.findUserById(user.id))?.status, 'disabled')
  // the other one still answers from memory: the change reaches it with its next read of the log
  assert.equal((await two.cache.findUserById(user.id))?.status, 'active')
  assert.equal((await two.cache.findUserByCanonicalName('ada'))?.status, 'active')

  await two.feed.poll()
  const after = await two.cache.findUserById(user.id)
  assert.equal(after?.status, 'disabled')
  assert.deepEqual(after?.roles, ['admin'])
  assert.equal(after?.tokensValidAfter, mark)
  assert.equal((await two.cache.findUserByCanonicalName('ada'))?.status, 'disabled', 'the by-name path sees it too')
})

test('two instances: a password change, a revoke-all and a deletion on instance 1 each reach instance 2 at its next poll', async (t) => {
  const [one, two] = await twoInstances(t)
  const user = await createUser(one.cache, 'grace')
  const steps: ReadonlyArray<readonly [string, () => Promise<unknown>, (u: User | undefined) => void]> = [
    ['password hash replaced', () => one.cache.replacePasswordHash(user.id, user.passwordHash, '$argon2id$next', Date.now()), (u) => assert.equal(u?.passwordHash, '$argon2id$next')],
    ['revoke-all', () => one.cache.revokeAllForUser(user.id, 2_000_000_000, Date.now()), (u) => assert.equal(u?.tokensValidAfter, 2_000_000_000)],
    ['deleted', () => one.cache.deleteUser(user.id), (u) => assert.equal(u, undefined)],
  ]
  for (const [what, write, check] of steps) {
    const before = await two.cache.findUserById(user.id)
    await write()
    assert.deepEqual(await two.cache.findUserById(user.id), before, `${what}: not yet seen before the poll`)
    await two.feed.poll()
    check(await two.cache.findUserById(user.id))
    check(await two.cache.findUserByCanonicalName('grace'))
  }
})

test('two instances: a jti and a refresh family revoked on instance 1 are seen revoked on instance 2 after its poll (RFC 7009 §2.1)', async (t) => {
  const [one, two] = await twoInstances(t)
  const user = await createUser(one.cache, 'alan')
  const now = Date.now()
  const family = randomUUID()
  await one.cache.createRefreshFamily({
    family: { id: family, userId: user.id, clientId: null, scope: null, authTime: Math.floor(now / 1000), createdAt: now, expiresAt: now + 3_600_000 },
    tokenHash: 'cd'.repeat(32),
    idleExpiresAt: now + 3_600_000,
  })
  const jti = randomUUID()
  assert.deepEqual(await two.cache.revocationState(jti, family), NOT_REVOKED)
  assert.deepEqual(await one.cache.revocationState(jti, family), NOT_REVOKED)

  await one.cache.revokeJti(jti, String(user.id), Math.floor(now / 1000) + 600, now)
  assert.deepEqual(await one.cache.revocationState(jti, family), { jtiRevoked: true, familyRevoked: false }, 'at once on the writer')
  assert.deepEqual(await two.cache.revocationState(jti, family), NOT_REVOKED, 'instance 2 before its poll')
  await two.feed.poll()
  assert.deepEqual(await two.cache.revocationState(jti, family), { jtiRevoked: true, familyRevoked: false })

  const other = randomUUID()
  assert.deepEqual(await two.cache.revocationState(other, family), { jtiRevoked: false, familyRevoked: false })
  await one.cache.revokeRefreshFamily(family, 'logout', Date.now())
  assert.deepEqual(await one.cache.revocationState(other, family), { jtiRevoked: false, familyRevoked: true }, 'at once on the writer')
  assert.deepEqual(await two.cache.revocationState(other, family), { jtiRevoked: false, familyRevoked: false }, 'instance 2 before its poll')
  await two.feed.poll()
  assert.deepEqual(await two.cache.revocationState(other, family), { jtiRevoked: false, familyRevoked: true })
})

test('two instances: a client deleted on instance 1 is gone on instance 2 after its poll', async (t) => {
  const [one, two] = await twoInstances(t)
  await one.cache.createClient(client('svc'))
  assert.equal((await two.cache.findClient('svc'))?.clientId, 'svc')
  assert.equal(await one.cache.deleteClient('svc'), true)
  assert.equal(await one.cache.findClient('svc'), undefined, 'at once on the writer')
  assert.equal((await two.cache.findClient('svc'))?.clientId, 'svc', 'instance 2 before its poll')
  await two.feed.poll()
  assert.equal(await two.cache.findClient('svc'), undefined)
})

test('reads are cached: a row changed by hand in SQL keeps its old value until a change event names it', async (t) => {
  const fresh = await database(t)
  const one = await instance(t, fresh.store)
  const user = await createUser(one.cache, 'edsger')
  const bystander = await createUser(one.cache, 'barbara')
  assert.deepEqual((await one.cache.findUserById(user.id))?.roles, [])
  assert.deepEqual((await one.cache.findUserByCanonicalName('edsger'))?.roles, [])
  assert.deepEqual((await one.cache.findUserByCanonicalName('barbara'))?.roles, [])

  await editBehindTheBack(fresh.store, user.id, { roles: 'admin' })
  await editBehindTheBack(fresh.store, bystander.id, { roles: 'admin' })
  assert.deepEqual((await one.cache.findUserById(user.id))?.roles, [], 'served from memory')
  assert.deepEqual((await one.cache.findUserByCanonicalName('edsger'))?.roles, [], 'served from memory by name')
  await one.feed.poll()
  assert.deepEqual((await one.cache.findUserById(user.id))?.roles, [], 'a poll with nothing in the log changes nothing')

  // the event path: a change-log row for this user (what the CLI or another instance appends)
  await appendChange(fresh.store, { kind: 'user', ref: String(user.id) })
  assert.deepEqual((await one.cache.findUserById(user.id))?.roles, [], 'still old before the poll')
  await one.feed.poll()
  assert.deepEqual((await one.cache.findUserById(user.id))?.roles, ['admin'])
  assert.deepEqual((await one.cache.findUserByCanonicalName('edsger'))?.roles, ['admin'])
  // an event names one user: the other cached user is kept
  assert.deepEqual((await one.cache.findUserByCanonicalName('barbara'))?.roles, [], 'another user\'s entry is untouched')

  // revocations: a denylist row inserted by hand is not seen until a 'jti' event for it
  const jti = randomUUID()
  assert.deepEqual(await one.cache.revocationState(jti, undefined), NOT_REVOKED)
  await fresh.store.db.insertInto('revoked_tokens').values({ jti, subject: String(user.id), expires_at: Date.now() + 600_000, revoked_at: Date.now() }).execute()
  assert.deepEqual(await one.cache.revocationState(jti, undefined), NOT_REVOKED, 'served from memory')
  await appendChange(fresh.store, { kind: 'jti', ref: jti })
  await one.feed.poll()
  assert.deepEqual(await one.cache.revocationState(jti, undefined), { jtiRevoked: true, familyRevoked: false })
})

test('reads are cached at most maxAgeMs: a row edited by hand is read again once its entry is older than that', async (t) => {
  const fresh = await database(t)
  const one = await instance(t, fresh.store, { limits: { ...DEFAULT_CACHE_LIMITS, maxAgeMs: 100 } })
  const user = await createUser(one.cache, 'donald')
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active')
  await editBehindTheBack(fresh.store, user.id, { status: 'disabled' })
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active', 'served from memory')
  await delay(150)
  assert.equal((await one.cache.findUserById(user.id))?.status, 'disabled', 'read again after maxAgeMs')
})

/** The real store, with reads that can be held after they loaded (to interleave an invalidation). */
class HeldReads extends KyselyStore {
  #gate: Promise<void> | undefined
  #loaded: (() => void) | undefined

  constructor(base: KyselyStore) {
    super(base.db, base.dialect)
  }

  /** Holds the next reads after they have their value; resolves `loaded` once one has it. */
  hold(): { loaded: Promise<void>; release: () => void } {
    let release = () => {}
    this.#gate = new Promise<void>((resolve) => {
      release = () => {
        this.#gate = undefined
        resolve()
      }
    })
    const loaded = new Promise<void>((resolve) => {
      this.#loaded = resolve
    })
    return { loaded, release }
  }

  async #held<T>(value: T): Promise<T> {
    const gate = this.#gate
    if (gate === undefined) return value
    this.#loaded?.()
    await gate
    return value
  }

  override async findUserById(id: number): Promise<User | undefined> {
    return this.#held(await super.findUserById(id))
  }

  override async revocationState(jti: string, familyId: string | undefined): Promise<RevocationState> {
    return this.#held(await super.revocationState(jti, familyId))
  }
}

test('generation check: a read that loaded before an invalidation is not cached (neither a feed event nor this instance\'s own write)', async (t) => {
  const fresh = await database(t)
  const one = await instance(t, fresh.store)
  const held = new HeldReads(fresh.openAnother())
  const two = await instance(t, held)

  const cases: ReadonlyArray<readonly [string, (id: number) => Promise<void>]> = [
    [
      'invalidated by a feed event (write on instance 1)',
      async (id) => {
        await one.cache.updateUser(id, { status: 'disabled' }, Date.now())
        await two.feed.poll()
      },
    ],
    [
      'invalidated by a write on this instance',
      async (id) => {
        await two.cache.updateUser(id, { status: 'disabled' }, Date.now())
      },
    ],
  ]
  for (const [what, invalidate] of cases) {
    const user = await createUser(one.cache, `u${randomUUID().slice(0, 8)}`)
    const { loaded, release } = held.hold()
    const racing = two.cache.findUserById(user.id)
    await loaded // the read has the old row ('active') in hand
    await invalidate(user.id)
    release()
    assert.equal((await racing)?.status, 'active', `${what}: the racing read returns what it loaded`)
    assert.equal((await two.cache.findUserById(user.id))?.status, 'disabled', `${what}: but did not cache it`)
  }

  // the same for revocation state: a "not revoked" loaded before the revocation is not kept
  const jti = randomUUID()
  const { loaded, release } = held.hold()
  const racing = two.cache.revocationState(jti, undefined)
  await loaded
  await one.cache.revokeJti(jti, '1', Math.floor(Date.now() / 1000) + 600, Date.now())
  await two.feed.poll()
  release()
  assert.deepEqual(await racing, NOT_REVOKED)
  assert.deepEqual(await two.cache.revocationState(jti, undefined), { jtiRevoked: true, familyRevoked: false }, 'the stale "not revoked" was not cached')
})

test('feed not fresh (no successful read for staleMs): every read goes to the database, and nothing read meanwhile is cached', async (t) => {
  const fresh = await database(t)
  const clock = manualClock()
  const one = await instance(t, fresh.store, { clock, staleMs: 50 })
  const user = await createUser(one.cache, 'barbara')
  const jti = randomUUID()
  assert.equal(one.feed.fresh(), true)
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active')
  assert.deepEqual(await one.cache.revocationState(jti, undefined), NOT_REVOKED)
  await editBehindTheBack(fresh.store, user.id, { status: 'disabled' })
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active', 'fresh feed: served from memory')

  clock.advance(0.05) // staleMs without a read of the log
  assert.equal(one.feed.fresh(), false)
  assert.equal((await one.cache.findUserById(user.id))?.status, 'disabled', 'stale feed: the cached entry is not trusted')
  assert.equal((await one.cache.findUserByCanonicalName('barbara'))?.status, 'disabled')
  await fresh.store.db.insertInto('revoked_tokens').values({ jti, subject: String(user.id), expires_at: Date.now() + 600_000, revoked_at: Date.now() }).execute()
  assert.deepEqual(await one.cache.revocationState(jti, undefined), { jtiRevoked: true, familyRevoked: false }, 'stale feed: the cached "not revoked" is not trusted')
  for (const status of ['active', 'disabled', 'pending']) {
    await editBehindTheBack(fresh.store, user.id, { status })
    assert.equal((await one.cache.findUserById(user.id))?.status, status, `stale feed: read from the database every time (${status})`)
  }

  // fresh again: the gap may have hidden changes, so everything cached before is dropped
  await editBehindTheBack(fresh.store, user.id, { status: 'active' })
  await one.feed.poll()
  assert.equal(one.feed.fresh(), true)
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active', 'after the gap: read again')
  await editBehindTheBack(fresh.store, user.id, { status: 'disabled' })
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active', 'caching resumes once fresh')
})

/** The real store whose change-log reads fail (the log's table locked, the database away). */
class UnreadableLog extends KyselyStore {
  failing = false

  constructor(base: KyselyStore) {
    super(base.db, base.dialect)
  }

  override async changesSince(afterId: number, limit: number): Promise<readonly StateChange[]> {
    if (this.failing) throw new Error('change log unreadable')
    return super.changesSince(afterId, limit)
  }
}

test('feed failing: once reads of the log have failed for staleMs, caches are bypassed (fail closed, never a stale "valid")', async (t) => {
  const fresh = await database(t)
  const clock = manualClock()
  const log = new UnreadableLog(fresh.store)
  const one = await instance(t, log, { clock, staleMs: 50 })
  const user = await createUser(one.cache, 'ken')
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active')

  log.failing = true
  await editBehindTheBack(fresh.store, user.id, { status: 'disabled' })
  await one.feed.poll()
  assert.equal(one.errors.length, 1, 'the failure was reported')
  clock.advance(0.02)
  assert.equal(one.feed.fresh(), true, 'within staleMs of the last good read')
  assert.equal((await one.cache.findUserById(user.id))?.status, 'active', 'still trusted within staleMs')
  clock.advance(0.03)
  await one.feed.poll()
  assert.equal(one.feed.fresh(), false)
  assert.equal((await one.cache.findUserById(user.id))?.status, 'disabled', 'bypassed: the database answers')

  log.failing = false
  await one.feed.poll()
  assert.equal(one.feed.fresh(), true)
  assert.equal((await one.cache.findUserById(user.id))?.status, 'disabled')
})

test('"no such user" is never cached: a user created after a miss is found at once (by name and by id), as is a new client', async (t) => {
  const fresh = await database(t)
  const other = fresh.openAnother() // another instance writing without any cache (no change-log row for creations)
  const one = await instance(t, fresh.store)
  const first = await createUser(one.cache, 'first')

  assert.equal(await one.cache.findUserByCanonicalName('ghost'), undefined)
  assert.equal(await one.cache.findUserById(first.id + 1), undefined)
  const ghost = await createUser(other, 'ghost')
  assert.equal(ghost.id, first.id + 1)
  assert.equal((await one.cache.findUserByCanonicalName('ghost'))?.id, ghost.id, 'found by name without a poll')
  assert.equal((await one.cache.findUserById(ghost.id))?.username, 'ghost', 'found by id without a poll')

  assert.equal(await one.cache.findClient('late'), undefined)
  await other.createClient(client('late'))
  assert.equal((await one.cache.findClient('late'))?.clientId, 'late', 'a new client is found without a poll')

  // a name freed by a deletion and taken again is the new user once the deletion is known
  await one.cache.findUserByCanonicalName('ghost')
  assert.equal(await other.deleteUser(ghost.id), true)
  await one.feed.poll()
  assert.equal(await one.cache.findUserByCanonicalName('ghost'), undefined)
  const again = await createUser(other, 'ghost')
  assert.equal((await one.cache.findUserByCanonicalName('ghost'))?.id, again.id, 'the new holder of the name, at once')
})

test('a peek reads the feed\'s clock once, for freshness and the entry\'s age alike', async (t) => {
  const fresh = await database(t)
  let reads = 0
  const counting: Clock = {
    now: () => {
      reads++
      return systemClock.now()
    },
  }
  const one = await instance(t, fresh.store, { clock: counting, staleMs: 60_000 })
  const user = await createUser(one.cache, 'huey')
  const family = randomUUID()
  await one.cache.findUserById(user.id)
  // an unknown family reads as gone (revoked): what matters here is the answer comes from memory
  const state = await one.cache.revocationState('jti-1', family)
  reads = 0
  assert.equal(one.cache.peekUser(user.id)?.id, user.id)
  assert.equal(reads, 1, 'peekUser')
  reads = 0
  assert.deepEqual(one.cache.peekRevocation('jti-1', family), state)
  assert.equal(reads, 1, 'peekRevocation, a jti and a family')
  // a request's peeks share one read of now(), as the Authenticator does
  reads = 0
  const now = one.cache.now()
  assert.equal(one.cache.peekUser(user.id, now)?.id, user.id)
  assert.deepEqual(one.cache.peekRevocation('jti-1', family, now), state)
  assert.equal(reads, 1, 'one read for both')
})

test('cached entries age by the feed\'s clock: past maxAgeMs by it, a peek no longer answers', async (t) => {
  const fresh = await database(t)
  const clock = manualClock()
  const one = await instance(t, fresh.store, { clock, staleMs: 60_000, limits: { ...DEFAULT_CACHE_LIMITS, maxAgeMs: 1_000 } })
  const user = await createUser(one.cache, 'dewey')
  await one.cache.findUserById(user.id)
  clock.advance(0.999)
  assert.equal(one.cache.peekUser(user.id)?.id, user.id)
  clock.advance(0.001)
  assert.equal(one.cache.peekUser(user.id), undefined)
})
