/**
 * Issues and verifies access tokens (JWS compact, ES256, `kid` required, algorithm pinned).
 * jose's `jwtVerify` checks exp/nbf/iat with the leeway; we require every claim we rely on.
 */
import { randomUUID } from 'node:crypto'
import { errors as joseErrors, jwtVerify, SignJWT, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose'
import type { Clock } from '../clock.ts'
import { RestAuthError } from '../errors.ts'
import { ACCESS_TOKEN_TYP, type AccessClaims, buildAccessClaims, type ClaimsInput, scopesOf, userIdFromSub } from './claims.ts'
import { type Keyring, TOKEN_ALG } from './keyring.ts'
import { SuffixKeyedMap } from '../state/suffix-map.ts'
import { detached } from '../util/detached.ts'

export interface TokenSettings {
  readonly issuer: string
  readonly audience: string
  readonly ttl: number
  readonly renewalLimit: number
  readonly clockLeeway: number
  /** Verified tokens remembered (each until its exp + leeway); 0 turns the cache off. */
  readonly verifiedCacheSize?: number
}

export interface IssuedToken {
  readonly token: string
  /** Seconds the token is valid for from now (`duration`). */
  readonly expiresIn: number
  readonly claims: AccessClaims
}

export type VerifiedToken =
  | { readonly kind: 'user'; readonly userId: number; readonly claims: AccessClaims & { readonly auth_time: number } }
  | { readonly kind: 'client'; readonly clientId: string; readonly claims: AccessClaims }

export type IssueSpec = Omit<ClaimsInput, 'issuer' | 'audience' | 'now' | 'ttl' | 'jti'>

export class TokenService {
  readonly #keyring: Keyring
  readonly #clock: Clock
  readonly settings: TokenSettings
  /**
   * Exact token text → its verified claims, kept until the token can no longer verify. Only tokens
   * whose signature and claims checked out get in, so a forged token is always checked in full. A hit
   * costs a map lookup instead of an ECDSA verification on libuv's pool (performance notes 1 and 2).
   * Revocation is not cached here: the Authenticator checks it on every request.
   */
  readonly #verified: SuffixKeyedMap<{ readonly token: VerifiedToken; readonly untilMs: number }> | undefined

  constructor(keyring: Keyring, clock: Clock, settings: TokenSettings) {
    this.#keyring = keyring
    this.#clock = clock
    const size = settings.verifiedCacheSize ?? 0
    this.#verified = size > 0 ? new SuffixKeyedMap(size) : undefined
    this.settings = settings
  }

  /**
   * A user token from a password or token authentication (REST-auth's `/api/token`). `renewing`: the
   * claims of the token being renewed; the renewal keeps its client, scope and refresh family (`sid`),
   * so it is never wider than that token and is revoked with its family.
   */
  async issue(userId: number, authTime: number, minIat?: number, renewing?: AccessClaims): Promise<IssuedToken> {
    return this.issueFor({
      userId,
      authTime,
      renewalLimit: this.settings.renewalLimit,
      ...(minIat === undefined ? {} : { minIat }),
      ...(renewing?.client_id === undefined ? {} : { clientId: renewing.client_id }),
      ...(renewing?.scope === undefined ? {} : { scope: scopesOf(renewing) }),
      ...(renewing?.sid === undefined ? {} : { sid: renewing.sid }),
    })
  }

  async issueFor(spec: IssueSpec): Promise<IssuedToken> {
    // one reading of the clock: a second boundary crossed while signing must not make `duration` 599
    const now = this.#clock.now()
    const claims = buildAccessClaims({
      ...spec,
      issuer: this.settings.issuer,
      audience: this.settings.audience,
      now,
      ttl: this.settings.ttl,
      jti: randomUUID(),
    })
    const { kid, key } = await this.#keyring.signingKey()
    const token = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: TOKEN_ALG, kid, typ: ACCESS_TOKEN_TYP })
      .sign(key)
    return { token, expiresIn: claims.exp - Math.floor(now / 1000), claims }
  }

  /**
   * Checks signature and claims; not revocation (that needs the store: see Authenticator).
   * Throws `token_expired` or `token_invalid` (never says more: RFC 6750 §3.1 invalid_token).
   * `ignoreExpiry` is for revocation and introspection of a token that may have just expired.
   */
  async verify(token: string, options: { ignoreExpiry?: boolean } = {}): Promise<VerifiedToken> {
    if (this.#verified !== undefined && options.ignoreExpiry !== true) {
      const hit = this.#verified.get(token)
      if (hit !== undefined) {
        if (this.#clock.now() < hit.untilMs) return hit.token
        // verified once and expired since: that answer cannot change, so it is given without the
        // signature check (a client that keeps sending its expired token costs a map lookup)
        throw expired()
      }
    }
    if (options.ignoreExpiry !== true && pastItsTime(token, this.#clock.now(), this.settings)) throw expired()
    const verified = await this.#verify(token, options)
    if (this.#verified !== undefined && options.ignoreExpiry !== true) {
      // a copy as the key: the caller's token may be a slice of a larger text (a form body with a
      // client secret, a Basic header with a password) that the cache would otherwise keep alive
      this.#verified.set(detached(token), { token: verified, untilMs: (verified.claims.exp + this.settings.clockLeeway) * 1000 })
    }
    return verified
  }

  /**
   * The remembered verification of exactly this token, without I/O or cryptography; undefined when it
   * is not remembered or has expired (then `verify`, which gives the reason).
   */
  peekVerified(token: string): VerifiedToken | undefined {
    const hit = this.#verified?.get(token)
    return hit !== undefined && this.#clock.now() < hit.untilMs ? hit.token : undefined
  }

  /**
   * The text of this token as its remembered verification holds it, if it is remembered: callers that
   * keep a token for later `peekVerified` calls keep this one (see SuffixKeyedMap.storedKey).
   */
  rememberedText(token: string): string | undefined {
    return this.#verified?.storedKey(token)
  }

  /** Drops every remembered verification (a signing key was removed). */
  forgetVerified(): void {
    this.#verified?.clear()
  }

  async #verify(token: string, options: { ignoreExpiry?: boolean }): Promise<VerifiedToken> {
    const keyring = this.#keyring
    const getKey = async (header: JWTHeaderParameters, _input: FlattenedJWSInput) => {
      if (typeof header.kid !== 'string') throw new joseErrors.JWKSNoMatchingKey()
      const key = await keyring.verificationKey(header.kid)
      if (key === undefined) throw new joseErrors.JWKSNoMatchingKey()
      return key
    }
    const now = this.#clock.now()
    try {
      const { payload } = await jwtVerify(token, getKey, {
        algorithms: [TOKEN_ALG],
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        typ: ACCESS_TOKEN_TYP,
        requiredClaims: ['exp', 'iat', 'sub', 'jti'],
        clockTolerance: this.settings.clockLeeway,
        // jose checks exp only against currentDate; to ignore expiry we move "now" back to iat.
        ...(options.ignoreExpiry ? {} : { maxTokenAge: this.settings.ttl }),
        currentDate: new Date(options.ignoreExpiry ? Math.min(now, iatOf(token) * 1000) : now),
      })
      if (typeof payload.jti !== 'string' || typeof payload.sub !== 'string') throw invalid('claims of the wrong type')
      for (const name of ['scope', 'client_id', 'sid'] as const) {
        if (payload[name] !== undefined && typeof payload[name] !== 'string') throw invalid(`${name} is not a string`)
      }
      const claims = payload as unknown as AccessClaims
      const userId = userIdFromSub(payload.sub)
      if (userId !== undefined) {
        const authTime = payload['auth_time']
        if (typeof authTime !== 'number' || !Number.isInteger(authTime)) throw invalid('user token without auth_time')
        return { kind: 'user', userId, claims: { ...claims, auth_time: authTime } }
      }
      if (typeof claims.client_id === 'string' && claims.client_id === payload.sub) {
        return { kind: 'client', clientId: claims.client_id, claims }
      }
      throw invalid('subject is neither a user id nor the token\'s client')
    } catch (error) {
      if (error instanceof RestAuthError) throw error
      if (error instanceof joseErrors.JWTExpired) throw expired(error)
      if (error instanceof joseErrors.JOSEError) {
        throw new RestAuthError('token_invalid', 'The token is not valid.', { internal: error.code, cause: error })
      }
      // Anything else (a database failure while reloading keys) is not the client's fault.
      throw error
    }
  }
}

function invalid(internal: string): RestAuthError {
  return new RestAuthError('token_invalid', 'The token is not valid.', { internal })
}

function expired(cause?: unknown): RestAuthError {
  return new RestAuthError('token_expired', 'The token has expired.', cause === undefined ? {} : { cause })
}

/** A finite numeric claim of the unverified payload of a compact JWS (never trusted, only read). */
function unverifiedTime(payload: Record<string, unknown> | undefined, name: 'iat' | 'exp'): number | undefined {
  const value = payload?.[name]
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

function unverifiedPayload(token: string): Record<string, unknown> | undefined {
  const start = token.indexOf('.')
  const end = token.indexOf('.', start + 1)
  if (start < 0 || end < 0) return undefined
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.slice(start + 1, end), 'base64url').toString('utf8'))
    return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? (payload as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/**
 * True when the token's own (unverified) claims put it past its time by jose's rules: `exp` at or
 * before now minus the leeway, or `iat` older than the lifetime plus the leeway (maxTokenAge). Such a
 * token is refused whatever its signature says, so it is refused before the signature check: a stream
 * of expired tokens (clients after a restart, a replay) costs a JSON parse each, not an ECDSA
 * verification. Only ever a reason to refuse, never to accept; a forgery that claims to be expired
 * is told `token_expired` rather than `token_invalid`, both RFC 6750 invalid_token.
 */
export function pastItsTime(token: string, nowMs: number, settings: Pick<TokenSettings, 'ttl' | 'clockLeeway'>): boolean {
  const payload = unverifiedPayload(token)
  const now = Math.floor(nowMs / 1000)
  const exp = unverifiedTime(payload, 'exp')
  if (exp !== undefined && exp <= now - settings.clockLeeway) return true
  const iat = unverifiedTime(payload, 'iat')
  return iat !== undefined && now - iat - settings.clockLeeway > settings.ttl
}

/** The unverified `iat` of a compact JWS, or 0; only used to position the clock for `ignoreExpiry`. */
function iatOf(token: string): number {
  return unverifiedTime(unverifiedPayload(token), 'iat') ?? 0
}
