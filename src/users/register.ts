/** Registration: REST-auth's `POST /api/users`, with a username policy and a password policy. */
import type { Clock } from '../clock.ts'
import type { RegistrationPolicy } from '../config/schema.ts'
import { RestAuthError } from '../errors.ts'
import { parseUsername } from '../auth/username.ts'
import type { PasswordHasher } from '../passwords/hash.ts'
import { checkPassword, type PasswordPolicyName } from '../passwords/policy.ts'
import type { Store, User } from '../store/store.ts'

export interface RegistrationDeps {
  readonly store: Store
  readonly hasher: PasswordHasher
  readonly clock: Clock
  readonly passwordPolicy: PasswordPolicyName
  readonly registration: RegistrationPolicy
}

function taken(): RestAuthError {
  return new RestAuthError('username_taken', 'This username is already taken.', { extensions: { field: 'username' } })
}

export async function registerUser(deps: RegistrationDeps, username: string, password: string): Promise<User> {
  if (deps.registration === 'closed') {
    throw new RestAuthError('registration_closed', 'This server does not accept new registrations.')
  }
  const name = parseUsername(username)
  checkPassword(deps.passwordPolicy, password, { username: name.canonical })
  // Cheap early answer for a taken name; the unique index below is what makes it race-safe.
  if ((await deps.store.findUserByCanonicalName(name.canonical)) !== undefined) throw taken()
  const passwordHash = await deps.hasher.hash(password)
  const user = await deps.store.createUser({
    username: name.display,
    usernameCanonical: name.canonical,
    passwordHash,
    now: deps.clock.now(),
  })
  if (user === undefined) throw taken()
  return user
}
