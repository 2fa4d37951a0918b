/**
 * Who is calling: turns an `Authorization` header into a principal, in the contract's order of
 * precedence: Bearer token, token as the Basic username (REST-auth), Basic username:password.
 * Failures are coded RestAuthErrors; the HTTP layer adds the challenge.
 */
import { hash, randomBytes } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { BoundedMap } from '../state/lru.ts'
import { SuffixKeyedMap } from '../state/suffix-map.ts'
import { RestAuthError } from '../errors.ts'
import type { PasswordHasher } from '../passwords/hash.ts'
import type { OAuthClient, RevocationState, Store, User } from '../store/store.ts'
import type { TokenService, VerifiedToken } from '../tokens/tokens.ts'
import type { AccessClaims } from '../tokens/claims.ts'
import { looksLikeJwt, parseAuthorization, plainBasicCredentials, strictBase64StartsWith } from './authorization.ts'
import { canonicalizeUsername, USERNAME_MAX_CODE_POINTS } from './username.ts'
import { NO_RATE_LIMITS, type RateLimiter } from '../ratelimit/throttle.ts'
import type { MemoryState } from '../state/caching-store.ts'
import { detached } from '../util/detached.ts'

export type Principal =
  | { readonly method: 'password'; readonly user: User; readonly authTime: number }
  | { readonly method: 'token'; readonly user: User; readonly authTime: number; readonly claims: AccessClaims }
  /** A service client's own token (client_credentials): no user. */
  | { readonly method: 'client_token'; readonly client: OAuthClient; readonly claims: AccessClaims }

export type UserPrincipal = Exclude<Principal, { method: 'client_token' }>
export type TokenPrincipal = Exclude<Principal, { method: 'password' }>

export type PresentedScheme = 'basic' | 'bearer' | 'none'

export interface AuthenticatorDeps {
  readonly store: Store
  readonly hasher: PasswordHasher
  readonly tokens: TokenService
  readonly clock: Clock
  /** Seconds a verified username:password is remembered (mod_authn_socache); 0 or absent: never. */
  readonly credentialCacheTtl?: number
  /** Login throttling (per username, address and pair); none when rate limits are off. */
  readonly rateLimiter?: RateLimiter
  /** Users, clients and revocation state known in memory (CachingStore): the synchronous fast path. */
  readonly memory?: MemoryState
  /** Called when a stored hash was upgraded or the upgrade failed; never given secrets. */
  readonly onRehash?: (userId: number, outcome: 'upgraded' | 'failed', error?: unknown) => void
}

/** Which challenge the reply should carry: the one of the scheme the client used (RFC 6750 §3). */
export function presentedScheme(header: string | undefined): PresentedScheme {
  if (header === undefined) return 'none'
  return /^\s*bearer(\s|$)/i.test(header) ? 'bearer' : 'basic'
}

interface CachedCredential {
  readonly userId: number
  /** The hash the password verified against: a password change makes the entry worthless. */
  readonly passwordHash: string
  readonly cachedAt: number
  readonly untilMs: number
}

/** Bearer headers remembered with their token (at ~0.5 KB each, at most ~5 MB). */
const BEARER_HEADERS_REMEMBERED = 10_000
/** Tokens sent as the Basic username, remembered by their base64 (~1 KB each with the token, at most ~10 MB). */
const BASIC_TOKENS_REMEMBERED = 10_000
/** Distinct lengths of those base64 prefixes tried per request (tokens differ in length by their claims). */
const BASIC_PREFIX_LENGTHS = 8
/** Verified Basic credentials remembered (and as many header forms of them). */
const CREDENTIALS_REMEMBERED = 10_000

export class Authenticator {
  readonly #deps: AuthenticatorDeps
  /**
   * Verified Basic credentials, keyed by SHA-512/256(per-process random key, canonical username, NUL,
   * password): the cache holds neither a password nor anything that can be checked against one
   * without the key, which never leaves memory. An entry is honoured only while the user still has
   * the same hash, is active, and has not revoked its tokens since (log out everywhere).
   */
  readonly #credentials: BoundedMap<string, CachedCredential> | undefined
  /** 256 random bits as 43 base64url characters: a fixed-length prefix, so key and credentials cannot run into each other. */
  readonly #credentialKey = randomBytes(32).toString('base64url')
  /**
   * The same entries as #credentials, found from the Basic header's own base64 (`Basic <credentials>`
   * in the plain form), keyed by SHA-512/256(a second per-process random key, that base64): a client
   * sending the same header again costs one hash and a look-up, not the decoding, the username's
   * canonical form and a second string to hash. An entry is set only from a header whose exact text
   * took the full parse and found its credentials in #credentials, so the text names what it decodes
   * to (texts that decode alike, with or without padding, each get their own). Each hit is judged as
   * any entry is (its age, and the user's hash, status and "log out everywhere" mark as memory holds
   * them now). Holds no more than #credentials does: neither the header nor anything checkable
   * without the key (test/auth/memory-path.test.ts searches the heap for both).
   */
  readonly #credentialsByHeader: BoundedMap<string, CachedCredential> | undefined
  /**
   * Password checks in flight, by the #credentials id of what they check: a burst of requests with the
   * same credentials (every connection of a client when its entry expires) waits for the first check
   * instead of each verifying the same argon2 hash. At most one entry per check the hashing queue
   * admitted; each leaves when its check settles.
   */
  readonly #checking = new Map<string, Promise<unknown>>()
  readonly #headerKey = randomBytes(32).toString('base64url')
  /** Basic username:password may be told from memory: the credential cache is on and no login throttle is asked. */
  readonly #passwordsFromMemory: boolean
  /**
   * Bearer headers (exact text) → their token, for headers whose token memory has verified: a client
   * holding a token sends the same header every time, and parsing it again (trimming, the b64token
   * check of ~400 characters, a new token string to hash) is most of the fast path's work. Parsing is
   * pure, so this changes no answer; it holds nothing the verified-token cache does not already hold
   * (Basic headers, which may carry a password, are never remembered here).
   */
  readonly #bearerHeaders = new SuffixKeyedMap<string>(BEARER_HEADERS_REMEMBERED)
  /**
   * REST-auth's token as the Basic username, for tokens memory has verified: the base64 of the token's
   * whole 3-byte groups (the first 4*floor(length/3) characters of every `Basic` header that carries
   * it) → the token. Never the rest of the header, which encodes the token's last bytes, the ':' and
   * the password part: that part is decoded (a few bytes) on each request and kept nowhere. A client
   * sending its token this way then costs no decoding of the ~560-character credentials.
   */
  readonly #basicTokens = new SuffixKeyedMap<string>(BASIC_TOKENS_REMEMBERED)
  /** The lengths of the prefixes in #basicTokens, most recently used first. */
  readonly #basicPrefixLengths: number[] = []

  constructor(deps: AuthenticatorDeps) {
    this.#deps = deps
    this.#credentials = (deps.credentialCacheTtl ?? 0) > 0 ? new BoundedMap(CREDENTIALS_REMEMBERED) : undefined
    this.#credentialsByHeader = this.#credentials === undefined ? undefined : new BoundedMap(CREDENTIALS_REMEMBERED)
    this.#passwordsFromMemory = this.#credentials !== undefined && (deps.rateLimiter === undefined || deps.rateLimiter === NO_RATE_LIMITS)
  }

  /**
   * The keyed hash that names a cache entry. A secret-prefix hash, not an HMAC: SHA-512/256 is a
   * truncated SHA-2, which length extension cannot continue (what makes a prefix key unsafe with plain
   * SHA-256), and the digest never leaves the process. One `crypto.hash` call costs about a quarter of
   * an HMAC object per Basic request (0.8 against 3.2-4.0 µs here). NUL is in no canonical username.
   */
  #credentialId(canonical: string, password: string): string {
    return hash('sha512-256', `${this.#credentialKey}${canonical}\u0000${password}`, 'base64url')
  }

  /** The cached user for these credentials, if the entry still holds. */
  async #cachedLogin(id: string): Promise<User | undefined> {
    const entry = this.#credentials?.get(id)
    if (entry === undefined) return undefined
    const user = this.#deps.clock.now() < entry.untilMs ? await this.#deps.store.findUserById(entry.userId) : undefined
    if (user !== undefined && credentialHolds(entry, user)) return user
    this.#credentials?.delete(id)
    return undefined
  }

  /**
   * The principal of this header from memory alone, synchronously: a remembered token verification
   * with its user (or client) and revocation state cached, or cached Basic credentials. Undefined
   * whenever memory does not know for sure, or the answer would be a refusal: then `authenticate`
   * reads through and gives the reason. Basic username:password takes this path only without rate
   * limits, since the login throttle is asked (asynchronously) on every attempt.
   */
  fromMemory(header: string): Principal | undefined {
    const memory = this.#deps.memory
    if (memory === undefined) return undefined
    const seen = this.#bearerHeaders.get(header)
    if (seen !== undefined) return this.#tokenFromMemory(seen, memory)
    const credentials = this.#basicPrefixLengths.length === 0 && !this.#passwordsFromMemory ? undefined : plainBasicCredentials(header)
    let headerId: string | undefined
    if (credentials !== undefined) {
      const token = this.#basicPrefixLengths.length === 0 ? undefined : this.#rememberedBasicToken(credentials)
      if (token !== undefined) return this.#tokenFromMemory(token, memory)
      if (this.#passwordsFromMemory) {
        headerId = this.#headerId(credentials)
        const known = this.#headerLoginFromMemory(headerId, memory)
        if (known !== undefined) return known
      }
    }
    let parsed: ReturnType<typeof parseAuthorization>
    try {
      parsed = parseAuthorization(header)
    } catch {
      return undefined
    }
    if (parsed.scheme === 'bearer') {
      const principal = this.#tokenFromMemory(parsed.token, memory)
      // only verified tokens: a stream of made-up tokens cannot crowd out the clients' headers
      // the verified cache's own string for the token: each later peek then compares pointers
      if (principal !== undefined) this.#bearerHeaders.set(header, this.#deps.tokens.rememberedText(parsed.token) ?? parsed.token)
      return principal
    }
    // Only verified tokens are remembered, so a username found there is a token: asking memory first
    // skips the JWS shape check (a regular expression over ~400 characters) on the steady path.
    if (parsed.username.length > USERNAME_MAX_CODE_POINTS) {
      const known = this.#tokenFromMemory(parsed.username, memory)
      if (known !== undefined) {
        this.#rememberBasicToken(header, parsed.username)
        return known
      }
    }
    if (looksLikeJwt(parsed.username) || !this.#passwordsFromMemory) return undefined
    return this.#passwordFromMemory(parsed.username, parsed.password, memory, headerId)
  }

  /** The name of a plain Basic header's credentials in #credentialsByHeader. */
  #headerId(credentials: string): string {
    return hash('sha512-256', `${this.#headerKey}${credentials}`, 'base64url')
  }

  /** The principal of a Basic header remembered by its base64, if its entry still holds. */
  #headerLoginFromMemory(headerId: string, memory: MemoryState): UserPrincipal | undefined {
    const entry = this.#credentialsByHeader?.get(headerId)
    if (entry === undefined) return undefined
    const principal = this.#judgeCredential(entry, memory)
    // a stale entry is forgotten here; the full parse then decides (and may remember it again)
    if (principal === undefined) this.#credentialsByHeader?.delete(headerId)
    return principal
  }

  /**
   * The token these Basic credentials carry as their username, if it is one remembered: the prefix
   * matches a remembered token's base64 exactly, and the rest is strict base64 of the token's last
   * bytes, ':' and anything. Base64 decodes in independent 4-character groups, so this is what decoding
   * the whole text would give (the full parse accepts exactly these credentials, with this username).
   */
  #rememberedBasicToken(credentials: string): string | undefined {
    const lengths = this.#basicPrefixLengths
    for (let i = 0; i < lengths.length; i++) {
      const length = lengths[i] as number
      if (credentials.length <= length) continue
      const token = this.#basicTokens.get(credentials.slice(0, length))
      if (token === undefined) continue
      // the token's last bytes (at most two) and the ':' of the password part that follows
      if (!strictBase64StartsWith(credentials.slice(length), `${token.slice((length / 4) * 3)}:`)) return undefined
      if (i > 0) lengths.unshift(...lengths.splice(i, 1))
      return token
    }
    return undefined
  }

  /** After memory vouched for `token` sent as the Basic username of `header`. */
  #rememberBasicToken(header: string, token: string): void {
    const credentials = plainBasicCredentials(header)
    const whole = Math.floor(token.length / 3) * 3
    if (credentials === undefined || whole === 0) return
    // built from the token, not cut from the header: it shares no memory with the password part
    const prefix = Buffer.from(token.slice(0, whole), 'latin1').toString('base64')
    if (!credentials.startsWith(prefix)) return
    // the verified cache's own string (never cut from these credentials), else a copy of the token
    this.#basicTokens.set(prefix, this.#deps.tokens.rememberedText(token) ?? detached(token))
    const lengths = this.#basicPrefixLengths
    if (lengths.includes(prefix.length)) return
    lengths.unshift(prefix.length)
    if (lengths.length > BASIC_PREFIX_LENGTHS) lengths.pop()
  }

  #tokenFromMemory(token: string, memory: MemoryState): TokenPrincipal | undefined {
    const verified = this.#deps.tokens.peekVerified(token)
    if (verified === undefined) return undefined
    const now = memory.now()
    const subject = verified.kind === 'user' ? memory.peekUser(verified.userId, now) : memory.peekClient(verified.clientId, now)
    const state = memory.peekRevocation(verified.claims.jti, verified.claims.sid, now)
    if (subject === undefined || state === undefined) return undefined
    try {
      return judgeToken(verified, subject, state)
    } catch {
      return undefined
    }
  }

  /** `headerId`: the header's name in #credentialsByHeader (plain form only), remembered there on a hit. */
  #passwordFromMemory(username: string, password: string, memory: MemoryState, headerId: string | undefined): UserPrincipal | undefined {
    if (this.#credentials === undefined || username === '' || password === '') return undefined
    const entry = this.#credentials.get(this.#credentialId(canonicalizeUsername(username), password))
    if (entry === undefined) return undefined
    const principal = this.#judgeCredential(entry, memory)
    if (principal !== undefined && headerId !== undefined) this.#credentialsByHeader?.set(headerId, entry)
    return principal
  }

  /** A remembered login → its principal, while it holds by what memory knows of the user now. */
  #judgeCredential(entry: CachedCredential, memory: MemoryState): UserPrincipal | undefined {
    const now = this.#deps.clock.now()
    if (now >= entry.untilMs) return undefined
    const user = memory.peekUser(entry.userId)
    if (user === undefined || !credentialHolds(entry, user)) return undefined
    return { method: 'password', user, authTime: Math.floor(now / 1000) }
  }

  /** `ip`: the client address (after TRUST_PROXY), the key of login throttling. */
  async authenticate(header: string | undefined, ip = ''): Promise<Principal> {
    if (header === undefined || header.trim() === '') {
      throw new RestAuthError('authentication_required', 'This route needs a token or a username and password.')
    }
    const parsed = parseAuthorization(header)
    if (parsed.scheme === 'bearer') return this.#byToken(parsed.token)
    // REST-auth: a token in the username position, any password. A token cannot be a username
    // (usernames are at most 32 characters and never hold a JWS's shape at that length).
    if (looksLikeJwt(parsed.username)) return this.#byToken(detached(parsed.username))
    return this.#byPassword(parsed.username, parsed.password, ip)
  }

  async #byToken(token: string): Promise<Principal> {
    const verified = await this.#deps.tokens.verify(token)
    return this.resolve(verified)
  }

  /**
   * A verified token → its principal, if it is still good: its user or client exists, and it was
   * not revoked by `jti`, by the user's "tokens valid after" mark, or with its refresh family
   * (RFC 7009). Fails closed: a store error propagates as a 503, never as a pass.
   */
  async resolve(verified: VerifiedToken): Promise<TokenPrincipal> {
    const { store } = this.#deps
    const claims = verified.claims
    const [subject, state] = await Promise.all([
      verified.kind === 'user' ? store.findUserById(verified.userId) : store.findClient(verified.clientId),
      store.revocationState(claims.jti, claims.sid),
    ])
    return judgeToken(verified, subject, state)
  }

  /**
   * Unknown user and wrong password are indistinguishable: both verify one argon2 hash (a dummy for
   * unknown users) and throw the same error with the same text (house style convention 14).
   */
  async #byPassword(username: string, password: string, ip: string): Promise<UserPrincipal & { method: 'password' }> {
    const { clock } = this.#deps
    const limiter = this.#deps.rateLimiter ?? NO_RATE_LIMITS
    const canonical = canonicalizeUsername(username)
    // Throttled attempts are refused before any lookup or hashing, and are not counted.
    await limiter.checkLogin(canonical, ip)
    const cacheId = this.#credentials === undefined ? undefined : this.#credentialId(canonical, password)
    if (cacheId === undefined) return this.#checkPassword(username, canonical, password, ip, undefined)
    // after the throttle: a cache hit must not become a free oracle for a throttled guesser
    let cached = await this.#cachedLogin(cacheId)
    const inFlight = cached === undefined ? this.#checking.get(cacheId) : undefined
    if (inFlight !== undefined) {
      // The same credentials are being checked already (a client's burst when its entry expired): wait
      // for that check and look again, so one argon2 verification serves them all. Only a success is
      // shared, through the cache; after a failure each request checks and counts for itself.
      await inFlight.catch(() => {})
      cached = await this.#cachedLogin(cacheId)
    }
    if (cached !== undefined) {
      await limiter.loginSucceeded(canonical, ip)
      return { method: 'password', user: cached, authTime: Math.floor(clock.now() / 1000) }
    }
    const check = this.#checkPassword(username, canonical, password, ip, cacheId)
    if (!this.#checking.has(cacheId)) {
      this.#checking.set(cacheId, check)
      const done = () => {
        if (this.#checking.get(cacheId) === check) this.#checking.delete(cacheId)
      }
      check.then(done, done)
    }
    return check
  }

  /** The full check: the user's hash (a dummy for unknown users) verified, the outcome counted and remembered. */
  async #checkPassword(username: string, canonical: string, password: string, ip: string, cacheId: string | undefined): Promise<UserPrincipal & { method: 'password' }> {
    const { store, hasher, clock } = this.#deps
    const limiter = this.#deps.rateLimiter ?? NO_RATE_LIMITS
    const plausible = username !== '' && password !== '' && [...canonical].length <= USERNAME_MAX_CODE_POINTS
    const user = plausible ? await store.findUserByCanonicalName(canonical) : undefined
    const ok = user === undefined ? await hasher.verifyDummy(password) : await hasher.verify(user.passwordHash, password)
    if (!ok || user === undefined) {
      await limiter.loginFailed(canonical, ip)
      throw new RestAuthError('invalid_credentials', 'The username or password is incorrect.')
    }
    await limiter.loginSucceeded(canonical, ip)
    // Only once the password is proven does the caller learn the account's state.
    if (user.status === 'pending') throw new RestAuthError('account_pending', 'This account waits for an administrator to approve it.')
    if (user.status === 'disabled') throw new RestAuthError('account_disabled', 'This account has been disabled by an administrator.')
    if (hasher.needsRehash(user.passwordHash)) await this.#upgradeHash(user, password)
    else if (cacheId !== undefined) {
      const now = clock.now()
      this.#credentials?.set(cacheId, {
        userId: user.id,
        passwordHash: user.passwordHash,
        cachedAt: now,
        untilMs: now + (this.#deps.credentialCacheTtl ?? 0) * 1000,
      })
    }
    return { method: 'password', user, authTime: Math.floor(clock.now() / 1000) }
  }

  /** Password check alone (OAuth password grant): same timing and errors as Basic. */
  async verifyPassword(username: string, password: string, ip = ''): Promise<User> {
    const principal = await this.#byPassword(username, password, ip)
    return principal.user
  }

  async #upgradeHash(user: User, password: string): Promise<void> {
    const { store, hasher, clock, onRehash } = this.#deps
    try {
      const next = await hasher.hash(password)
      await store.replacePasswordHash(user.id, user.passwordHash, next, clock.now())
      onRehash?.(user.id, 'upgraded')
    } catch (error) {
      // The login itself succeeded; the upgrade is retried at the next login.
      onRehash?.(user.id, 'failed', error)
    }
  }
}

/** A verified token, its subject as stored (or undefined: gone) and its revocation state → its principal. */
function judgeToken(verified: VerifiedToken, subject: User | OAuthClient | undefined, state: RevocationState): TokenPrincipal {
  if (subject === undefined) {
    throw new RestAuthError('token_invalid', 'The token is not valid.', { internal: 'token subject no longer exists' })
  }
  if (state.jtiRevoked || state.familyRevoked) throw revoked()
  const claims = verified.claims
  if (verified.kind === 'client') return { method: 'client_token', client: subject as OAuthClient, claims }
  const user = subject as User
  // A disabled user's tokens were revoked when it was disabled; the status check keeps them dead
  // even for a token issued in the same second.
  if (claims.iat < user.tokensValidAfter || user.status !== 'active') throw revoked()
  return { method: 'token', user, authTime: verified.claims.auth_time, claims }
}

/** A remembered Basic login still holds: same hash, still active, no "log out everywhere" since. */
function credentialHolds(entry: CachedCredential, user: User): boolean {
  return user.passwordHash === entry.passwordHash && user.status === 'active' && user.tokensValidAfter * 1000 <= entry.cachedAt
}

function revoked(): RestAuthError {
  return new RestAuthError('token_revoked', 'The token has been revoked.')
}
