/**
 * The OAuth 2 token service: the token endpoint's grants (RFC 6749 §4.3 password, §6 refresh_token,
 * §4.4 client_credentials), revocation (RFC 7009) and introspection (RFC 7662). Errors are coded
 * RestAuthErrors with RFC 6749 §5.2 names; the HTTP layer renders them.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type { Authenticator } from '../auth/authenticate.ts'
import { parseAuthorization } from '../auth/authorization.ts'
import type { Clock } from '../clock.ts'
import { RestAuthError } from '../errors.ts'
import type { OAuthClient, RefreshFamily, Store, User } from '../store/store.ts'
import { type AccessClaims, scopesOf } from '../tokens/claims.ts'
import {
  decideRefresh,
  deriveSuccessor,
  hashRefreshToken,
  isRefreshTokenShape,
  newRefreshToken,
  type RefreshPolicy,
} from '../tokens/refresh.ts'
import type { TokenService, VerifiedToken } from '../tokens/tokens.ts'
import { clientSecretMatches, grantScopes, parseScope } from './clients.ts'
import type { FormBody } from './form.ts'
import { anonymous, attemptedName, type AuditLog } from '../audit/audit.ts'
import { INTROSPECTION_LIMIT, REFRESH_LIMIT } from '../ratelimit/policy.ts'
import type { RateLimiter } from '../ratelimit/throttle.ts'

export interface OAuthSettings {
  readonly passwordGrant: boolean
  readonly refresh: RefreshPolicy
}

export interface OAuthDeps {
  readonly store: Store
  readonly tokens: TokenService
  readonly authenticator: Authenticator
  readonly clock: Clock
  readonly settings: OAuthSettings
  readonly audit?: AuditLog
  readonly rateLimiter?: RateLimiter
}

/** RFC 6749 §5.1. */
export interface TokenResponse {
  readonly access_token: string
  readonly token_type: 'Bearer'
  readonly expires_in: number
  readonly refresh_token?: string
  readonly scope?: string
}

export type IntrospectionResponse = { readonly active: false } | ({ readonly active: true } & Record<string, unknown>)

export const REFRESH_KEY_NAME = 'refresh_token_hmac_v1'

function invalidClient(detail = 'Client authentication failed.'): RestAuthError {
  return new RestAuthError('invalid_client', detail, { headers: { 'WWW-Authenticate': 'Basic realm="rest-auth"' } })
}

function required(form: FormBody, name: string): string {
  const value = form[name]
  if (value === undefined || value === '') {
    throw new RestAuthError('invalid_request', `The parameter "${name}" is required.`, { extensions: { field: name } })
  }
  return value
}

/** RFC 6749 §2.3.1: Basic credentials of a client are form-urlencoded before base64. */
function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    throw invalidClient('The client credentials are not form-urlencoded (RFC 6749 §2.3.1).')
  }
}

export class OAuthService {
  readonly #deps: OAuthDeps
  #refreshKey: Buffer | undefined

  constructor(deps: OAuthDeps) {
    this.#deps = deps
  }

  /** Loads (or creates on first start) the key that derives refresh-token successors. */
  async init(): Promise<void> {
    const value = await this.#deps.store.serverSecret(
      REFRESH_KEY_NAME,
      () => randomBytes(32).toString('base64url'),
      this.#deps.clock.now(),
    )
    this.#refreshKey = Buffer.from(value, 'base64url')
  }

  get settings(): OAuthSettings {
    return this.#deps.settings
  }

  /**
   * Client authentication (RFC 6749 §2.3.1): HTTP Basic (client_secret_basic) or `client_id` +
   * `client_secret` in the body (client_secret_post), never both. `undefined`: none presented.
   */
  async authenticateClient(header: string | undefined, form: FormBody): Promise<OAuthClient | undefined> {
    let clientId: string | undefined
    let secret: string | undefined
    if (header !== undefined && header.trim() !== '') {
      if (form['client_secret'] !== undefined) {
        throw new RestAuthError('invalid_request', 'Use one client authentication method, not two (RFC 6749 §2.3).')
      }
      let parsed
      try {
        parsed = parseAuthorization(header)
      } catch {
        throw invalidClient()
      }
      if (parsed.scheme !== 'basic') throw invalidClient('Authenticate the client with HTTP Basic.')
      clientId = formDecode(parsed.username)
      secret = formDecode(parsed.password)
      if (form['client_id'] !== undefined && form['client_id'] !== clientId) {
        throw new RestAuthError('invalid_request', 'client_id does not match the authenticated client.')
      }
    } else if (form['client_secret'] !== undefined) {
      clientId = required(form, 'client_id')
      secret = form['client_secret']
    } else if (form['client_id'] !== undefined) {
      // Every registered client is confidential: naming one without its secret is not enough.
      throw invalidClient('This client must authenticate with its secret.')
    } else {
      return undefined
    }
    const client = clientId.length <= 100 ? await this.#deps.store.findClient(clientId) : undefined
    // Same work whether or not the client exists (the digest comparison is cheap either way).
    const ok = client !== undefined && clientSecretMatches(client, secret)
    if (!ok) throw invalidClient()
    return client
  }

  /** `ip`: the caller's address, for the audit log. */
  async token(header: string | undefined, form: FormBody, ip: string | null = null): Promise<TokenResponse> {
    const grantType = required(form, 'grant_type')
    const client = await this.authenticateClient(header, form)
    switch (grantType) {
      case 'password':
        if (!this.#deps.settings.passwordGrant) {
          throw new RestAuthError('unsupported_grant_type', 'The password grant is switched off on this server.')
        }
        return this.#passwordGrant(client, form, ip)
      case 'refresh_token':
        // GoTrue's RateLimitTokenRefresh: a stolen or looping client cannot hammer rotation
        await this.#deps.rateLimiter?.consume(REFRESH_LIMIT, ip ?? '')
        return this.#refreshGrant(client, form)
      case 'client_credentials':
        return this.#clientCredentialsGrant(client, form)
      default:
        throw new RestAuthError('unsupported_grant_type', 'Supported grant types: password, refresh_token, client_credentials.')
    }
  }

  #requireGrant(client: OAuthClient | undefined, grant: string): void {
    if (client !== undefined && !client.grantTypes.includes(grant)) {
      throw new RestAuthError('unauthorized_client', `This client is not registered for the ${grant} grant.`)
    }
  }

  /** RFC 6749 §4.3, for first-party clients: with or without client authentication. */
  async #passwordGrant(client: OAuthClient | undefined, form: FormBody, ip: string | null): Promise<TokenResponse> {
    this.#requireGrant(client, 'password')
    const username = required(form, 'username')
    const password = required(form, 'password')
    const requested = parseScope(form['scope'])
    const scope = client === undefined ? (requested.length > 0 ? reject() : []) : grantScopes(client, requested)
    let user
    try {
      user = await this.#deps.authenticator.verifyPassword(username, password, ip ?? '')
    } catch (error) {
      if (error instanceof RestAuthError && error.status < 500) {
        await this.#deps.audit?.record({
          event: 'auth.failure',
          outcome: 'failure',
          actor: anonymous(ip),
          subject: { id: null, username: attemptedName(username) },
          detail: { reason: error.code, via: 'oauth_password_grant', ...(client === undefined ? {} : { client_id: client.clientId }) },
        })
      }
      if (error instanceof RestAuthError && error.code === 'invalid_credentials') {
        throw new RestAuthError('invalid_grant', 'The username or password is incorrect.')
      }
      // RFC 6749 §5.2 has no code for these; the password was right, so saying why is safe.
      if (error instanceof RestAuthError && (error.code === 'account_pending' || error.code === 'account_disabled')) {
        throw new RestAuthError('invalid_grant', error.message, { internal: error.code })
      }
      throw error
    }
    const now = this.#deps.clock.now()
    const policy = this.#deps.settings.refresh
    const family: Omit<RefreshFamily, 'revokedAt'> = {
      id: randomUUID(),
      userId: user.id,
      clientId: client?.clientId ?? null,
      scope: scope.length === 0 ? null : scope.join(' '),
      authTime: Math.floor(now / 1000),
      createdAt: now,
      expiresAt: now + policy.absoluteMs,
    }
    const refreshToken = newRefreshToken()
    await this.#deps.store.createRefreshFamily({
      family,
      tokenHash: hashRefreshToken(refreshToken),
      idleExpiresAt: now + policy.idleMs,
    })
    const response = await this.#grantResponse(user, family, scope, refreshToken)
    await this.#deps.audit?.record({
      event: 'token.issued',
      actor: { id: user.id, name: user.username, ip },
      subject: { id: user.id, username: user.username },
      detail: { via: 'oauth_password_grant', ...(client === undefined ? {} : { client_id: client.clientId }) },
    })
    return response
  }

  /** RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14.2). */
  async #refreshGrant(client: OAuthClient | undefined, form: FormBody): Promise<TokenResponse> {
    this.#requireGrant(client, 'refresh_token')
    const presented = required(form, 'refresh_token')
    if (!isRefreshTokenShape(presented)) throw invalidGrant()
    const key = this.#key()
    const now = this.#deps.clock.now()
    const policy = this.#deps.settings.refresh
    const clientId = client?.clientId ?? null
    const requested = parseScope(form['scope'])
    // Checked before the rotation too, so a refused request does not use up the token (the client
    // would otherwise lose its session at the next try, as reuse).
    if (requested.length > 0) {
      const found = await this.#deps.store.findRefreshToken(hashRefreshToken(presented))
      if (found !== undefined && found.family.clientId === clientId) assertNarrowerScope(requested, found.family.scope)
    }
    const outcome = await this.#deps.store.rotateRefreshToken({
      presented,
      now,
      idleMs: policy.idleMs,
      decide: (row, family) => decideRefresh(row, family, clientId, now, policy),
      hash: hashRefreshToken,
      successor: (token) => deriveSuccessor(key, token),
    })
    if (outcome.kind === 'refused') {
      if (outcome.reason === 'reuse') {
        throw new RestAuthError('invalid_grant', 'The refresh token was already used; its session has been revoked.', {
          internal: `refresh token reuse: family ${outcome.family?.id ?? '?'} revoked`,
        })
      }
      throw invalidGrant(outcome.reason)
    }
    const family = outcome.family
    const user = await this.#deps.store.findUserById(family.userId)
    if (user === undefined) throw invalidGrant('user gone')
    if (user.status !== 'active') throw invalidGrant(`user ${user.status}`)
    assertNarrowerScope(requested, family.scope)
    const scope = requested.length > 0 ? requested : family.scope === null ? [] : family.scope.split(' ')
    return this.#grantResponse(user, family, scope, outcome.token)
  }

  /** The access token of a refresh family (carries `sid`, never outlives the family) and the answer. */
  async #grantResponse(
    user: User,
    family: Omit<RefreshFamily, 'revokedAt'>,
    scope: readonly string[],
    refreshToken: string,
  ): Promise<TokenResponse> {
    const access = await this.#deps.tokens.issueFor({
      userId: user.id,
      authTime: family.authTime,
      ...(family.clientId === null ? {} : { clientId: family.clientId }),
      scope,
      sid: family.id,
      notAfter: Math.floor(family.expiresAt / 1000),
      // not born revoked by a revoke-all in this same second (see revokeAllForUser)
      minIat: user.tokensValidAfter,
    })
    return tokenResponse(access.token, access.expiresIn, refreshToken, scope)
  }

  /** RFC 6749 §4.4: a service client's own token; no refresh token (§4.4.3). */
  async #clientCredentialsGrant(client: OAuthClient | undefined, form: FormBody): Promise<TokenResponse> {
    if (client === undefined) throw invalidClient('The client_credentials grant needs client authentication.')
    this.#requireGrant(client, 'client_credentials')
    const scope = grantScopes(client, parseScope(form['scope']))
    const access = await this.#deps.tokens.issueFor({ clientId: client.clientId, scope })
    return tokenResponse(access.token, access.expiresIn, undefined, scope)
  }

  /**
   * RFC 7009. Answers nothing about the token: 200 for unknown, invalid or foreign tokens (§2.2).
   * A token issued to a client can be revoked only by that client; a token issued without a
   * client (REST-auth's `/api/token`, public password grant) by whoever holds it.
   */
  async revoke(header: string | undefined, form: FormBody): Promise<void> {
    const client = await this.authenticateClient(header, form)
    // token_type_hint is only a hint (§2.1): both kinds have distinct shapes, so it is not needed.
    const token = required(form, 'token')
    const now = this.#deps.clock.now()
    if (isRefreshTokenShape(token)) {
      const found = await this.#deps.store.findRefreshToken(hashRefreshToken(token))
      if (found === undefined) return
      if (found.family.clientId !== null && found.family.clientId !== client?.clientId) return
      await this.#deps.store.revokeRefreshFamily(found.family.id, 'revoked', now)
      return
    }
    let verified: VerifiedToken
    try {
      verified = await this.#deps.tokens.verify(token, { ignoreExpiry: true })
    } catch (error) {
      if (error instanceof RestAuthError && error.status < 500) return
      throw error
    }
    const owner = verified.claims.client_id
    if (owner !== undefined && owner !== client?.clientId) return
    await this.revokeAccessToken(verified)
  }

  /**
   * Denylists the token by `jti`. The row is kept until the token can no longer verify: `exp` plus the
   * clock leeway, since verification accepts it that long past `exp` (a purge at `exp` would revive it).
   */
  async revokeAccessToken(token: { readonly claims: AccessClaims }): Promise<void> {
    const c = token.claims
    const keepUntil = (c.exp + this.#deps.tokens.settings.clockLeeway) * 1000
    await this.#deps.store.revokeJti(c.jti, c.sub, keepUntil, this.#deps.clock.now())
  }

  /** Logs the user out everywhere: every access token issued until now and every refresh family. */
  async revokeAllForUser(userId: number): Promise<void> {
    const now = this.#deps.clock.now()
    // Tokens carry whole seconds: every token issued up to now has iat <= floor(now), so the mark
    // is the next second, and tokens issued later in this second get their iat raised to it.
    await this.#deps.store.revokeAllForUser(userId, Math.floor(now / 1000) + 1, now)
  }

  /** RFC 7662: the caller must be an authenticated client; an inactive token is only `{active:false}`. */
  async introspect(header: string | undefined, form: FormBody): Promise<IntrospectionResponse> {
    const client = await this.authenticateClient(header, form)
    if (client === undefined) throw invalidClient('Introspection needs client authentication (RFC 7662 §2.1).')
    await this.#deps.rateLimiter?.consume(INTROSPECTION_LIMIT, client.clientId)
    const token = required(form, 'token')
    const inactive = { active: false } as const
    if (isRefreshTokenShape(token)) {
      const found = await this.#deps.store.findRefreshToken(hashRefreshToken(token))
      if (found === undefined) return inactive
      const now = this.#deps.clock.now()
      const f = found.family
      if (f.revokedAt !== null || found.rotatedAt !== null || now >= f.expiresAt || now >= found.idleExpiresAt) return inactive
      const user = await this.#deps.store.findUserById(f.userId)
      if (user === undefined || user.status !== 'active') return inactive
      return {
        active: true,
        token_type: 'refresh_token',
        sub: String(user.id),
        username: user.username,
        ...(f.clientId === null ? {} : { client_id: f.clientId }),
        ...(f.scope === null ? {} : { scope: f.scope }),
        iat: Math.floor(f.createdAt / 1000),
        exp: Math.floor(Math.min(f.expiresAt, found.idleExpiresAt) / 1000),
        auth_time: f.authTime,
        iss: this.#deps.tokens.settings.issuer,
      }
    }
    let principal
    try {
      principal = await this.#deps.authenticator.resolve(await this.#deps.tokens.verify(token))
    } catch (error) {
      if (error instanceof RestAuthError && error.status < 500) return inactive
      throw error
    }
    const c = principal.claims
    const scope = scopesOf(c)
    return {
      active: true,
      token_type: 'Bearer',
      iss: c.iss,
      aud: c.aud,
      sub: c.sub,
      iat: c.iat,
      exp: c.exp,
      jti: c.jti,
      ...(principal.method === 'client_token' ? {} : { username: principal.user.username, auth_time: c.auth_time }),
      ...(c.client_id === undefined ? {} : { client_id: c.client_id }),
      ...(scope.length === 0 ? {} : { scope: scope.join(' ') }),
    }
  }

  #key(): Buffer {
    if (this.#refreshKey === undefined) throw new Error('OAuthService.init() was not called')
    return this.#refreshKey
  }
}

function invalidGrant(internal?: string): RestAuthError {
  return new RestAuthError('invalid_grant', 'The refresh token is invalid, expired or revoked.', internal === undefined ? {} : { internal })
}

/** RFC 6749 §6: a refresh may ask for a narrower scope than the original grant, never a wider one. */
function assertNarrowerScope(requested: readonly string[], granted: string | null): void {
  const familyScope = granted === null ? [] : granted.split(' ')
  if (requested.some((s) => !familyScope.includes(s))) {
    throw new RestAuthError('invalid_scope', 'A refresh cannot widen the scope of the original grant.')
  }
}

function reject(): never {
  throw new RestAuthError('invalid_scope', 'Scopes can only be requested by an authenticated client.')
}

function tokenResponse(accessToken: string, expiresIn: number, refreshToken: string | undefined, scope: readonly string[]): TokenResponse {
  return {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: expiresIn,
    ...(refreshToken === undefined ? {} : { refresh_token: refreshToken }),
    ...(scope.length === 0 ? {} : { scope: scope.join(' ') }),
  }
}
