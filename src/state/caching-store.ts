/**
 * A Store that keeps the hot reads of the token path in memory (users, revocation state, clients),
 * so a request with a known token touches no database. Fresh by construction:
 * - a write through this store drops what it changed at once (this instance);
 * - the change feed drops what other instances and the CLI changed (within its poll interval);
 * - while the feed is not fresh, every read goes to the database (never a stale "valid");
 * - a read that raced an invalidation is not cached (generation check).
 * Only positive facts about existing rows are cached; "no such user" is always asked again.
 */
import type {
  AuditQuery,
  HolderGuard,
  MigrationOutcome,
  NewAuditEntry,
  NewInvite,
  NewRefreshFamily,
  NewUser,
  OAuthClient,
  RefreshRotation,
  RevocationState,
  SigningKey,
  StateChange,
  Store,
  User,
  UserChange,
  UserQuery,
} from '../store/store.ts'
import type { ChangeFeed } from './feed.ts'
import { BoundedMap } from './lru.ts'

export interface CacheLimits {
  readonly users: number
  readonly revocations: number
  readonly clients: number
  /**
   * Entries are read again after this long even without a change event: the bound for changes made
   * behind rest-auth's back (SQL by hand), which write no change-log row.
   */
  readonly maxAgeMs: number
}

export const DEFAULT_CACHE_LIMITS: CacheLimits = { users: 100_000, revocations: 200_000, clients: 10_000, maxAgeMs: 5_000 }

/**
 * What is known in memory right now, without I/O: undefined whenever it is not known, or the change
 * feed is not fresh (then the caller reads through the Store, which asks the database).
 */
export interface MemoryState {
  /** The time by memory's own clock: pass it to the peeks of one request (a clock read each saved). */
  now(): number
  peekUser(id: number, now?: number): User | undefined
  peekClient(clientId: string, now?: number): OAuthClient | undefined
  peekRevocation(jti: string, familyId: string | undefined, now?: number): RevocationState | undefined
}

/** Every RevocationState there is, indexed by jtiRevoked * 2 + familyRevoked. */
const REVOCATION_STATES: readonly RevocationState[] = [
  Object.freeze({ jtiRevoked: false, familyRevoked: false }),
  Object.freeze({ jtiRevoked: false, familyRevoked: true }),
  Object.freeze({ jtiRevoked: true, familyRevoked: false }),
  Object.freeze({ jtiRevoked: true, familyRevoked: true }),
]

export class CachingStore implements Store, MemoryState {
  readonly inner: Store
  readonly dialect: Store['dialect']
  readonly #feed: ChangeFeed
  readonly #users: BoundedMap<number, User>
  readonly #byName: BoundedMap<string, number>
  /** jti → revoked? */
  readonly #jtis: BoundedMap<string, boolean>
  /** family id → revoked (or gone)? */
  readonly #families: BoundedMap<string, boolean>
  readonly #clients: BoundedMap<string, OAuthClient>
  #generation = 0

  /** Told of every change made through this store (other workers of this server drop theirs at once). */
  readonly #onLocalChange: ((change: Pick<StateChange, 'kind' | 'ref'>) => void) | undefined

  constructor(
    inner: Store,
    feed: ChangeFeed,
    limits: CacheLimits = DEFAULT_CACHE_LIMITS,
    onLocalChange?: (change: Pick<StateChange, 'kind' | 'ref'>) => void,
  ) {
    this.inner = inner
    this.#onLocalChange = onLocalChange
    this.dialect = inner.dialect
    this.#feed = feed
    // entries age by the feed's clock, so a peek reads the time once for freshness and age alike
    const now = () => feed.now()
    this.#users = new BoundedMap(limits.users, limits.maxAgeMs, now)
    this.#byName = new BoundedMap(limits.users, limits.maxAgeMs, now)
    this.#jtis = new BoundedMap(limits.revocations, limits.maxAgeMs, now)
    this.#families = new BoundedMap(limits.revocations, limits.maxAgeMs, now)
    this.#clients = new BoundedMap(limits.clients, limits.maxAgeMs, now)
    feed.onChange((change) => this.invalidate(change))
    feed.onReset(() => this.clear())
  }

  /** Drops what a change affects. Public so a process can apply changes it hears of another way. */
  invalidate(change: Pick<StateChange, 'kind' | 'ref'>): void {
    this.#generation++
    switch (change.kind) {
      case 'user':
        this.#users.delete(Number(change.ref))
        // revoke-all and deletion end every refresh family of the user: which ones is not known here
        this.#families.clear()
        break
      case 'jti':
        this.#jtis.delete(change.ref)
        break
      case 'family':
        this.#families.delete(change.ref)
        break
      case 'client':
        this.#clients.delete(change.ref)
        // a deleted client takes its refresh families with it
        this.#families.clear()
        break
      case 'keys':
        break
    }
  }

  #local(change: Pick<StateChange, 'kind' | 'ref'>): void {
    this.invalidate(change)
    this.#onLocalChange?.(change)
  }

  clear(): void {
    this.#generation++
    this.#users.clear()
    this.#byName.clear()
    this.#jtis.clear()
    this.#families.clear()
    this.#clients.clear()
  }

  /** Reads through the cache only while the feed is fresh; caches only if nothing changed meanwhile. */
  async #read<T>(cached: T | undefined, load: () => Promise<T>, keep: (value: T) => void): Promise<T> {
    if (!this.#feed.fresh()) return load()
    if (cached !== undefined) return cached
    const generation = this.#generation
    const value = await load()
    if (generation === this.#generation && this.#feed.fresh()) keep(value)
    return value
  }

  // ---- what memory knows (the synchronous fast path of a request with a known token) ----

  now(): number {
    return this.#feed.now()
  }

  // At most one clock read per peek, for freshness and the entries' age alike (a read is a call into
  // V8's runtime); none when the caller passes the time it read from `now()` for an earlier peek.
  peekUser(id: number, now = this.#feed.now()): User | undefined {
    return this.#feed.fresh(now) ? this.#users.get(id, now) : undefined
  }

  peekClient(clientId: string, now = this.#feed.now()): OAuthClient | undefined {
    return this.#feed.fresh(now) ? this.#clients.get(clientId, now) : undefined
  }

  peekRevocation(jti: string, familyId: string | undefined, now = this.#feed.now()): RevocationState | undefined {
    if (!this.#feed.fresh(now)) return undefined
    const jtiRevoked = this.#jtis.get(jti, now)
    const familyRevoked = familyId === undefined ? false : this.#families.get(familyId, now)
    if (jtiRevoked === undefined || familyRevoked === undefined) return undefined
    // one of four shared answers: no object made per request on the token path
    return REVOCATION_STATES[(jtiRevoked ? 2 : 0) + (familyRevoked ? 1 : 0)]
  }

  // ---- cached reads ----

  findUserById(id: number): Promise<User | undefined> {
    return this.#read(this.#users.get(id), () => this.inner.findUserById(id), (user) => {
      if (user !== undefined) this.#users.set(id, user)
    })
  }

  findUserByCanonicalName(canonical: string): Promise<User | undefined> {
    const id = this.#byName.get(canonical)
    const cached = id === undefined ? undefined : this.#users.get(id)
    // a renamed or deleted user is caught by the canonical-name check below
    return this.#read(
      cached?.usernameCanonical === canonical ? cached : undefined,
      () => this.inner.findUserByCanonicalName(canonical),
      (user) => {
        if (user === undefined) return
        this.#users.set(user.id, user)
        this.#byName.set(canonical, user.id)
      },
    )
  }

  async revocationState(jti: string, familyId: string | undefined): Promise<RevocationState> {
    const jtiRevoked = this.#jtis.get(jti)
    const familyRevoked = familyId === undefined ? false : this.#families.get(familyId)
    const cached = jtiRevoked === undefined || familyRevoked === undefined ? undefined : { jtiRevoked, familyRevoked }
    return this.#read(cached, () => this.inner.revocationState(jti, familyId), (state) => {
      this.#jtis.set(jti, state.jtiRevoked)
      if (familyId !== undefined) this.#families.set(familyId, state.familyRevoked)
    })
  }

  findClient(clientId: string): Promise<OAuthClient | undefined> {
    return this.#read(this.#clients.get(clientId), () => this.inner.findClient(clientId), (client) => {
      if (client !== undefined) this.#clients.set(clientId, client)
    })
  }

  // ---- writes: through, then drop what changed on this instance at once ----

  async updateUser(id: number, change: UserChange, now: number, guard?: HolderGuard): Promise<User | undefined> {
    try {
      return await this.inner.updateUser(id, change, now, guard)
    } finally {
      this.#local({ kind: 'user', ref: String(id) })
    }
  }

  async deleteUser(id: number, guard?: HolderGuard): Promise<boolean> {
    try {
      return await this.inner.deleteUser(id, guard)
    } finally {
      this.#local({ kind: 'user', ref: String(id) })
    }
  }

  async replacePasswordHash(id: number, expected: string, next: string, now: number): Promise<boolean> {
    try {
      return await this.inner.replacePasswordHash(id, expected, next, now)
    } finally {
      this.#local({ kind: 'user', ref: String(id) })
    }
  }

  async revokeJti(jti: string, subject: string, expiresAt: number, now: number): Promise<void> {
    try {
      await this.inner.revokeJti(jti, subject, expiresAt, now)
    } finally {
      this.#local({ kind: 'jti', ref: jti })
    }
  }

  async revokeAllForUser(userId: number, validAfter: number, now: number): Promise<void> {
    try {
      await this.inner.revokeAllForUser(userId, validAfter, now)
    } finally {
      this.#local({ kind: 'user', ref: String(userId) })
    }
  }

  async revokeRefreshFamily(familyId: string, reason: string, now: number): Promise<void> {
    try {
      await this.inner.revokeRefreshFamily(familyId, reason, now)
    } finally {
      this.#local({ kind: 'family', ref: familyId })
    }
  }

  async rotateRefreshToken(rotation: RefreshRotation) {
    const outcome = await this.inner.rotateRefreshToken(rotation)
    // reuse revokes the family
    if (outcome.kind === 'refused' && outcome.reason === 'reuse' && outcome.family !== undefined) {
      this.#local({ kind: 'family', ref: outcome.family.id })
    }
    return outcome
  }

  async deleteClient(clientId: string): Promise<boolean> {
    try {
      return await this.inner.deleteClient(clientId)
    } finally {
      this.#local({ kind: 'client', ref: clientId })
    }
  }

  // ---- everything else: straight through ----

  migrate(): Promise<readonly MigrationOutcome[]> {
    return this.inner.migrate()
  }
  ping(): Promise<void> {
    return this.inner.ping()
  }
  createUser(user: NewUser): Promise<User | undefined> {
    return this.inner.createUser(user)
  }
  listUsers(query: UserQuery) {
    return this.inner.listUsers(query)
  }
  countActiveWithRole(role: string): Promise<number> {
    return this.inner.countActiveWithRole(role)
  }
  createUserWithInvite(user: NewUser, inviteCodeHash: string) {
    return this.inner.createUserWithInvite(user, inviteCodeHash)
  }
  createInvite(invite: NewInvite): Promise<void> {
    return this.inner.createInvite(invite)
  }
  findInviteByCodeHash(codeHash: string) {
    return this.inner.findInviteByCodeHash(codeHash)
  }
  listInvites(includeSpent: boolean, now: number) {
    return this.inner.listInvites(includeSpent, now)
  }
  revokeInvite(id: string, now: number): Promise<boolean> {
    return this.inner.revokeInvite(id, now)
  }
  appendAudit(entries: readonly NewAuditEntry[]): Promise<void> {
    return this.inner.appendAudit(entries)
  }
  queryAudit(query: AuditQuery) {
    return this.inner.queryAudit(query)
  }
  listSigningKeys(): Promise<readonly SigningKey[]> {
    return this.inner.listSigningKeys()
  }
  insertSigningKey(key: SigningKey): Promise<void> {
    return this.inner.insertSigningKey(key)
  }
  updateSigningKey(kid: string, times: { activatesAt?: number; retiresAt?: number | null }): Promise<void> {
    return this.inner.updateSigningKey(kid, times)
  }
  deleteSigningKey(kid: string): Promise<void> {
    return this.inner.deleteSigningKey(kid)
  }
  serverSecret(name: string, create: () => string, now: number): Promise<string> {
    return this.inner.serverSecret(name, create, now)
  }
  purgeExpired(now: number, auditBefore?: number): Promise<number> {
    return this.inner.purgeExpired(now, auditBefore)
  }
  createClient(client: OAuthClient): Promise<void> {
    return this.inner.createClient(client)
  }
  listClients() {
    return this.inner.listClients()
  }
  createRefreshFamily(input: NewRefreshFamily): Promise<void> {
    return this.inner.createRefreshFamily(input)
  }
  findRefreshToken(tokenHash: string) {
    return this.inner.findRefreshToken(tokenHash)
  }
  changesSince(afterId: number, limit: number) {
    return this.inner.changesSince(afterId, limit)
  }
  latestChangeId(): Promise<number> {
    return this.inner.latestChangeId()
  }
  close(): Promise<void> {
    return this.inner.close()
  }
}
