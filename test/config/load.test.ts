/**
 * loadConfig: contract §2 defaults, validation at boot naming the variable, flags over environment,
 * unsafe combinations refused (house style §2.13).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../src/config/load.ts'
import { ConfigError, SETTINGS } from '../../src/config/schema.ts'

function throwsConfig(env: Record<string, string>, variable: string, message?: RegExp): ConfigError {
  let caught: unknown
  try {
    loadConfig({ env })
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError for ${JSON.stringify(env)}, got ${String(caught)}`)
  assert.equal(caught.key, variable, `wrong variable for ${JSON.stringify(env)}`)
  assert.match(caught.message, new RegExp(`^${variable}: `), 'the message starts with the variable name')
  if (message !== undefined) assert.match(caught.message, message)
  return caught
}

test('config: defaults are those of contract §2', () => {
  const { config, warnings } = loadConfig({ env: {} })
  assert.equal(config.host, '127.0.0.1')
  assert.equal(config.port, 5000)
  assert.equal(config.databaseUrl, 'sqlite:./data/rest-auth.db')
  assert.equal(config.redisUrl, undefined)
  assert.equal(config.publicUrl, 'http://127.0.0.1:5000')
  assert.equal(config.tokenTtl, 600)
  assert.equal(config.clockLeeway, 30)
  assert.equal(config.passwordPolicy, 'standard')
  assert.equal(config.registration, 'open')
  assert.equal(config.rateLimits, true)
  assert.deepEqual(config.trustProxy, [])
  assert.equal(config.logLevel, 'info')
  // Not in the contract, documented in docs/configuration.md.
  assert.equal(config.tokenRenewalLimit, 86_400)
  assert.equal(config.tokenAudience, 'http://127.0.0.1:5000')
  assert.equal(config.argon2MemoryKib, 19_456)
  assert.equal(config.argon2Iterations, 2)
  assert.equal(config.production, false)
  assert.equal(config.allowLegacyInProduction, false)
  assert.deepEqual(warnings, [], 'safe defaults announce nothing')
})

test('config: loadConfig() without options reads process.env (the only reader of the environment)', () => {
  const saved = process.env['AUTH_TOKEN_TTL']
  process.env['AUTH_TOKEN_TTL'] = '1234'
  try {
    assert.equal(loadConfig().config.tokenTtl, 1234)
    assert.equal(loadConfig({ env: {} }).config.tokenTtl, 600, 'an explicit env replaces process.env')
  } finally {
    if (saved === undefined) delete process.env['AUTH_TOKEN_TTL']
    else process.env['AUTH_TOKEN_TTL'] = saved
  }
})

test('config: valid values are parsed (numbers trimmed, enumerations case-insensitive, on/off synonyms)', () => {
  const { config } = loadConfig({
    env: {
      HOST: '0.0.0.0',
      PORT: ' 8080 ',
      DATABASE_URL: 'postgres://app@db.internal:5432/auth?schema=auth',
      AUTH_TOKEN_TTL: '3600',
      AUTH_CLOCK_LEEWAY: '0',
      AUTH_PASSWORD_POLICY: 'STRICT',
      AUTH_REGISTRATION: 'closed',
      AUTH_RATE_LIMITS: 'off',
      TRUST_PROXY: '10.0.0.0/8, 192.168.1.1,::1,fd00::/8,loopback',
      LOG_LEVEL: 'debug',
    },
  })
  assert.equal(config.host, '0.0.0.0')
  assert.equal(config.port, 8080)
  assert.equal(config.databaseUrl, 'postgres://app@db.internal:5432/auth?schema=auth')
  assert.equal(config.tokenTtl, 3600)
  assert.equal(config.clockLeeway, 0)
  assert.equal(config.passwordPolicy, 'strict')
  assert.equal(config.registration, 'closed')
  assert.equal(config.rateLimits, false)
  assert.deepEqual(config.trustProxy, ['10.0.0.0/8', '192.168.1.1', '::1', 'fd00::/8', 'loopback'])
  assert.equal(config.logLevel, 'debug')
  for (const [raw, value] of [['on', true], ['TRUE', true], ['1', true], ['yes', true], ['off', false], ['false', false], ['0', false], ['No', false]] as const) {
    assert.equal(loadConfig({ env: { AUTH_RATE_LIMITS: raw } }).config.rateLimits, value, raw)
  }
})

test('config: an empty variable counts as unset (shells export VAR= by accident)', () => {
  assert.equal(loadConfig({ env: { PORT: '', AUTH_TOKEN_TTL: '' } }).config.port, 5000)
  assert.equal(loadConfig({ env: { AUTH_TOKEN_TTL: '' } }).config.tokenTtl, 600)
})

/** Invalid values per variable; each must throw a ConfigError naming the variable. */
const INVALID: Readonly<Record<string, readonly string[]>> = {
  HOST: ['   '],
  PORT: ['abc', '-1', '65536', '80.5', '1e3', '0x50', '８０'],
  DATABASE_URL: ['sqlite:', 'mysql://localhost/db', './data/x.db', 'postgres://host:notaport/db', 'http://x'],
  REDIS_URL: ['localhost:6379', 'http://redis', 'redis://host:notaport'],
  PUBLIC_URL: ['example.com', 'ftp://example.com', 'https://user:pw@example.com', 'https://example.com/?a=1', 'https://example.com/#x', '/relative'],
  AUTH_TOKEN_TTL: ['abc', '600s', '-600', '29', '86401', '6.5', ''.padEnd(3, ' ')],
  AUTH_TOKEN_RENEWAL_LIMIT: ['abc', '59', String(30 * 86_400 + 1)],
  AUTH_TOKEN_AUDIENCE: ['  '],
  AUTH_CLOCK_LEEWAY: ['abc', '-1', '301', '1.5'],
  AUTH_PASSWORD_POLICY: ['weird', 'none', 'standard,legacy'],
  AUTH_REGISTRATION: ['maybe', 'opened'],
  AUTH_RATE_LIMITS: ['maybe', 'enabled', '2'],
  TRUST_PROXY: ['*', 'true', 'TRUE', '10.0.0.1,*', 'everyone', '999.1.1.1', '10.0.0.0/33', '::1/129', '1:2', 'example.com'],
  AUTH_PASSWORD_GRANT: ['maybe'],
  AUTH_REFRESH_TOKEN_TTL: ['abc', '59'],
  AUTH_REFRESH_IDLE_TTL: ['abc', '59'],
  AUTH_REFRESH_GRACE: ['abc', '301'],
  AUTH_JWKS_MAX_AGE: ['abc', '86401'],
  AUTH_USERNAME_ALLOW: [' , ', '*@example.com,has space', 'a:b'],
  AUTH_INVITE_TTL: ['abc', '59', String(365 * 86_400 + 1)],
  AUTH_AUDIT_RETENTION: ['abc', '-1', '36501'],
  TLS_CERT_FILE: ['  '],
  TLS_KEY_FILE: ['  '],
  AUTH_REQUIRE_HTTPS: ['maybe', 'https'],
  CORS_ORIGINS: ['*', 'null', 'app.example.com', 'https://app.example.com/path', 'ftp://app.example.com'],
  AUTH_ALLOW_INSECURE_PRODUCTION: ['maybe'],
  AUTH_TOKEN_CACHE_SIZE: ['abc', '-1', '10000001'],
  AUTH_CREDENTIAL_CACHE_TTL: ['abc', '-1', '3601'],
  AUTH_STATE_POLL_MS: ['abc', '-1', '10001'],
  WORKERS: ['0', 'abc', '65', '-1'],
  LOG_LEVEL: ['verbose', 'warning', '30'],
  AUTH_ARGON2_MEMORY: ['abc', '7', String(4 * 1024 * 1024 + 1)],
  AUTH_ARGON2_ITERATIONS: ['abc', '0', '101'],
  AUTH_ARGON2_PARALLELISM: ['abc', '0', '17'],
  AUTH_HASH_CONCURRENCY: ['abc', '0', '65', 'autox'],
  AUTH_HASH_QUEUE: ['abc', '-1', '100001'],
  AUTH_HASH_NICE: ['abc', '-1', '20', '5.5'],
  AUTH_ALLOW_LEGACY_PASSWORDS: ['maybe'],
}

test('config: every invalid value throws a ConfigError whose message names the variable (validated at boot)', () => {
  for (const [variable, values] of Object.entries(INVALID)) {
    for (const value of values) throwsConfig({ [variable]: value }, variable)
  }
})

test('config: the invalid-value table covers every setting but NODE_ENV (new settings need invalid cases here)', () => {
  const missing = SETTINGS.map((s) => s.env).filter((env) => env !== 'NODE_ENV' && INVALID[env] === undefined)
  assert.deepEqual(missing, [])
})

test('config: a refused DATABASE_URL or REDIS_URL never echoes its password (house style anti-pattern B)', () => {
  for (const [variable, value] of [
    ['DATABASE_URL', 'mysql://app:s3cretpw@db/x'],
    ['DATABASE_URL', 'postgres://app:s3cretpw@db:notaport/x'],
    ['DATABASE_URL', 'postgres://app:s3cretpw@[::1/x'],
    ['REDIS_URL', 'redis://:s3cretpw@cache:notaport'],
    ['REDIS_URL', 'http://user:s3cretpw@cache'],
  ] as const) {
    const error = throwsConfig({ [variable]: value }, variable)
    assert.doesNotMatch(error.message, /s3cretpw/, error.message)
  }
})

test('config: overrides (CLI flags) win over the environment', () => {
  const { config } = loadConfig({
    env: { PORT: '7000', DATABASE_URL: 'sqlite:./env.db', AUTH_PASSWORD_POLICY: 'strict', LOG_LEVEL: 'debug' },
    overrides: { PORT: '7001', DATABASE_URL: 'sqlite:./flag.db', AUTH_PASSWORD_POLICY: 'legacy' },
  })
  assert.equal(config.port, 7001)
  assert.equal(config.databaseUrl, 'sqlite:./flag.db')
  assert.equal(config.passwordPolicy, 'legacy')
  assert.equal(config.logLevel, 'debug', 'unset overrides leave the environment in place')
  assert.equal(config.publicUrl, 'http://127.0.0.1:7001', 'derived values follow the override')
  // An undefined override is no override.
  assert.equal(loadConfig({ env: { PORT: '7000' }, overrides: { PORT: undefined } }).config.port, 7000)
  // An invalid override is refused like an invalid variable, and names the variable.
  assert.throws(() => loadConfig({ env: { PORT: '7000' }, overrides: { PORT: 'abc' } }), (e: unknown) => e instanceof ConfigError && e.key === 'PORT')
})

test('config: PUBLIC_URL loses its trailing slashes; it is the default audience', () => {
  const { config } = loadConfig({ env: { PUBLIC_URL: 'https://auth.example.com/' } })
  assert.equal(config.publicUrl, 'https://auth.example.com')
  assert.equal(config.tokenAudience, 'https://auth.example.com')
  assert.equal(loadConfig({ env: { PUBLIC_URL: 'https://example.com/auth///' } }).config.publicUrl, 'https://example.com/auth')
  assert.equal(loadConfig({ env: { PUBLIC_URL: ' https://example.com ' } }).config.publicUrl, 'https://example.com')
  assert.equal(loadConfig({ env: { PUBLIC_URL: 'https://a.example', AUTH_TOKEN_AUDIENCE: 'api://x' } }).config.tokenAudience, 'api://x')
})

test('config: the derived PUBLIC_URL is an address clients can use (wildcards → loopback, IPv6 bracketed)', () => {
  const publicUrl = (env: Record<string, string>) => loadConfig({ env }).config.publicUrl
  assert.equal(publicUrl({ HOST: '0.0.0.0', PORT: '8080' }), 'http://127.0.0.1:8080')
  assert.equal(publicUrl({ HOST: '::' }), 'http://[::1]:5000')
  assert.equal(publicUrl({ HOST: '::1' }), 'http://[::1]:5000')
  assert.equal(publicUrl({ HOST: 'auth.internal' }), 'http://auth.internal:5000')
  for (const host of ['0.0.0.0', '::', '::1', 'auth.internal']) assert.doesNotThrow(() => new URL(publicUrl({ HOST: host })))
})

test('config: TRUST_PROXY "*" (trust everyone) is refused (ASVS 4.1.3)', () => {
  throwsConfig({ TRUST_PROXY: '*' }, 'TRUST_PROXY', /trusting every address is refused/)
  throwsConfig({ TRUST_PROXY: 'loopback, *' }, 'TRUST_PROXY', /trusting every address is refused/)
})

test('config: AUTH_PASSWORD_POLICY=legacy in production is refused unless AUTH_ALLOW_LEGACY_PASSWORDS=on', () => {
  throwsConfig({ NODE_ENV: 'production', AUTH_PASSWORD_POLICY: 'legacy' }, 'AUTH_PASSWORD_POLICY', /AUTH_ALLOW_LEGACY_PASSWORDS=on/)
  throwsConfig({ NODE_ENV: 'production', AUTH_PASSWORD_POLICY: 'legacy', AUTH_ALLOW_LEGACY_PASSWORDS: 'off' }, 'AUTH_PASSWORD_POLICY')
  const allowed = loadConfig({ env: { NODE_ENV: 'production', AUTH_PASSWORD_POLICY: 'legacy', AUTH_ALLOW_LEGACY_PASSWORDS: 'on' } })
  assert.equal(allowed.config.passwordPolicy, 'legacy')
  assert.equal(allowed.config.production, true)
  assert.ok(allowed.warnings.some((w) => w.includes('AUTH_PASSWORD_POLICY=legacy')), 'still announced')
  // Outside production, legacy is allowed with a warning.
  assert.equal(loadConfig({ env: { NODE_ENV: 'development', AUTH_PASSWORD_POLICY: 'legacy' } }).config.production, false)
})

test('config: argon2id below the OWASP floor is refused in production, naming the weak parameter', () => {
  throwsConfig({ NODE_ENV: 'production', AUTH_ARGON2_MEMORY: '256' }, 'AUTH_ARGON2_MEMORY')
  throwsConfig({ NODE_ENV: 'production', AUTH_ARGON2_ITERATIONS: '1' }, 'AUTH_ARGON2_ITERATIONS')
  assert.doesNotThrow(() => loadConfig({ env: { NODE_ENV: 'production', AUTH_ARGON2_MEMORY: '65536', AUTH_ARGON2_ITERATIONS: '3' } }))
})

test('config: AUTH_TOKEN_RENEWAL_LIMIT below AUTH_TOKEN_TTL is refused', () => {
  throwsConfig({ AUTH_TOKEN_TTL: '3600', AUTH_TOKEN_RENEWAL_LIMIT: '600' }, 'AUTH_TOKEN_RENEWAL_LIMIT', /AUTH_TOKEN_TTL/)
  assert.doesNotThrow(() => loadConfig({ env: { AUTH_TOKEN_TTL: '600', AUTH_TOKEN_RENEWAL_LIMIT: '600' } }))
})

test('config: unsafe-but-allowed settings announce themselves as warnings (legacy, weak argon2); REDIS_URL is used, not warned about', () => {
  const legacy = loadConfig({ env: { AUTH_PASSWORD_POLICY: 'legacy' } }).warnings
  assert.equal(legacy.length, 1)
  assert.match(legacy[0] ?? '', /AUTH_PASSWORD_POLICY=legacy/)

  const weak = loadConfig({ env: { AUTH_ARGON2_MEMORY: '256', AUTH_ARGON2_ITERATIONS: '1' } }).warnings
  assert.equal(weak.length, 1)
  assert.match(weak[0] ?? '', /argon2id parameters are below the OWASP floor/)
  assert.equal(loadConfig({ env: { AUTH_ARGON2_ITERATIONS: '1' } }).warnings.length, 1)

  const both = loadConfig({ env: { AUTH_PASSWORD_POLICY: 'legacy', AUTH_ARGON2_MEMORY: '256' } }).warnings
  assert.equal(both.length, 2)

  assert.deepEqual(loadConfig({ env: { REDIS_URL: 'redis://cache:6379' } }).warnings, [])
  assert.deepEqual(loadConfig({ env: { AUTH_ARGON2_MEMORY: '19456', AUTH_ARGON2_ITERATIONS: '2' } }).warnings, [])
})
