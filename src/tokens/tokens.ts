/**
 * Issues and verifies access tokens (JWS compact, ES256, `kid` required, algorithm pinned).
 * jose's `jwtVerify` checks exp/nbf/iat with the leeway; we require every claim we rely on.
 */
import { randomUUID } from 'node:crypto'
import { errors as joseErrors, jwtVerify, SignJWT, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose'
import type { Clock } from '../clock.ts'
import { RestAuthError } from '../errors.ts'
import { ACCESS_TOKEN_TYP, type AccessClaims, buildAccessClaims, userIdFromSub } from './claims.ts'
import { type Keyring, TOKEN_ALG } from './keyring.ts'

export interface TokenSettings {
  readonly issuer: string
  readonly audience: string
  readonly ttl: number
  readonly renewalLimit: number
  readonly clockLeeway: number
}

export interface IssuedToken {
  readonly token: string
  /** Seconds the token is valid for from now (`duration`). */
  readonly expiresIn: number
  readonly claims: AccessClaims
}

export interface VerifiedToken {
  readonly userId: number
  readonly claims: AccessClaims
}

export class TokenService {
  readonly #keyring: Keyring
  readonly #clock: Clock
  readonly settings: TokenSettings

  constructor(keyring: Keyring, clock: Clock, settings: TokenSettings) {
    this.#keyring = keyring
    this.#clock = clock
    this.settings = settings
  }

  async issue(userId: number, authTime: number): Promise<IssuedToken> {
    const now = this.#clock.now()
    const claims = buildAccessClaims({
      issuer: this.settings.issuer,
      audience: this.settings.audience,
      userId,
      now,
      authTime,
      ttl: this.settings.ttl,
      renewalLimit: this.settings.renewalLimit,
      jti: randomUUID(),
    })
    const { kid, key } = await this.#keyring.signingKey()
    const token = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: TOKEN_ALG, kid, typ: ACCESS_TOKEN_TYP })
      .sign(key)
    return { token, expiresIn: claims.exp - claims.iat, claims }
  }

  /** Throws `token_expired` or `token_invalid` (never says more: RFC 6750 §3.1 invalid_token). */
  async verify(token: string): Promise<VerifiedToken> {
    const keyring = this.#keyring
    const getKey = async (header: JWTHeaderParameters, _input: FlattenedJWSInput) => {
      if (typeof header.kid !== 'string') throw new joseErrors.JWKSNoMatchingKey()
      const key = await keyring.verificationKey(header.kid)
      if (key === undefined) throw new joseErrors.JWKSNoMatchingKey()
      return key
    }
    try {
      const { payload } = await jwtVerify(token, getKey, {
        algorithms: [TOKEN_ALG],
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        typ: ACCESS_TOKEN_TYP,
        requiredClaims: ['exp', 'iat', 'sub', 'jti', 'auth_time'],
        clockTolerance: this.settings.clockLeeway,
        maxTokenAge: this.settings.ttl,
        currentDate: new Date(this.#clock.now()),
      })
      const userId = userIdFromSub(payload.sub)
      const authTime = payload['auth_time']
      if (userId === undefined || typeof authTime !== 'number' || !Number.isInteger(authTime) || typeof payload.jti !== 'string') {
        throw new RestAuthError('token_invalid', undefined, { internal: 'claims of the wrong type' })
      }
      return { userId, claims: payload as unknown as AccessClaims }
    } catch (error) {
      if (error instanceof RestAuthError) throw error
      if (error instanceof joseErrors.JWTExpired) {
        throw new RestAuthError('token_expired', 'The token has expired.', { cause: error })
      }
      if (error instanceof joseErrors.JOSEError) {
        throw new RestAuthError('token_invalid', 'The token is not valid.', { internal: error.code, cause: error })
      }
      // Anything else (a database failure while reloading keys) is not the client's fault.
      throw error
    }
  }
}
