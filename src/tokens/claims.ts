/**
 * Access-token claims (pure). RFC 9068 (JWT access tokens) shape: `typ: at+jwt`, `iss`, `aud`,
 * `sub` (the user id: ids are never reused), `iat`, `exp`, `jti`, `auth_time`.
 */
import { RestAuthError } from '../errors.ts'

export const ACCESS_TOKEN_TYP = 'at+jwt'

export interface AccessClaims {
  readonly iss: string
  readonly aud: string
  readonly sub: string
  readonly iat: number
  readonly exp: number
  readonly jti: string
  /** When the password was last presented (seconds). Kept across renewals (NIST SP 800-63B-4). */
  readonly auth_time: number
}

export interface ClaimsInput {
  readonly issuer: string
  readonly audience: string
  readonly userId: number
  /** Milliseconds. */
  readonly now: number
  /** Seconds since epoch of the password authentication. */
  readonly authTime: number
  readonly ttl: number
  /** Seconds after `authTime` beyond which no token may live. */
  readonly renewalLimit: number
  readonly jti: string
}

/**
 * Claims for a new token. A token never outlives `authTime + renewalLimit`; once that point is
 * reached no token is issued (`token_renewal_limit`).
 */
export function buildAccessClaims(input: ClaimsInput): AccessClaims {
  const iat = Math.floor(input.now / 1000)
  const hardStop = input.authTime + input.renewalLimit
  if (iat >= hardStop) {
    throw new RestAuthError('token_renewal_limit', 'This token can no longer be renewed; present the username and password again.')
  }
  return {
    iss: input.issuer,
    aud: input.audience,
    sub: String(input.userId),
    iat,
    exp: Math.min(iat + input.ttl, hardStop),
    jti: input.jti,
    auth_time: input.authTime,
  }
}

/** `sub` → user id, or undefined when it is not one of ours. */
export function userIdFromSub(sub: unknown): number | undefined {
  if (typeof sub !== 'string' || !/^[1-9]\d{0,15}$/.test(sub)) return undefined
  const id = Number(sub)
  return Number.isSafeInteger(id) ? id : undefined
}
