/**
 * Every setting of rest-auth: its environment name, CLI flag, default, parser and documentation.
 * `docs/configuration.md` is generated from this table (`npm run docs`) and a test checks it is in sync.
 * Pure: no `process.env` here (only `config/load.ts` reads the environment).
 */
import { isIP } from 'node:net'
import { PASSWORD_POLICIES, type PasswordPolicyName } from '../passwords/policy.ts'

export type RegistrationPolicy = 'open' | 'approval' | 'closed'
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface Config {
  readonly host: string
  readonly port: number
  readonly databaseUrl: string
  readonly redisUrl: string | undefined
  readonly publicUrl: string
  readonly tokenTtl: number
  readonly tokenRenewalLimit: number
  readonly tokenAudience: string
  readonly clockLeeway: number
  readonly passwordPolicy: PasswordPolicyName
  readonly registration: RegistrationPolicy
  readonly rateLimits: boolean
  readonly trustProxy: readonly string[]
  readonly logLevel: LogLevel
  readonly argon2MemoryKib: number
  readonly argon2Iterations: number
  readonly argon2Parallelism: number
  /** 0: auto (see hashConcurrencyFor). */
  readonly hashConcurrency: number
  /** Nice value of libuv's pool threads on Linux (cli/pool-priority.ts); 0 leaves them alone. */
  readonly hashNice: number
  readonly hashQueue: number
  readonly production: boolean
  readonly allowLegacyInProduction: boolean
  readonly passwordGrant: boolean
  readonly refreshTokenTtl: number
  readonly refreshIdleTtl: number
  readonly refreshGrace: number
  readonly jwksMaxAge: number
  readonly usernameAllow: readonly string[]
  readonly inviteTtl: number
  readonly auditRetentionDays: number
  readonly tlsCertFile: string | undefined
  readonly tlsKeyFile: string | undefined
  readonly requireHttps: boolean
  readonly corsOrigins: readonly string[]
  readonly allowInsecureProduction: boolean
  readonly tokenCacheSize: number
  readonly credentialCacheTtl: number
  readonly statePollMs: number
  /** 0 = one per core. */
  readonly workers: number
}

export class ConfigError extends Error {
  readonly key: string

  constructor(key: string, message: string) {
    super(`${key}: ${message}`)
    this.key = key
    this.name = 'ConfigError'
  }
}

/** What a parser gets: the raw string and, for defaults that depend on other keys, the values parsed so far. */
type Parser<T> = (raw: string, key: string) => T

export interface Setting<K extends keyof Config = keyof Config> {
  readonly key: K
  readonly env: string
  /** Default as written in the docs; `undefined` means unset. Derived defaults are computed in load. */
  readonly default: string | undefined
  readonly defaultDoc?: string
  readonly doc: string
  readonly parse: Parser<Config[K]>
}

// ---- parsers (pure) ----

function intIn(min: number, max: number): Parser<number> {
  return (raw, key) => {
    if (!/^\d+$/.test(raw.trim())) throw new ConfigError(key, `must be a whole number, got "${raw}"`)
    const n = Number(raw.trim())
    if (n < min || n > max) throw new ConfigError(key, `must be between ${min} and ${max}, got ${n}`)
    return n
  }
}

function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return (raw, key) => {
    const v = raw.trim().toLowerCase()
    const found = values.find((x) => x === v)
    if (found === undefined) throw new ConfigError(key, `must be one of ${values.join(', ')}, got "${raw}"`)
    return found
  }
}

const onOff: Parser<boolean> = (raw, key) => {
  const v = raw.trim().toLowerCase()
  if (['on', 'true', '1', 'yes'].includes(v)) return true
  if (['off', 'false', '0', 'no'].includes(v)) return false
  throw new ConfigError(key, `must be on or off, got "${raw}"`)
}

const nonEmpty: Parser<string> = (raw, key) => {
  if (raw.trim() === '') throw new ConfigError(key, 'must not be empty')
  return raw.trim()
}

const url =
  (protocols: readonly string[]): Parser<string> =>
  (raw, key) => {
    let parsed: URL
    try {
      parsed = new URL(raw.trim())
    } catch {
      // The value may hold a password (postgres://user:secret@...): never echo the userinfo.
      throw new ConfigError(key, `must be an absolute URL, got "${raw.replace(/\/\/.*@/, '//[redacted]@')}"`)
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(key, `must use ${protocols.join(' or ')}, got "${parsed.protocol}"`)
    }
    return raw.trim()
  }

const publicUrl: Parser<string> = (raw, key) => {
  const value = url(['http:', 'https:'])(raw, key)
  const parsed = new URL(value)
  if (parsed.search !== '' || parsed.hash !== '') throw new ConfigError(key, 'must not have a query or fragment')
  if (parsed.username !== '' || parsed.password !== '') throw new ConfigError(key, 'must not hold credentials')
  return value.replace(/\/+$/, '')
}

const databaseUrl: Parser<string> = (raw, key) => {
  const v = raw.trim()
  if (v.startsWith('sqlite:')) {
    if (v.length === 'sqlite:'.length) throw new ConfigError(key, 'sqlite: needs a file path, e.g. sqlite:./data/rest-auth.db')
    return v
  }
  if (v.startsWith('postgres://') || v.startsWith('postgresql://')) return url(['postgres:', 'postgresql:'])(v, key)
  throw new ConfigError(key, `must be sqlite:<path> or postgres://..., got "${raw.split('@').pop() ?? ''}"`)
}

/** An IPv4/IPv6 address, optionally with a prefix length in range (what Fastify's proxy-addr accepts). */
function isAddressOrCidr(item: string): boolean {
  const slash = item.indexOf('/')
  const version = isIP(slash < 0 ? item : item.slice(0, slash))
  if (version === 0) return false
  if (slash < 0) return true
  const prefix = item.slice(slash + 1)
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128)
}
const trustProxy: Parser<readonly string[]> = (raw, key) => {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  for (const item of items) {
    if (item === '*' || item.toLowerCase() === 'true') {
      throw new ConfigError(key, 'trusting every address is refused; list the proxy addresses or CIDRs (ASVS 4.1.3)')
    }
    const named = ['loopback', 'linklocal', 'uniquelocal'].includes(item)
    if (!named && !isAddressOrCidr(item)) {
      throw new ConfigError(key, `"${item}" is not an IP address, a CIDR, or one of loopback, linklocal, uniquelocal`)
    }
  }
  return items
}

/** `AUTH_USERNAME_ALLOW`: comma-separated glob patterns (`*`, `?`); validated here, compiled in users/. */
const usernamePatterns: Parser<readonly string[]> = (raw, key) => {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (items.length === 0) throw new ConfigError(key, 'must list at least one pattern, e.g. *@example.com')
  for (const item of items) {
    if (/[\s:]/u.test(item) || /\p{Cc}/u.test(item)) {
      throw new ConfigError(key, `"${item}" cannot match a username (no spaces, ':' or control characters)`)
    }
  }
  return items
}

/** `CORS_ORIGINS`: exact origins (scheme, host, port), never `*`. */
const origins: Parser<readonly string[]> = (raw, key) => {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  for (const item of items) {
    if (item === '*' || item === 'null') throw new ConfigError(key, `"${item}" is refused: list the exact origins allowed`)
    let parsed: URL
    try {
      parsed = new URL(item)
    } catch {
      throw new ConfigError(key, `"${item}" is not an origin such as https://app.example.com`)
    }
    if ((parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.origin !== item.replace(/\/$/, '')) {
      throw new ConfigError(key, `"${item}" is not an origin such as https://app.example.com (scheme, host and port only)`)
    }
  }
  return items.map((i) => i.replace(/\/$/, ''))
}

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** The table. Order is the order of the docs. */
export const SETTINGS: readonly Setting[] = [
  { key: 'host', env: 'HOST', default: '127.0.0.1', doc: 'Listen address.', parse: nonEmpty },
  { key: 'port', env: 'PORT', default: '5000', doc: "Listen port (REST-auth's). `0` picks a free port.", parse: intIn(0, 65535) },
  {
    key: 'databaseUrl',
    env: 'DATABASE_URL',
    default: 'sqlite:./data/rest-auth.db',
    doc: '`sqlite:<path>` (created on first start) or `postgres://user@host:port/db`. A `?schema=NAME` parameter on a PostgreSQL URL keeps rest-auth\'s tables in that schema (created if missing).',
    parse: databaseUrl,
  },
  {
    key: 'redisUrl',
    env: 'REDIS_URL',
    default: undefined,
    doc: '`redis://` or `rediss://` URL: rate-limit counters live in Redis, so several instances share one count. Unset: counters live in each process.',
    parse: url(['redis:', 'rediss:']),
  },
  {
    key: 'publicUrl',
    env: 'PUBLIC_URL',
    default: undefined,
    defaultDoc: '`http://<HOST>:<PORT>`',
    doc: 'Base of `Location` headers and the token issuer (`iss`). Set it to the address clients use when running behind a proxy.',
    parse: publicUrl,
  },
  {
    key: 'tokenTtl',
    env: 'AUTH_TOKEN_TTL',
    default: '600',
    doc: 'Access-token lifetime in seconds (`duration` in `/api/token`).',
    parse: intIn(30, 86_400),
  },
  {
    key: 'tokenRenewalLimit',
    env: 'AUTH_TOKEN_RENEWAL_LIMIT',
    default: '86400',
    doc: 'Seconds after the password was last presented during which a token can renew itself at `/api/token`. New tokens never outlive this limit.',
    parse: intIn(60, 30 * 86_400),
  },
  {
    key: 'tokenAudience',
    env: 'AUTH_TOKEN_AUDIENCE',
    default: undefined,
    defaultDoc: 'the public URL',
    doc: 'The `aud` claim of access tokens; resource servers check it.',
    parse: nonEmpty,
  },
  {
    key: 'clockLeeway',
    env: 'AUTH_CLOCK_LEEWAY',
    default: '30',
    doc: 'Seconds of clock skew tolerated when checking `exp`, `nbf` and `iat` (RFC 7519 §4.1.4).',
    parse: intIn(0, 300),
  },
  {
    key: 'passwordPolicy',
    env: 'AUTH_PASSWORD_POLICY',
    default: 'standard',
    doc: '`standard` (at least 8 characters, not a common password, not the username), `strict` (NIST SP 800-63B-4 single-factor: at least 15), `legacy` (any non-empty password: REST-auth behaviour, for compatibility and imports).',
    parse: oneOf(PASSWORD_POLICIES),
  },
  {
    key: 'registration',
    env: 'AUTH_REGISTRATION',
    default: 'open',
    doc: '`open` (anyone may register, as REST-auth), `approval` (new users are created `pending` and cannot get tokens until an admin approves them) or `closed` (only admins create users, or a user registers with an invite code an admin issued; otherwise 403 `registration_closed`). An invite works under every policy and skips approval.',
    parse: oneOf<RegistrationPolicy>(['open', 'approval', 'closed']),
  },
  {
    key: 'usernameAllow',
    env: 'AUTH_USERNAME_ALLOW',
    default: undefined,
    doc: 'Comma-separated patterns that self-registered usernames must match (compared case-insensitively; `*` any run of characters, `?` one), e.g. `*@example.com,*@example.org`. Unset: every valid username. Admins and the CLI may create users outside the list.',
    parse: usernamePatterns,
  },
  {
    key: 'inviteTtl',
    env: 'AUTH_INVITE_TTL',
    default: '604800',
    doc: 'Default lifetime of an invite code in seconds (7 days); `invite create --expires-in` and the admin API can set another.',
    parse: intIn(60, 365 * 86_400),
  },
  {
    key: 'auditRetentionDays',
    env: 'AUTH_AUDIT_RETENTION',
    default: '90',
    doc: 'Days the audit log keeps an entry; older entries are purged. `0` keeps them forever.',
    parse: intIn(0, 36_500),
  },
  {
    key: 'rateLimits',
    env: 'AUTH_RATE_LIMITS',
    default: 'on',
    doc: '`off` disables every rate limit: login throttling, and the limits on registration, refresh and introspection (load tests, benchmarks, trusted networks). The password-hash queue (below) is always on.',
    parse: onOff,
  },
  {
    key: 'trustProxy',
    env: 'TRUST_PROXY',
    default: undefined,
    doc: 'Comma-separated addresses or CIDRs of trusted reverse proxies (or `loopback`); only their `X-Forwarded-*` headers count. Trusting everyone is refused.',
    parse: trustProxy,
  },
  {
    key: 'passwordGrant',
    env: 'AUTH_PASSWORD_GRANT',
    default: 'on',
    doc: '`grant_type=password` at `POST /oauth/token`, for first-party clients. `off` removes it (RFC 9700 §2.4 advises against it for third parties); `GET /api/token` always exists.',
    parse: onOff,
  },
  {
    key: 'refreshTokenTtl',
    env: 'AUTH_REFRESH_TOKEN_TTL',
    default: '2592000',
    doc: 'Absolute lifetime of a refresh-token family in seconds (30 days), counted from the password login.',
    parse: intIn(60, 365 * 86_400),
  },
  {
    key: 'refreshIdleTtl',
    env: 'AUTH_REFRESH_IDLE_TTL',
    default: '604800',
    doc: 'A refresh token unused for this many seconds expires (7 days).',
    parse: intIn(60, 365 * 86_400),
  },
  {
    key: 'refreshGrace',
    env: 'AUTH_REFRESH_GRACE',
    default: '10',
    doc: 'Seconds during which a just-rotated refresh token presented again returns the same successor instead of revoking the family (concurrent refreshes). `0` turns the window off.',
    parse: intIn(0, 300),
  },
  {
    key: 'jwksMaxAge',
    env: 'AUTH_JWKS_MAX_AGE',
    default: '300',
    doc: '`Cache-Control: max-age` of `/.well-known/jwks.json` in seconds; `keys rotate` publishes a new key this long before it signs.',
    parse: intIn(0, 86_400),
  },
  {
    key: 'tlsCertFile',
    env: 'TLS_CERT_FILE',
    default: undefined,
    doc: 'Path of a PEM certificate (chain): with `TLS_KEY_FILE`, rest-auth serves HTTPS itself and sends HSTS.',
    parse: nonEmpty,
  },
  {
    key: 'tlsKeyFile',
    env: 'TLS_KEY_FILE',
    default: undefined,
    doc: 'Path of the PEM private key of `TLS_CERT_FILE`.',
    parse: nonEmpty,
  },
  {
    key: 'requireHttps',
    env: 'AUTH_REQUIRE_HTTPS',
    default: undefined,
    defaultDoc: '`on` with `NODE_ENV=production`, else `off`',
    doc: '`on` refuses credentials (an `Authorization` header, or a body to an `/api/` or `/oauth/` route) sent over plain HTTP with 403 `https_required` (on `/oauth/` routes an RFC 6749 body, `invalid_request`), never a redirect. Requests from loopback addresses are allowed, for development. Behind a TLS-terminating proxy, list it in `TRUST_PROXY` so its `X-Forwarded-Proto` counts.',
    parse: onOff,
  },
  {
    key: 'corsOrigins',
    env: 'CORS_ORIGINS',
    default: undefined,
    doc: 'Comma-separated origins (`https://app.example.com`) whose browser scripts may call the API (CORS). Unset: no CORS headers at all. Preflight `OPTIONS` requests need no credentials.',
    parse: origins,
  },
  {
    key: 'allowInsecureProduction',
    env: 'AUTH_ALLOW_INSECURE_PRODUCTION',
    default: 'off',
    doc: 'Explicit override that lets `NODE_ENV=production` start with `AUTH_REQUIRE_HTTPS=off` or `AUTH_RATE_LIMITS=off`.',
    parse: onOff,
  },
  {
    key: 'tokenCacheSize',
    env: 'AUTH_TOKEN_CACHE_SIZE',
    default: '10000',
    doc: 'Verified access tokens remembered per process (each until its `exp`), so a known token costs no signature check. Revocation is still checked on every request. `0` turns the cache off.',
    parse: intIn(0, 10_000_000),
  },
  {
    key: 'credentialCacheTtl',
    env: 'AUTH_CREDENTIAL_CACHE_TTL',
    default: '60',
    doc: 'Seconds a verified Basic username:password is remembered per process (keyed by a SHA-512/256 hash behind a random key that never leaves memory), so repeated Basic requests skip argon2. Dropped at once on password change, disable, deletion or revoke-all. Trade-off: for that long a password stays valid on an instance after it changed elsewhere only until the change feed (below) tells it, and a memory dump of the process could confirm a guessed password. `0` turns it off.',
    parse: intIn(0, 3_600),
  },
  {
    key: 'statePollMs',
    env: 'AUTH_STATE_POLL_MS',
    default: '250',
    doc: 'How often each process reads the database\'s change log to drop cached users, revocations and keys that another instance or the CLI changed. On PostgreSQL a commit also wakes every process at once (LISTEN/NOTIFY), so this is the bound only while that connection is down; on SQLite it is the bound. `0` turns off the user and revocation cache: every request reads the database.',
    parse: intIn(0, 10_000),
  },
  {
    key: 'workers',
    env: 'WORKERS',
    default: 'auto',
    defaultDoc: '`auto` (one per core)',
    doc: 'Server processes (`serve --workers N`, node:cluster) sharing the port; `auto` is one per core (a machine with one core runs a single process, no primary). Keys, revocation and cache invalidation are shared through the database and at once between workers; rate-limit counters through the primary process (or Redis). `1` runs a single process.',
    parse: (raw, key) => (raw.trim().toLowerCase() === 'auto' ? 0 : intIn(1, 64)(raw, key)),
  },
  { key: 'logLevel', env: 'LOG_LEVEL', default: 'info', doc: 'pino log level.', parse: oneOf(LOG_LEVELS) },
  {
    key: 'argon2MemoryKib',
    env: 'AUTH_ARGON2_MEMORY',
    default: '19456',
    doc: 'argon2id memory cost in KiB (OWASP floor 19456). Hashes below the current parameters are upgraded at the next login.',
    parse: intIn(8, 4 * 1024 * 1024),
  },
  {
    key: 'argon2Iterations',
    env: 'AUTH_ARGON2_ITERATIONS',
    default: '2',
    doc: 'argon2id time cost (passes).',
    parse: intIn(1, 100),
  },
  {
    key: 'argon2Parallelism',
    env: 'AUTH_ARGON2_PARALLELISM',
    default: '1',
    doc: 'argon2id parallelism (lanes).',
    parse: intIn(1, 16),
  },
  {
    key: 'hashConcurrency',
    env: 'AUTH_HASH_CONCURRENCY',
    default: 'auto',
    defaultDoc: '`auto`',
    doc: 'Password hashes computed at once per process. `auto`: the cores left after one per worker\'s event loop, divided among the workers (at least 1, at most 3), so a flood of password checks never takes the cores the token path runs on, and a libuv pool thread stays free of argon2 (one process on 2 cores: 1; on 4 cores: 3). A number overrides it; keep it below libuv\'s 4 pool threads (`UV_THREADPOOL_SIZE`).',
    parse: (raw, key) => (raw.trim().toLowerCase() === 'auto' ? 0 : intIn(1, 64)(raw, key)),
  },
  {
    key: 'hashNice',
    env: 'AUTH_HASH_NICE',
    default: '10',
    doc: 'Linux: the nice value of libuv\'s pool threads, where argon2 runs (0 to 19; 0 leaves them alone). When password checks and requests with tokens want more CPU than there is, the kernel runs the event loop first and the hashes get what is left; with cores to spare it changes nothing. Other pool work (async file and DNS calls) runs at the same priority.',
    parse: intIn(0, 19),
  },
  {
    key: 'hashQueue',
    env: 'AUTH_HASH_QUEUE',
    default: '64',
    doc: 'Password checks that may wait for a hashing slot; beyond that requests get 503 `overloaded` with `Retry-After`.',
    parse: intIn(0, 100_000),
  },
  {
    key: 'production',
    env: 'NODE_ENV',
    default: undefined,
    doc: '`production` turns on the production checks: the `legacy` password policy is refused unless `AUTH_ALLOW_LEGACY_PASSWORDS=on`.',
    parse: (raw) => raw.trim() === 'production',
  },
  {
    key: 'allowLegacyInProduction',
    env: 'AUTH_ALLOW_LEGACY_PASSWORDS',
    default: 'off',
    doc: 'Explicit override that allows `AUTH_PASSWORD_POLICY=legacy` in production.',
    parse: onOff,
  },
]

/** `DATABASE_URL` → `--database-url`. */
export function flagName(setting: Setting): string {
  return setting.env.toLowerCase().replace(/_/g, '-')
}
