/** CLI flag parsing (pure): every setting's flag, mapped back to its environment name. */
import { parseArgs } from 'node:util'
import { flagName, SETTINGS } from '../config/schema.ts'

export interface ParsedCli {
  readonly command: string | undefined
  readonly positionals: readonly string[]
  /** Keyed by environment name, ready for `loadConfig({ overrides })`. */
  readonly overrides: Readonly<Record<string, string>>
  readonly help: boolean
  readonly json: boolean
  /** Command options that are not settings. */
  readonly options: {
    readonly activateIn?: string
    readonly now: boolean
    readonly scope?: string
    readonly grant: readonly string[]
  }
}

export function parseCli(argv: readonly string[]): ParsedCli {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
    json: { type: 'boolean' },
    'activate-in': { type: 'string' },
    now: { type: 'boolean' },
    scope: { type: 'string' },
    grant: { type: 'string', multiple: true },
  }
  for (const s of SETTINGS) options[flagName(s)] = { type: 'string' }
  const { values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
  const overrides: Record<string, string> = {}
  for (const s of SETTINGS) {
    const v = values[flagName(s)]
    if (typeof v === 'string') overrides[s.env] = v
  }
  return {
    command: positionals[0],
    positionals: positionals.slice(1),
    overrides,
    help: values['help'] === true,
    json: values['json'] === true,
    options: {
      ...(typeof values['activate-in'] === 'string' ? { activateIn: values['activate-in'] } : {}),
      now: values['now'] === true,
      ...(typeof values['scope'] === 'string' ? { scope: values['scope'] } : {}),
      grant: Array.isArray(values['grant']) ? values['grant'].map(String) : [],
    },
  }
}

export function usage(): string {
  const flags = SETTINGS.map((s) => `  --${flagName(s).padEnd(28)} ${s.env}`).join('\n')
  return `Usage: rest-auth <command> [flags]

Commands:
  serve      migrate the database, then serve the API (SIGTERM finishes in-flight requests)
  migrate    bring the database schema to the latest version and exit
  keys list                      signing keys and their state (staged, active, retired)
  keys rotate [--activate-in S]  stage a new signing key; it signs after S seconds (default
             [--now]             AUTH_JWKS_MAX_AGE) and the current key retires then
  client create NAME [--grant G]... [--scope "a b"]
                                 register an OAuth client (grants: client_credentials (default),
                                 password, refresh_token); prints its secret once
  client list                    registered clients
  client delete CLIENT_ID        remove a client and its refresh tokens

Flags (each overrides its environment variable; see docs/configuration.md):
${flags}
  --json                         machine-readable output (migrate, keys, client)
  -h, --help                     this text
`
}
