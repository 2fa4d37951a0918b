/** Invite codes (pure): 256-bit single-use codes, stored only as SHA-256. */
import { createHash, randomBytes } from 'node:crypto'

const CODE_PREFIX = 'rai_'

export function newInviteCode(): string {
  return CODE_PREFIX + randomBytes(32).toString('base64url')
}

export function newInviteId(): string {
  return 'inv_' + randomBytes(9).toString('base64url')
}

/** A code is random, so a plain SHA-256 is enough (nothing to brute-force); compared by index lookup. */
export function hashInviteCode(code: string): string {
  return createHash('sha256').update(code, 'utf8').digest('hex')
}

/** Cheap shape check before any lookup: what `newInviteCode` makes. */
export function looksLikeInviteCode(value: string): boolean {
  return /^rai_[A-Za-z0-9_-]{43}$/.test(value)
}
