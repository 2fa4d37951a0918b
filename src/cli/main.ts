#!/usr/bin/env node
/** `npx rest-auth <command>`. Exit codes: 0 ok, 1 failure, 2 usage or configuration error. */
import { ConfigError } from '../config/schema.ts'
import { parseCli, usage } from './args.ts'
import { pinTickObjectMaps } from './tick-maps.ts'

// Before anything else loads (tick-maps.ts says why: ~3 µs a request on Node 20 once lost)
pinTickObjectMaps()
// Commands are imported when run: `user list` need not load Fastify and Swagger.

const io = { out: (l: string) => process.stdout.write(`${l}\n`), err: (l: string) => process.stderr.write(`${l}\n`) }

async function main(argv: readonly string[]): Promise<number | undefined> {
  let cli
  try {
    cli = parseCli(argv)
  } catch (error) {
    io.err(`rest-auth: ${error instanceof Error ? error.message : String(error)}`)
    io.err(usage())
    return 2
  }
  if (cli.help || cli.command === undefined) {
    io.out(usage())
    return cli.help ? 0 : 2
  }
  switch (cli.command) {
    case 'serve':
      await (await import('./commands/serve.ts')).serveCommand(cli.overrides)
      return undefined // keeps running until a signal
    case 'migrate':
      return (await import('./commands/migrate.ts')).migrateCommand(cli.overrides, io, cli.json)
    case 'keys':
      return (await import('./commands/keys.ts')).keysCommand(cli.positionals[0], cli.overrides, { ...cli.options, json: cli.json }, io)
    case 'client':
      return (await import('./commands/client.ts')).clientCommand(cli.positionals, cli.overrides, { ...cli.options, json: cli.json }, io)
    case 'user':
      return (await import('./commands/accounts.ts')).userCommand(cli.positionals, cli.overrides, { ...cli.options, json: cli.json }, io)
    case 'invite':
      return (await import('./commands/accounts.ts')).inviteCommand(cli.positionals, cli.overrides, { ...cli.options, json: cli.json }, io)
    case 'audit':
      return (await import('./commands/accounts.ts')).auditCommand(cli.positionals, cli.overrides, { ...cli.options, json: cli.json }, io)
    default:
      io.err(`rest-auth: unknown command "${cli.command}"`)
      io.err(usage())
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      io.err(`rest-auth: configuration error: ${error.message}`)
      process.exitCode = 2
      return
    }
    // Start-up failures (database unreachable, port in use): one clear line, no stack for known causes.
    io.err(`rest-auth: ${describe(error)}`)
    process.exitCode = 1
  },
)

/** `code: message`, followed by the cause's (a MigrationError wraps the connection error that explains it). */
function describe(error: unknown, depth = 0): string {
  const e = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined
  const message = typeof e?.message === 'string' ? e.message : String(error)
  const text = `${typeof e?.code === 'string' ? `${e.code}: ` : ''}${message}`
  return e?.cause !== undefined && depth < 3 ? `${text}: ${describe(e.cause, depth + 1)}` : text
}
