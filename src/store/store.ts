/** The storage port the application sees. One implementation (Kysely) over two dialects. */

export interface User {
  readonly id: number
  readonly username: string
  readonly usernameCanonical: string
  readonly passwordHash: string
  readonly createdAt: number
  readonly updatedAt: number
  /** Seconds since the epoch: access tokens with an earlier `iat` are revoked. 0 = none. */
  readonly tokensValidAfter: number
  readonly status: UserStatus
  /** Sorted, unique role names. */
  readonly roles: readonly string[]
}

export type UserStatus = 'active' | 'pending' | 'disabled'
export const USER_STATUSES: readonly UserStatus[] = ['active', 'pending', 'disabled']

export interface NewUser {
  readonly username: string
  readonly usernameCanonical: string
  readonly passwordHash: string
  readonly now: number
  /** Default 'active'. */
  readonly status?: UserStatus
  readonly roles?: readonly string[]
}

export interface UserQuery {
  /** Substring of the canonical username. */
  readonly search?: string
  readonly status?: UserStatus
  readonly role?: string
  /** Keyset pagination: ids greater than this. */
  readonly afterId?: number
  readonly limit: number
}

/**
 * Options of a write that may take a role from its last active holder: with `keepActiveWithRole`, the
 * write is refused (LastHolderError, nothing written) when afterwards no active user holds that role.
 * The check and the write are one transaction, serialized against every other such write, so two admins
 * demoting each other at the same instant cannot both succeed.
 */
export interface HolderGuard {
  readonly keepActiveWithRole?: string
}

export class LastHolderError extends Error {
  readonly role: string
  constructor(role: string) {
    super(`the change would leave no active user with the role ${role}`)
    this.name = 'LastHolderError'
    this.role = role
  }
}

export interface UserChange {
  readonly status?: UserStatus
  readonly roles?: readonly string[]
  readonly passwordHash?: string
  /** Seconds: raise "tokens valid after" to this (revokes older tokens and every refresh family). */
  readonly revokeTokensBefore?: number
}

export interface Invite {
  readonly id: string
  readonly username: string | null
  readonly usernameCanonical: string | null
  readonly roles: readonly string[]
  readonly createdBy: string
  readonly createdAt: number
  readonly expiresAt: number
  readonly usedAt: number | null
  readonly usedBy: number | null
  readonly revokedAt: number | null
}

export interface NewInvite extends Omit<Invite, 'usedAt' | 'usedBy' | 'revokedAt'> {
  readonly codeHash: string
}

export interface AuditEntry {
  readonly id: number
  readonly at: number
  readonly event: string
  readonly outcome: 'success' | 'failure'
  readonly actorId: number | null
  readonly actor: string
  readonly subjectId: number | null
  readonly subject: string | null
  readonly ip: string | null
  readonly detail: Readonly<Record<string, string | number | boolean | null>>
}

export type NewAuditEntry = Omit<AuditEntry, 'id'>

export interface AuditQuery {
  readonly event?: string
  readonly outcome?: 'success' | 'failure'
  /** Entries where this user is the actor or the subject. */
  readonly userId?: number
  readonly since?: number
  readonly until?: number
  /** Keyset pagination, newest first: ids lower than this. */
  readonly beforeId?: number
  readonly limit: number
}

export interface SigningKey {
  readonly kid: string
  readonly alg: string
  readonly publicJwk: string
  readonly privateJwk: string
  readonly createdAt: number
  readonly activatesAt: number
  readonly retiresAt: number | null
}

export interface MigrationOutcome {
  readonly migrationName: string
  readonly status: 'Success' | 'Error' | 'NotExecuted'
}

export interface OAuthClient {
  readonly clientId: string
  readonly name: string
  /** SHA-256 (hex) of the secret. */
  readonly secretHash: string
  readonly scopes: readonly string[]
  readonly grantTypes: readonly string[]
  readonly createdAt: number
}

export interface RefreshFamily {
  readonly id: string
  readonly userId: number
  readonly clientId: string | null
  readonly scope: string | null
  /** Seconds: when the password was presented. */
  readonly authTime: number
  readonly createdAt: number
  readonly expiresAt: number
  readonly revokedAt: number | null
}

export interface NewRefreshFamily {
  readonly family: Omit<RefreshFamily, 'revokedAt'>
  readonly tokenHash: string
  readonly idleExpiresAt: number
}

export interface RefreshRowState {
  readonly rotatedAt: number | null
  readonly idleExpiresAt: number
}

export type RefreshDecision =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'wrong_client' }
  | { readonly kind: 'revoked' }
  | { readonly kind: 'expired' }
  | { readonly kind: 'rotate' }
  | { readonly kind: 'grace' }
  | { readonly kind: 'reuse' }

export interface RefreshRotation {
  /** The token the client presented (kept in memory only). */
  readonly presented: string
  readonly now: number
  /** Idle lifetime given to a successor (ms). */
  readonly idleMs: number
  /** The policy (pure, in tokens/refresh.ts); the store only applies its decision. */
  readonly decide: (row: RefreshRowState | undefined, family: RefreshFamily | undefined) => RefreshDecision
  readonly hash: (token: string) => string
  readonly successor: (token: string) => string
}

export type RefreshOutcome =
  | { readonly kind: 'issued'; readonly token: string; readonly family: RefreshFamily; readonly rotated: boolean }
  | { readonly kind: 'refused'; readonly reason: 'unknown' | 'wrong_client' | 'revoked' | 'expired' | 'reuse'; readonly family?: RefreshFamily }

export interface RefreshLookup {
  readonly family: RefreshFamily
  readonly rotatedAt: number | null
  readonly idleExpiresAt: number
}

export interface RevocationState {
  readonly jtiRevoked: boolean
  readonly familyRevoked: boolean
}

export type StoreDialect = 'sqlite' | 'postgres'

/** What changed in authentication state (the change log every instance reads). */
export type StateChangeKind = 'user' | 'jti' | 'family' | 'keys' | 'client'

export interface StateChange {
  readonly id: number
  readonly kind: StateChangeKind
  /** The user id, jti, family id or client id; '' for keys. */
  readonly ref: string
}

export interface Store {
  readonly dialect: StoreDialect
  /** Brings the schema to the latest version. Throws (after reporting each step) on failure. */
  migrate(): Promise<readonly MigrationOutcome[]>
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>
  /** Inserts the user unless the canonical username is taken; `undefined` means taken. Race-safe. */
  createUser(user: NewUser): Promise<User | undefined>
  findUserById(id: number): Promise<User | undefined>
  findUserByCanonicalName(canonical: string): Promise<User | undefined>
  /** Users in id order, filtered; at most `limit`. */
  listUsers(query: UserQuery): Promise<readonly User[]>
  /** Applies the change in one transaction; `undefined` when there is no such user. */
  updateUser(id: number, change: UserChange, now: number, guard?: HolderGuard): Promise<User | undefined>
  /** Deletes the user and its refresh tokens; the id is never reused. False when there was none. */
  deleteUser(id: number, guard?: HolderGuard): Promise<boolean>
  /** Active users holding `role`. */
  countActiveWithRole(role: string): Promise<number>
  /**
   * Creates the user and marks the invite used, in one transaction, only if the invite is still
   * unused, unrevoked and unexpired at `user.now`. `invite_unusable` or `taken` otherwise.
   */
  createUserWithInvite(user: NewUser, inviteCodeHash: string): Promise<User | 'invite_unusable' | 'taken'>

  // ---- invites ----
  createInvite(invite: NewInvite): Promise<void>
  findInviteByCodeHash(codeHash: string): Promise<Invite | undefined>
  listInvites(includeSpent: boolean, now: number): Promise<readonly Invite[]>
  /** False when there is no such invite or it was already used or revoked. */
  revokeInvite(id: string, now: number): Promise<boolean>

  // ---- audit log ----
  /** Appends the entries in one transaction. */
  appendAudit(entries: readonly NewAuditEntry[]): Promise<void>
  queryAudit(query: AuditQuery): Promise<readonly AuditEntry[]>

  /** Compare-and-set of the hash (rehash on login); false when the hash changed meanwhile. */
  replacePasswordHash(id: number, expected: string, next: string, now: number): Promise<boolean>
  listSigningKeys(): Promise<readonly SigningKey[]>
  insertSigningKey(key: SigningKey): Promise<void>
  /** Updates the times of an existing key (rotation). */
  updateSigningKey(kid: string, times: { activatesAt?: number; retiresAt?: number | null }): Promise<void>
  deleteSigningKey(kid: string): Promise<void>

  /** Returns the secret called `name`, creating it with `create()` on first use (race-safe). */
  serverSecret(name: string, create: () => string, now: number): Promise<string>

  // ---- revocation ----
  /** Denylists one access token by `jti` until `expiresAt` (ms: its `exp` plus the clock leeway). Idempotent. */
  revokeJti(jti: string, subject: string, expiresAt: number, now: number): Promise<void>
  revocationState(jti: string, familyId: string | undefined): Promise<RevocationState>
  /** Revokes every token of the user issued before `validAfter` (seconds) and all refresh families. */
  revokeAllForUser(userId: number, validAfter: number, now: number): Promise<void>
  /**
   * Drops denylist rows whose token has expired, refresh data past its end, change-log rows older
   * than an hour, and audit entries older than `auditBefore` (ms) when given. Returns rows removed.
   */
  purgeExpired(now: number, auditBefore?: number): Promise<number>

  // ---- OAuth clients ----
  createClient(client: OAuthClient): Promise<void>
  findClient(clientId: string): Promise<OAuthClient | undefined>
  listClients(): Promise<readonly OAuthClient[]>
  deleteClient(clientId: string): Promise<boolean>

  // ---- refresh tokens ----
  createRefreshFamily(input: NewRefreshFamily): Promise<void>
  /** Applies `decideRefresh` to the presented token in one transaction (row locks on PostgreSQL). */
  rotateRefreshToken(rotation: RefreshRotation): Promise<RefreshOutcome>
  findRefreshToken(tokenHash: string): Promise<RefreshLookup | undefined>
  revokeRefreshFamily(familyId: string, reason: string, now: number): Promise<void>

  // ---- change log ----
  /** Changes after `afterId`, oldest first, at most `limit`. */
  changesSince(afterId: number, limit: number): Promise<readonly StateChange[]>
  /** The id of the latest change (0 when none). */
  latestChangeId(): Promise<number>
  /**
   * Where the database can push: calls `onWake` soon after each committed change (PostgreSQL
   * LISTEN/NOTIFY), and `onState` when that stops or starts working. Absent: poll only (SQLite).
   */
  readonly watchChanges?: ((onWake: () => void, onState?: (listening: boolean, error?: unknown) => void) => { close(): Promise<void> }) | undefined
  close(): Promise<void>
}
