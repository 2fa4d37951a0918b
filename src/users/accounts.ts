/**
 * Account administration and self-service, shared by the admin API and the CLI: create, approve,
 * disable, enable, delete, set roles, set a password, revoke tokens, invites. Every action is
 * audited. Revocation uses the per-user "tokens valid after" mark, so it applies at once.
 */
import { type Actor, type AuditLog } from '../audit/audit.ts'
import { ADMIN_ROLE, parseRoles } from '../auth/roles.ts'
import { parseUsername } from '../auth/username.ts'
import type { Clock } from '../clock.ts'
import { RestAuthError } from '../errors.ts'
import type { PasswordHasher } from '../passwords/hash.ts'
import { checkPassword, type PasswordPolicyName } from '../passwords/policy.ts'
import { type HolderGuard, type Invite, LastHolderError, type Store, type User, type UserChange, type UserStatus } from '../store/store.ts'
import { hashInviteCode, newInviteCode, newInviteId } from './invites.ts'
import { taken } from './register.ts'
import { NO_RATE_LIMITS, type RateLimiter } from '../ratelimit/throttle.ts'

export interface AccountDeps {
  readonly store: Store
  readonly hasher: PasswordHasher
  readonly clock: Clock
  readonly audit: AuditLog
  readonly passwordPolicy: PasswordPolicyName
  /** Default invite lifetime (s). */
  readonly inviteTtl: number
  /** The login throttle also guards the current-password checks of self-service. */
  readonly rateLimiter?: RateLimiter
}

export interface CreateUserInput {
  readonly username: string
  readonly password: string
  readonly roles?: readonly string[]
  /** Default 'active'. */
  readonly status?: Exclude<UserStatus, 'disabled'>
}

export interface CreateInviteInput {
  /** Seconds; default `AUTH_INVITE_TTL`. */
  readonly expiresIn?: number
  readonly username?: string
  readonly roles?: readonly string[]
}

export const MAX_INVITE_TTL = 365 * 86_400

function notFound(): RestAuthError {
  return new RestAuthError('user_not_found', 'No user has this id.')
}

function subjectOf(user: User): { id: number; username: string } {
  return { id: user.id, username: user.username }
}

export class AccountService {
  readonly #d: AccountDeps

  constructor(deps: AccountDeps) {
    this.#d = deps
  }

  /** The next whole second: every token issued until now has an earlier `iat` (tokens carry seconds). */
  #revocationMark(): number {
    return Math.floor(this.#d.clock.now() / 1000) + 1
  }

  async get(id: number): Promise<User> {
    const user = await this.#d.store.findUserById(id)
    if (user === undefined) throw notFound()
    return user
  }

  /** By id (digits) or by username (any form that canonicalizes to it): what the CLI accepts. */
  async find(idOrName: string): Promise<User | undefined> {
    if (/^[1-9]\d{0,15}$/.test(idOrName)) {
      const byId = await this.#d.store.findUserById(Number(idOrName))
      if (byId !== undefined) return byId
    }
    try {
      return await this.#d.store.findUserByCanonicalName(parseUsername(idOrName).canonical)
    } catch {
      return undefined
    }
  }

  /** Admin creation: the password policy applies; the registration policy and allow-list do not. */
  async create(actor: Actor, input: CreateUserInput): Promise<User> {
    const name = parseUsername(input.username)
    const roles = input.roles === undefined ? [] : parseRoles([...input.roles])
    checkPassword(this.#d.passwordPolicy, input.password, { username: name.canonical })
    if ((await this.#d.store.findUserByCanonicalName(name.canonical)) !== undefined) throw taken()
    const passwordHash = await this.#d.hasher.hash(input.password)
    const user = await this.#d.store.createUser({
      username: name.display,
      usernameCanonical: name.canonical,
      passwordHash,
      now: this.#d.clock.now(),
      status: input.status ?? 'active',
      roles,
    })
    if (user === undefined) throw taken()
    await this.#d.audit.record({ event: 'user.created', actor, subject: subjectOf(user), detail: { status: user.status, roles: user.roles.join(' ') } })
    return user
  }

  /** pending → active. Approving an active user changes nothing; a disabled one needs `enable`. */
  async approve(actor: Actor, id: number): Promise<User> {
    const user = await this.get(id)
    if (user.status === 'disabled') {
      throw new RestAuthError('invalid_request', 'This user is disabled, not pending: enable it instead.')
    }
    if (user.status === 'active') return user
    return this.#change(actor, user, 'user.approved', { status: 'active' })
  }

  /** Disabling revokes every token and refresh token of the user at once. */
  async disable(actor: Actor, id: number): Promise<User> {
    const user = await this.get(id)
    const guard = await this.#guardLastAdmin(user, 'disable')
    return this.#change(actor, user, 'user.disabled', { status: 'disabled', revokeTokensBefore: this.#revocationMark() }, {}, guard)
  }

  async enable(actor: Actor, id: number): Promise<User> {
    const user = await this.get(id)
    if (user.status === 'active') return user
    return this.#change(actor, user, 'user.enabled', { status: 'active' })
  }

  /** Deletes the user; its tokens stop working (no user), its refresh tokens go with it; the id is never reused. */
  async delete(actor: Actor, id: number): Promise<void> {
    const user = await this.get(id)
    const guard = await this.#guardLastAdmin(user, 'delete')
    if (!(await this.#deleteUser(user.id, guard, 'delete'))) throw notFound()
    await this.#d.audit.record({ event: 'user.deleted', actor, subject: subjectOf(user) })
  }

  /** Sets the whole set of roles. Takes effect on the next request, also for tokens already issued. */
  async setRoles(actor: Actor, id: number, roles: unknown): Promise<User> {
    const next = parseRoles(roles)
    const user = await this.get(id)
    const guard = next.includes(ADMIN_ROLE) ? {} : await this.#guardLastAdmin(user, 'remove the admin role from')
    return this.#change(actor, user, 'user.roles_changed', { roles: next }, { from: user.roles.join(' '), to: next.join(' ') }, guard)
  }

  /** An administrator sets a new password: the policy applies, and every token of the user is revoked. */
  async setPassword(actor: Actor, id: number, password: string): Promise<User> {
    const user = await this.get(id)
    checkPassword(this.#d.passwordPolicy, password, { username: user.usernameCanonical })
    const passwordHash = await this.#d.hasher.hash(password)
    return this.#change(actor, user, 'user.password_set', { passwordHash, revokeTokensBefore: this.#revocationMark() })
  }

  async revokeTokens(actor: Actor, id: number): Promise<User> {
    const user = await this.get(id)
    return this.#change(actor, user, 'user.tokens_revoked', { revokeTokensBefore: this.#revocationMark() })
  }

  // ---- self-service ----

  /**
   * Changes one's own password: the current password is required, the new one meets the policy, and
   * every token of the user is revoked (the caller gets a fresh one from the HTTP layer).
   */
  async changeOwnPassword(actor: Actor, user: User, current: string, next: string): Promise<User> {
    await this.#proveCurrent(actor, user, current, 'user.password_changed', 'current_password')
    checkPassword(this.#d.passwordPolicy, next, { username: user.usernameCanonical })
    const passwordHash = await this.#d.hasher.hash(next)
    return this.#change(actor, user, 'user.password_changed', { passwordHash, revokeTokensBefore: this.#revocationMark() })
  }

  async deleteOwnAccount(actor: Actor, user: User, password: string): Promise<void> {
    await this.#proveCurrent(actor, user, password, 'user.deleted', 'password')
    const guard = await this.#guardLastAdmin(user, 'delete')
    if (!(await this.#deleteUser(user.id, guard, 'delete'))) throw notFound()
    await this.#d.audit.record({ event: 'user.deleted', actor, subject: subjectOf(user), detail: { self: true } })
  }

  /** `field`: the body field that carried the password, named in the refusal. */
  async #proveCurrent(actor: Actor, user: User, password: string, event: string, field: string): Promise<void> {
    const limiter = this.#d.rateLimiter ?? NO_RATE_LIMITS
    const ip = actor.ip ?? ''
    // a stolen token must not become a way to guess the password
    await limiter.checkLogin(user.usernameCanonical, ip)
    if (await this.#d.hasher.verify(user.passwordHash, password)) {
      await limiter.loginSucceeded(user.usernameCanonical, ip)
      return
    }
    await limiter.loginFailed(user.usernameCanonical, ip)
    await this.#d.audit.record({ event, outcome: 'failure', actor, subject: subjectOf(user), detail: { reason: 'current_password_incorrect' } })
    throw new RestAuthError('current_password_incorrect', 'The current password is not correct.', {
      extensions: { field },
    })
  }

  // ---- invites ----

  /** A single-use code, shown once; the database keeps only its hash. */
  async createInvite(actor: Actor, input: CreateInviteInput): Promise<{ invite: Invite; code: string }> {
    const ttl = input.expiresIn ?? this.#d.inviteTtl
    if (!Number.isSafeInteger(ttl) || ttl < 60 || ttl > MAX_INVITE_TTL) {
      throw new RestAuthError('invalid_request', `\`expires_in\` must be between 60 and ${MAX_INVITE_TTL} seconds.`, {
        extensions: { field: 'expires_in' },
      })
    }
    const name = input.username === undefined ? undefined : parseUsername(input.username)
    if (name !== undefined && (await this.#d.store.findUserByCanonicalName(name.canonical)) !== undefined) throw taken()
    const roles = input.roles === undefined ? [] : parseRoles([...input.roles])
    const now = this.#d.clock.now()
    const code = newInviteCode()
    const invite: Invite = {
      id: newInviteId(),
      username: name?.display ?? null,
      usernameCanonical: name?.canonical ?? null,
      roles,
      createdBy: actor.name,
      createdAt: now,
      expiresAt: now + ttl * 1000,
      usedAt: null,
      usedBy: null,
      revokedAt: null,
    }
    await this.#d.store.createInvite({ ...invite, codeHash: hashInviteCode(code) })
    await this.#d.audit.record({
      event: 'invite.created',
      actor,
      detail: { invite: invite.id, username: invite.username, roles: roles.join(' '), expires_at: invite.expiresAt },
    })
    return { invite, code }
  }

  async listInvites(includeSpent: boolean): Promise<readonly Invite[]> {
    return this.#d.store.listInvites(includeSpent, this.#d.clock.now())
  }

  async revokeInvite(actor: Actor, id: string): Promise<void> {
    if (!(await this.#d.store.revokeInvite(id, this.#d.clock.now()))) {
      throw new RestAuthError('invite_not_found', 'No unused, unrevoked invite has this id.')
    }
    await this.#d.audit.record({ event: 'invite.revoked', actor, detail: { invite: id } })
  }

  // ---- internals ----

  async #change(actor: Actor, user: User, event: string, change: UserChange, detail: Record<string, string> = {}, guard: Guard = {}): Promise<User> {
    let updated: User | undefined
    try {
      updated = await this.#d.store.updateUser(user.id, change, this.#d.clock.now(), guard)
    } catch (error) {
      throw lastAdminOr(error, guard.action)
    }
    if (updated === undefined) throw notFound()
    await this.#d.audit.record({ event, actor, subject: subjectOf(updated), detail })
    return updated
  }

  async #deleteUser(id: number, guard: Guard, action: string): Promise<boolean> {
    try {
      return await this.#d.store.deleteUser(id, guard)
    } catch (error) {
      throw lastAdminOr(error, guard.action ?? action)
    }
  }

  /**
   * Keeps at least one active admin, so an install cannot lock itself out of its admin API. A quick
   * count refuses the plain case; for an active admin the write itself is guarded too (the store checks
   * and writes in one serialized transaction), so two admins demoting each other at the same instant
   * cannot both succeed.
   */
  async #guardLastAdmin(user: User, action: string): Promise<Guard> {
    if (user.status !== 'active' || !user.roles.includes(ADMIN_ROLE)) return {}
    if ((await this.#d.store.countActiveWithRole(ADMIN_ROLE)) <= 1) throw lastAdmin(action)
    return { keepActiveWithRole: ADMIN_ROLE, action }
  }
}

/** A store guard plus the words for its refusal. */
interface Guard extends HolderGuard {
  readonly action?: string
}

function lastAdmin(action: string): RestAuthError {
  return new RestAuthError('last_admin', `Cannot ${action} the last active admin; give another user the admin role first.`)
}

function lastAdminOr(error: unknown, action: string | undefined): unknown {
  return error instanceof LastHolderError ? lastAdmin(action ?? 'change') : error
}
