/**
 * Registration: REST-auth's `POST /api/users`, under the registration policy (`open`, `approval`,
 * `closed`), an optional username allow-list, invite codes, and the password policy.
 */
import { type Actor, type AuditLog } from '../audit/audit.ts'
import type { Clock } from '../clock.ts'
import type { RegistrationPolicy } from '../config/schema.ts'
import { RestAuthError } from '../errors.ts'
import { parseUsername } from '../auth/username.ts'
import type { PasswordHasher } from '../passwords/hash.ts'
import { checkPassword, type PasswordPolicyName } from '../passwords/policy.ts'
import type { Invite, Store, User } from '../store/store.ts'
import { hashInviteCode, looksLikeInviteCode } from './invites.ts'
import type { UsernameAllowList } from './username-allow.ts'

export interface RegistrationDeps {
  readonly store: Store
  readonly hasher: PasswordHasher
  readonly clock: Clock
  readonly audit: AuditLog
  readonly passwordPolicy: PasswordPolicyName
  readonly registration: RegistrationPolicy
  readonly usernameAllowed: UsernameAllowList
  /** The patterns as configured, named in the refusal. */
  readonly usernamePatterns: readonly string[]
}

export interface Registration {
  readonly username: string
  readonly password: string
  /** An invite code an admin issued. */
  readonly invite?: string | undefined
}

export function taken(): RestAuthError {
  return new RestAuthError('username_taken', 'This username is already taken.', { extensions: { field: 'username' } })
}

function inviteInvalid(detail = 'The invite code is unknown, expired, revoked or already used.'): RestAuthError {
  return new RestAuthError('invite_invalid', detail, { extensions: { field: 'invite' } })
}

export function inviteUsable(invite: Invite, now: number): boolean {
  return invite.usedAt === null && invite.revokedAt === null && now < invite.expiresAt
}

export async function registerUser(deps: RegistrationDeps, input: Registration, actor: Actor): Promise<User> {
  const now = deps.clock.now()
  const invite = input.invite === undefined ? undefined : await findUsableInvite(deps, input.invite, now)
  if (invite === undefined && deps.registration === 'closed') {
    throw new RestAuthError('registration_closed', 'This server does not accept new registrations without an invite code.')
  }
  const name = parseUsername(input.username)
  if (invite?.usernameCanonical != null && invite.usernameCanonical !== name.canonical) {
    throw inviteInvalid('This invite code was issued for another username.')
  }
  // An invite is an administrator's consent: the allow-list is for self-registration.
  if (invite === undefined && !deps.usernameAllowed(name.canonical)) {
    throw new RestAuthError('username_not_allowed', `Usernames must match one of: ${deps.usernamePatterns.join(', ')}.`, {
      extensions: { field: 'username' },
    })
  }
  checkPassword(deps.passwordPolicy, input.password, { username: name.canonical })
  // Cheap early answer for a taken name; the unique index below is what makes it race-safe.
  if ((await deps.store.findUserByCanonicalName(name.canonical)) !== undefined) throw taken()
  const passwordHash = await deps.hasher.hash(input.password)
  const status = invite !== undefined || deps.registration === 'open' ? 'active' : 'pending'
  const newUser = {
    username: name.display,
    usernameCanonical: name.canonical,
    passwordHash,
    now: deps.clock.now(),
    status,
    roles: invite?.roles ?? [],
  } as const
  let user: User
  if (invite === undefined) {
    const created = await deps.store.createUser(newUser)
    if (created === undefined) throw taken()
    user = created
  } else {
    const created = await deps.store.createUserWithInvite(newUser, hashInviteCode(input.invite as string))
    if (created === 'taken') throw taken()
    // used or revoked by a concurrent request since it was checked above
    if (created === 'invite_unusable') throw inviteInvalid()
    user = created
  }
  await deps.audit.record({
    event: 'user.registered',
    actor,
    subject: { id: user.id, username: user.username },
    detail: { status: user.status, ...(invite === undefined ? {} : { invite: invite.id, roles: user.roles.join(' ') }) },
  })
  return user
}

async function findUsableInvite(deps: RegistrationDeps, code: string, now: number): Promise<Invite> {
  if (!looksLikeInviteCode(code)) throw inviteInvalid()
  const invite = await deps.store.findInviteByCodeHash(hashInviteCode(code))
  if (invite === undefined || !inviteUsable(invite, now)) throw inviteInvalid()
  return invite
}
