/**
 * The only reader of `process.env`. Builds a validated `Config` from the environment and CLI flags
 * (flags win), or throws a `ConfigError` naming the key.
 */
import { type Config, ConfigError, SETTINGS, type Setting } from './schema.ts'

export interface LoadedConfig {
  readonly config: Config
  /** Unsafe-but-allowed settings, to be logged once at start. */
  readonly warnings: readonly string[]
}

export interface LoadOptions {
  /** Defaults to `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Keyed by env name (`DATABASE_URL`); CLI flags are mapped to these by the CLI. */
  readonly overrides?: Readonly<Record<string, string | undefined>>
}

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env
  const overrides = options.overrides ?? {}
  const values: Partial<Record<keyof Config, unknown>> = {}
  for (const setting of SETTINGS) {
    const raw = overrides[setting.env] ?? nonBlank(env[setting.env]) ?? setting.default
    values[setting.key] = raw === undefined ? undefined : parseSetting(setting, raw)
  }
  // Derived defaults.
  if (values.publicUrl === undefined) {
    const host = String(values.host)
    // A wildcard listen address is not an address clients can use: show the loopback one.
    const shownHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
    values.publicUrl = `http://${shownHost}:${String(values.port)}`
  }
  values.tokenAudience ??= values.publicUrl
  values.trustProxy ??= []
  values.usernameAllow ??= []
  values.production ??= false
  values.requireHttps ??= values.production
  values.corsOrigins ??= []
  const config = values as Config // every key was set above or by its default

  const warnings: string[] = []
  if (config.passwordPolicy === 'legacy') {
    if (config.production && !config.allowLegacyInProduction) {
      throw new ConfigError(
        'AUTH_PASSWORD_POLICY',
        'the legacy policy (any non-empty password) is refused in production; set AUTH_ALLOW_LEGACY_PASSWORDS=on to override',
      )
    }
    warnings.push('AUTH_PASSWORD_POLICY=legacy accepts any non-empty password (REST-auth behaviour); use it only for compatibility')
  }
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    const missing = config.tlsCertFile === undefined ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'
    throw new ConfigError(missing, 'TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither')
  }
  if (config.production) {
    // Unsafe production settings fail at boot and name the key (house style 13), unless overridden.
    const unsafe: Array<[string, string]> = []
    if (!config.requireHttps) unsafe.push(['AUTH_REQUIRE_HTTPS', 'is off: credentials would be accepted over plain HTTP'])
    if (!config.rateLimits) unsafe.push(['AUTH_RATE_LIMITS', 'is off: password guessing would not be throttled'])
    for (const [key, problem] of unsafe) {
      if (!config.allowInsecureProduction) {
        throw new ConfigError(key, `${problem} in production; set AUTH_ALLOW_INSECURE_PRODUCTION=on to override`)
      }
      warnings.push(`${key} ${problem} (allowed by AUTH_ALLOW_INSECURE_PRODUCTION=on)`)
    }
  }
  if (config.argon2MemoryKib < 19456 || config.argon2Iterations < 2) {
    warnings.push('argon2id parameters are below the OWASP floor (m=19456 KiB, t=2): fine for tests, not for production')
    if (config.production) {
      const key = config.argon2MemoryKib < 19456 ? 'AUTH_ARGON2_MEMORY' : 'AUTH_ARGON2_ITERATIONS'
      throw new ConfigError(key, 'argon2id parameters below m=19456 KiB, t=2 are refused in production')
    }
  }
  if (config.tokenRenewalLimit < config.tokenTtl) {
    throw new ConfigError('AUTH_TOKEN_RENEWAL_LIMIT', `must be at least AUTH_TOKEN_TTL (${config.tokenTtl})`)
  }
  return { config, warnings }
}

function parseSetting(setting: Setting, raw: string): unknown {
  return setting.parse(raw, setting.env)
}

function nonBlank(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}
