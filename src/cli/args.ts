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
    readonly role: readonly string[]
    readonly admin: boolean
    readonly none: boolean
    readonly passwordStdin: boolean
    readonly generatePassword: boolean
    readonly all: boolean
    readonly status?: string
    readonly search?: string
    readonly limit?: string
    readonly after?: string
    readonly expiresIn?: string
    readonly username?: string
    readonly event?: string
    readonly outcome?: string
    readonly user?: string
    readonly since?: string
    readonly until?: string
  }
}

/** Command options that take a value (not settings), by flag name → option key. */
const STRING_OPTIONS = {
  status: 'status',
  search: 'search',
  limit: 'limit',
  after: 'after',
  'expires-in': 'expiresIn',
  username: 'username',
  event: 'event',
  outcome: 'outcome',
  user: 'user',
  since: 'since',
  until: 'until',
} as const

export function parseCli(argv: readonly string[]): ParsedCli {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
    json: { type: 'boolean' },
    'activate-in': { type: 'string' },
    now: { type: 'boolean' },
    scope: { type: 'string' },
    grant: { type: 'string', multiple: true },
    role: { type: 'string', multiple: true },
    admin: { type: 'boolean' },
    none: { type: 'boolean' },
    'password-stdin': { type: 'boolean' },
    'generate-password': { type: 'boolean' },
    all: { type: 'boolean' },
  }
  for (const flag of Object.keys(STRING_OPTIONS)) options[flag] = { type: 'string' }
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
      role: Array.isArray(values['role']) ? values['role'].map(String) : [],
      admin: values['admin'] === true,
      none: values['none'] === true,
      passwordStdin: values['password-stdin'] === true,
      generatePassword: values['generate-password'] === true,
      all: values['all'] === true,
      ...stringOptions(values),
    },
  }
}

function stringOptions(values: Record<string, unknown>): Partial<Record<(typeof STRING_OPTIONS)[keyof typeof STRING_OPTIONS], string>> {
  const out: Partial<Record<(typeof STRING_OPTIONS)[keyof typeof STRING_OPTIONS], string>> = {}
  for (const [flag, key] of Object.entries(STRING_OPTIONS)) {
    const v = values[flag]
    if (typeof v === 'string') out[key] = v
  }
  return out
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

  user create USERNAME [--admin] [--role R]... [--status pending]
              [--password-stdin | --generate-password]
                                 create a user directly in the database (no server needed: this is
                                 how the first admin is made); without a flag the password is asked
  user list [--status S] [--role R] [--search TEXT] [--limit N] [--after ID]
  user show USER                 USER is an id or a username
  user approve|disable|enable|delete USER
                                 disable and delete revoke every token of the user at once
  user set-role USER ROLE... | USER --none
                                 replace the user's roles (applies at once, also to issued tokens)
  user set-password USER [--password-stdin | --generate-password]
                                 set a new password and revoke every token of the user
  user revoke-tokens USER        revoke every token of the user
  invite create [--expires-in S] [--username U] [--role R]...
                                 issue a single-use invite code (shown once)
  invite list [--all]            usable invites (--all: also used, revoked, expired)
  invite revoke ID
  audit [--event E] [--outcome success|failure] [--user USER] [--since T] [--until T] [--limit N]
                                 the audit log, newest first (E may be a family: 'user.*')

Flags (each overrides its environment variable; see docs/configuration.md):
${flags}
  --json                         machine-readable output (every command but serve)
  -h, --help                     this text
`
}
