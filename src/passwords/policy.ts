/**
 * Password policy profiles (docs/security-baseline.md rows "Password length", "Password checks",
 * "Password normalisation"). Pure: no I/O.
 *
 * - `standard` (default): ≥ 8 code points (ASVS 6.2.1), ≤ 1024 UTF-8 bytes (ASVS 6.2.9), not the username or
 *   the service name (ASVS 6.2.11), not a common password (ASVS 6.2.4), no composition rules (ASVS 6.2.5).
 * - `strict`: the same with ≥ 15 code points (NIST SP 800-63B-4 single-factor password).
 * - `legacy`: any non-empty string of ≤ 1024 UTF-8 bytes (REST-auth's behaviour).
 *
 * All checks run on `normalizePassword(password)`.
 */

import { canonicalizeUsername } from '../auth/username.ts'
import { RestAuthError } from '../errors.ts'
import { isCommonPassword } from './blocklist.ts'

export type PasswordPolicyName = 'standard' | 'strict' | 'legacy'

export const PASSWORD_POLICIES: readonly PasswordPolicyName[] = Object.freeze(['standard', 'strict', 'legacy'] as const)

export const PASSWORD_MAX_BYTES = 1024

export const DEFAULT_SERVICE_NAMES: readonly string[] = Object.freeze(['rest-auth', 'restauth'])

/** A username shorter than this (in code points) is refused only when it is the whole password. */
const USERNAME_CONTAINS_MIN_CODE_POINTS = 4

const MIN_LENGTH: Readonly<Record<PasswordPolicyName, number>> = Object.freeze({
  standard: 8,
  strict: 15,
  legacy: 1,
})

/**
 * Normalization never makes a string shorter than 1/4 of its code points (canonical composition merges at
 * most 4 into one; compatibility mappings only expand), so more UTF-16 units than this always exceed 1024
 * bytes after NFKC. Refusing those before normalizing bounds the work an oversized input can cause.
 */
const MAX_RAW_UNITS = PASSWORD_MAX_BYTES * 4 * 2

/** NFKC, the same at registration and verification; no trim, no case folding (NIST SP 800-63B-4, ASVS 6.2.8). */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC')
}

export interface PasswordContext {
  readonly username?: string
  readonly serviceNames?: readonly string[]
}

function assertPolicy(policy: PasswordPolicyName): void {
  if (!Object.hasOwn(MIN_LENGTH, policy)) throw new TypeError(`unknown password policy: ${String(policy)}`)
}

export function minPasswordLength(policy: PasswordPolicyName): number {
  assertPolicy(policy)
  return MIN_LENGTH[policy]
}

/** UTF-8 length; a lone surrogate counts 3 bytes (it is sent as U+FFFD). */
export function utf8ByteLength(s: string): number {
  let bytes = 0
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4
  }
  return bytes
}

function codePointLength(s: string): number {
  let n = 0
  for (const _ of s) n++
  return n
}

/** Context words compare like the password: NFKC, then lowercase. */
function contextForm(s: string): string {
  return s.normalize('NFKC').toLowerCase()
}

/**
 * Throws RestAuthError with code password_too_short | password_too_long | password_too_common |
 * password_contains_context and a reason message that never echoes the password.
 * Check order: too_long, too_short, context, common.
 */
export function checkPassword(policy: PasswordPolicyName, password: string, context: PasswordContext = {}): void {
  assertPolicy(policy)
  const tooLong = (): RestAuthError =>
    new RestAuthError('password_too_long', `Password must be at most ${PASSWORD_MAX_BYTES} bytes of UTF-8.`)
  if (typeof password !== 'string') throw new RestAuthError('invalid_request', 'Password must be a string.')
  if (password.length > MAX_RAW_UNITS) throw tooLong()

  const normalized = normalizePassword(password)
  if (utf8ByteLength(normalized) > PASSWORD_MAX_BYTES) throw tooLong()

  const length = codePointLength(normalized)
  if (policy === 'legacy') {
    if (length === 0) throw new RestAuthError('password_too_short', 'Password must not be empty.')
    return
  }
  const min = MIN_LENGTH[policy]
  if (length < min) {
    throw new RestAuthError('password_too_short', `Password must be at least ${min} characters.`)
  }

  const lowered = normalized.toLowerCase()

  if (context.username !== undefined && context.username !== '') {
    const username = contextForm(canonicalizeUsername(context.username))
    if (username !== '') {
      if (lowered === username) {
        throw new RestAuthError('password_contains_context', 'Password must not be the username.')
      }
      if (codePointLength(username) >= USERNAME_CONTAINS_MIN_CODE_POINTS && lowered.includes(username)) {
        throw new RestAuthError('password_contains_context', 'Password must not contain the username.')
      }
    }
  }

  for (const name of context.serviceNames ?? DEFAULT_SERVICE_NAMES) {
    const service = contextForm(name)
    if (service !== '' && lowered.includes(service)) {
      throw new RestAuthError('password_contains_context', 'Password must not contain the name of this service.')
    }
  }

  if (isCommonPassword(lowered)) {
    throw new RestAuthError('password_too_common', 'Password is on the list of commonly used passwords.')
  }
}
