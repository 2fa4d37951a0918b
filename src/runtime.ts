/** Composition of the services one server process uses. No I/O at construction; `init()` does it. */
import { availableParallelism } from 'node:os'
import type { Clock } from './clock.ts'
import type { Config } from './config/schema.ts'
import { Authenticator } from './auth/authenticate.ts'
import { PasswordHasher } from './passwords/hash.ts'
import { BoundedLimiter, hashConcurrencyFor } from './passwords/limiter.ts'
import type { Store } from './store/store.ts'
import { CachingStore } from './state/caching-store.ts'
import { Keyring } from './tokens/keyring.ts'
import { TokenService } from './tokens/tokens.ts'
import type { RegistrationDeps } from './users/register.ts'
import { OAuthService } from './oauth/service.ts'
import { AuditLog } from './audit/audit.ts'
import { AccountService } from './users/accounts.ts'
import { compileAllowList } from './users/username-allow.ts'
import { type CounterStore, MemoryCounterStore } from './ratelimit/counters.ts'
import { CountingRateLimiter, NO_RATE_LIMITS, type RateLimiter } from './ratelimit/throttle.ts'

/** Audit entries of a server are written in batches at most this old (see AuditLog). */
const AUDIT_BATCH_MS = 100

export interface Runtime {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly hasher: PasswordHasher
  readonly keyring: Keyring
  readonly tokens: TokenService
  readonly authenticator: Authenticator
  readonly registration: RegistrationDeps
  readonly oauth: OAuthService
  readonly audit: AuditLog
  readonly accounts: AccountService
  readonly rateLimiter: RateLimiter
  init(): Promise<void>
  /** Releases what init() and the services opened (the shared counters' connection). */
  close(): Promise<void>
}

export interface RuntimeOptions {
  readonly onRehash?: (userId: number, outcome: 'upgraded' | 'failed', error?: unknown) => void
  /** Where rate-limit counters live; default in memory (one instance). Ignored with AUTH_RATE_LIMITS=off. */
  readonly counters?: CounterStore
  /** A failed audit write (the action itself went through). */
  readonly onAuditError?: (error: unknown, event: string) => void
}

export function createRuntime(config: Config, store: Store, clock: Clock, options: RuntimeOptions = {}): Runtime {
  // auto (0) here means one process; `serve` resolves it for its workers before building the app
  const concurrency = config.hashConcurrency === 0 ? hashConcurrencyFor(availableParallelism(), 1) : config.hashConcurrency
  const limiter = new BoundedLimiter(concurrency, config.hashQueue)
  const hasher = new PasswordHasher(
    { memoryKib: config.argon2MemoryKib, iterations: config.argon2Iterations, parallelism: config.argon2Parallelism },
    limiter,
  )
  const keyring = new Keyring(store, clock, (config.tokenTtl + config.clockLeeway) * 1000)
  const tokens = new TokenService(keyring, clock, {
    issuer: config.publicUrl,
    audience: config.tokenAudience,
    ttl: config.tokenTtl,
    renewalLimit: config.tokenRenewalLimit,
    clockLeeway: config.clockLeeway,
    verifiedCacheSize: config.tokenCacheSize,
  })
  const counters = config.rateLimits ? (options.counters ?? new MemoryCounterStore()) : undefined
  const rateLimiter = counters === undefined ? NO_RATE_LIMITS : new CountingRateLimiter(counters, clock)
  const authenticator = new Authenticator({
    store,
    hasher,
    tokens,
    clock,
    rateLimiter,
    credentialCacheTtl: config.credentialCacheTtl,
    ...(store instanceof CachingStore ? { memory: store } : {}),
    ...(options.onRehash ? { onRehash: options.onRehash } : {}),
  })
  const audit = new AuditLog(store, clock, options.onAuditError, { batchMs: AUDIT_BATCH_MS })
  const oauth = new OAuthService({
    audit,
    rateLimiter,
    store,
    tokens,
    authenticator,
    clock,
    settings: {
      passwordGrant: config.passwordGrant,
      refresh: {
        absoluteMs: config.refreshTokenTtl * 1000,
        idleMs: config.refreshIdleTtl * 1000,
        graceMs: config.refreshGrace * 1000,
      },
    },
  })
  const accounts = new AccountService({
    store,
    hasher,
    clock,
    audit,
    rateLimiter,
    passwordPolicy: config.passwordPolicy,
    inviteTtl: config.inviteTtl,
  })
  return {
    config,
    oauth,
    audit,
    accounts,
    rateLimiter,
    store,
    clock,
    hasher,
    keyring,
    tokens,
    authenticator,
    registration: {
      store,
      hasher,
      clock,
      audit,
      passwordPolicy: config.passwordPolicy,
      registration: config.registration,
      usernameAllowed: compileAllowList(config.usernameAllow),
      usernamePatterns: config.usernameAllow,
    },
    async init() {
      await Promise.all([keyring.init(), hasher.init(), oauth.init()])
    },
    async close() {
      await audit.flush()
      await counters?.close()
    },
  }
}
