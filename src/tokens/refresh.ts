/**
 * Refresh tokens (pure parts): opaque 256-bit values, stored as SHA-256, rotated on every use
 * (RFC 9700 §4.14.2). A rotated token presented again is reuse and revokes its whole family,
 * except within a short grace window where the same successor is returned, so concurrent refreshes
 * from one client do not log it out.
 *
 * The successor of a token is HMAC-SHA256(server key, token): unpredictable without the key, and
 * derivable again from the presented token, which is what lets the grace window hand out the
 * *same* successor without ever storing a token in plaintext. The first token of a family is 32
 * bytes from the CSPRNG.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'
import type { RefreshDecision, RefreshRowState } from '../store/store.ts'

export interface RefreshPolicy {
  /** Absolute lifetime of a family from its first token (ms). */
  readonly absoluteMs: number
  /** A token unused for this long expires (ms). */
  readonly idleMs: number
  /** A rotated token presented again within this window gets the same successor (ms). 0 = none. */
  readonly graceMs: number
}

export const REFRESH_TOKEN_BYTES = 32

export function newRefreshToken(): string {
  return randomBytes(REFRESH_TOKEN_BYTES).toString('base64url')
}

export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

export function deriveSuccessor(key: Buffer, token: string): string {
  return createHmac('sha256', key).update(token, 'utf8').digest('base64url')
}

/** The shape of a refresh token: 43 base64url characters (32 bytes). Anything else is not ours. */
export function isRefreshTokenShape(token: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(token)
}

export type { RefreshDecision, RefreshRowState } from '../store/store.ts'

export interface RefreshFamilyState {
  readonly clientId: string | null
  readonly expiresAt: number
  readonly revokedAt: number | null
}

/** What to do with a presented refresh token. Pure; the store applies it in one transaction. */
export function decideRefresh(
  row: RefreshRowState | undefined,
  family: RefreshFamilyState | undefined,
  clientId: string | null,
  now: number,
  policy: RefreshPolicy,
): RefreshDecision {
  if (row === undefined || family === undefined) return { kind: 'unknown' }
  // RFC 6749 §6: the token is bound to the client it was issued to. Checked first, so another
  // client cannot trigger reuse detection and log the owner out.
  if (family.clientId !== clientId) return { kind: 'wrong_client' }
  if (family.revokedAt !== null) return { kind: 'revoked' }
  if (now >= family.expiresAt) return { kind: 'expired' }
  if (row.rotatedAt === null) return now >= row.idleExpiresAt ? { kind: 'expired' } : { kind: 'rotate' }
  // graceMs 0 turns the window off: even a reuse in the same millisecond is reuse.
  return policy.graceMs > 0 && now - row.rotatedAt <= policy.graceMs ? { kind: 'grace' } : { kind: 'reuse' }
}
