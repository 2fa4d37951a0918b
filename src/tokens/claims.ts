/**
 * Access-token claims (pure). RFC 9068 (JWT access tokens) shape: `typ: at+jwt`, `iss`, `aud`,
 * `sub` (a user id, never reused, or a service client's id), `iat`, `exp`, `jti`; `auth_time` on
 * user tokens; `client_id` and `scope` on tokens issued to an OAuth client; `sid` (the refresh-token
 * family) on tokens issued by a refresh grant, so revoking the family revokes them too.
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
  readonly auth_time?: number
  readonly client_id?: string
  /** Space-separated (RFC 8693 §4.2 / RFC 9068 §2.2.3). */
  readonly scope?: string
  readonly sid?: string
}

export interface ClaimsInput {
  readonly issuer: string
  readonly audience: string
  /** The user the token speaks for; absent on a service client's own token (client_credentials). */
  readonly userId?: number
  /** The OAuth client the token was issued to, if any (the subject when there is no user). */
  readonly clientId?: string
  /** Milliseconds. */
  readonly now: number
  /** Seconds since epoch of the password authentication (user tokens). */
  readonly authTime?: number
  readonly ttl: number
  /** Seconds after `authTime` beyond which no token may live (token-by-token renewal). */
  readonly renewalLimit?: number
  /** Seconds: no token may live past this (e.g. the end of a refresh-token family). */
  readonly notAfter?: number
  /**
   * Seconds: the user's "tokens valid after" mark. A token issued in the same second as a
   * revoke-all gets its `iat` moved up to the mark so it is not born revoked.
   */
  readonly minIat?: number
  readonly jti: string
  readonly scope?: readonly string[]
  readonly sid?: string
}

/**
 * Claims for a new token. A user token never outlives `authTime + renewalLimit`; once that point is
 * reached no token is issued (`token_renewal_limit`).
 */
export function buildAccessClaims(input: ClaimsInput): AccessClaims {
  if (input.userId === undefined && input.clientId === undefined) {
    throw new TypeError('buildAccessClaims needs a userId or a clientId')
  }
  const iat = Math.max(Math.floor(input.now / 1000), input.minIat ?? 0)
  let exp = iat + input.ttl
  if (input.authTime !== undefined && input.renewalLimit !== undefined) {
    const hardStop = input.authTime + input.renewalLimit
    if (iat >= hardStop) {
      throw new RestAuthError('token_renewal_limit', 'This token can no longer be renewed; present the username and password again.')
    }
    exp = Math.min(exp, hardStop)
  }
  if (input.notAfter !== undefined) exp = Math.min(exp, input.notAfter)
  if (exp <= iat) throw new RestAuthError('invalid_grant', 'The grant has expired.')
  const claims: AccessClaims = {
    iss: input.issuer,
    aud: input.audience,
    sub: input.userId !== undefined ? String(input.userId) : (input.clientId as string),
    iat,
    exp,
    jti: input.jti,
    ...(input.authTime === undefined ? {} : { auth_time: input.authTime }),
    ...(input.clientId === undefined ? {} : { client_id: input.clientId }),
    ...(input.scope === undefined || input.scope.length === 0 ? {} : { scope: input.scope.join(' ') }),
    ...(input.sid === undefined ? {} : { sid: input.sid }),
  }
  return claims
}

/** `sub` → user id, or undefined when it is not one of ours. */
export function userIdFromSub(sub: unknown): number | undefined {
  if (typeof sub !== 'string' || !/^[1-9]\d{0,15}$/.test(sub)) return undefined
  const id = Number(sub)
  return Number.isSafeInteger(id) ? id : undefined
}

export function scopesOf(claims: AccessClaims): string[] {
  return claims.scope === undefined ? [] : claims.scope.split(' ').filter((s) => s !== '')
}
