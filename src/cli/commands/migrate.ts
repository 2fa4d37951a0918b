import { loadConfig } from '../../config/load.ts'
import { createStore } from '../../store/kysely-store.ts'
import { MigrationError } from '../../store/kysely-store.ts'
import type { MigrationOutcome } from '../../store/store.ts'

export interface CommandIo {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
}

function report(outcomes: readonly MigrationOutcome[], io: CommandIo, json: boolean): void {
  if (json) {
    io.out(JSON.stringify({ migrations: outcomes }))
    return
  }
  if (outcomes.length === 0) io.out('database schema is up to date')
  for (const o of outcomes) io.out(`${o.status === 'Success' ? 'applied' : o.status === 'Error' ? 'FAILED ' : 'skipped'}  ${o.migrationName}`)
}

/** Exit code: 0 applied or up to date, 1 a migration failed. */
export async function migrateCommand(overrides: Record<string, string>, io: CommandIo, json: boolean): Promise<number> {
  const { config } = loadConfig({ overrides })
  const store = createStore(config.databaseUrl)
  try {
    report(await store.migrate(), io, json)
    return 0
  } catch (error) {
    if (error instanceof MigrationError) {
      report(error.outcomes, io, json)
      io.err(`migration failed: ${error.cause instanceof Error ? error.cause.message : String(error.cause)}`)
      return 1
    }
    throw error
  } finally {
    await store.close()
  }
}
