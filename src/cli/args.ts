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
}

export function parseCli(argv: readonly string[]): ParsedCli {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    json: { type: 'boolean' },
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
  }
}

export function usage(): string {
  const flags = SETTINGS.map((s) => `  --${flagName(s).padEnd(28)} ${s.env}`).join('\n')
  return `Usage: rest-auth <command> [flags]

Commands:
  serve      migrate the database, then serve the API (SIGTERM finishes in-flight requests)
  migrate    bring the database schema to the latest version and exit

Flags (each overrides its environment variable; see docs/configuration.md):
${flags}
  --json                         machine-readable output (migrate)
  -h, --help                     this text
`
}
