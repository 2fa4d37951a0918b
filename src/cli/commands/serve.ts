/** Process edge: config → store → migrate → app → listen; SIGTERM/SIGINT close gracefully. */
import { readFileSync } from 'node:fs'
import { loadConfig } from '../../config/load.ts'
import type { Config } from '../../config/schema.ts'
import { buildApp, createLogger } from '../../http/app.ts'
import { createStore } from '../../store/kysely-store.ts'

/** How long in-flight requests get after SIGTERM before the process gives up on them. */
const SHUTDOWN_GRACE_MS = 25_000

export async function serveCommand(overrides: Record<string, string>): Promise<void> {
  const { config, warnings } = loadConfig({ overrides })
  const logger = createLogger(config.logLevel)
  for (const warning of warnings) logger.warn(warning)
  const store = createStore(config.databaseUrl)
  try {
    for (const o of await store.migrate()) logger.info({ migration: o.migrationName, status: o.status }, 'migration')
  } catch (error) {
    await store.close()
    throw error
  }
  const tls = readTls(config)
  const { app } = await buildApp({ config, store, logger, ...(tls === undefined ? {} : { tls }) })

  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    logger.info({ signal }, 'shutting down: finishing in-flight requests')
    const force = setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting')
      process.exit(1)
    }, SHUTDOWN_GRACE_MS)
    force.unref()
    app
      .close()
      .then(() => store.close())
      .then(
        () => {
          logger.info('stopped')
          logger.flush()
          process.exit(0)
        },
        (error: unknown) => {
          logger.error({ err: error }, 'error while shutting down')
          process.exit(1)
        },
      )
  }
  process.once('SIGTERM', () => shutdown('SIGTERM'))
  process.once('SIGINT', () => shutdown('SIGINT'))

  const address = await app.listen({ host: config.host, port: config.port })
  logger.info(
    { address, publicUrl: config.publicUrl, database: store.dialect, passwordPolicy: config.passwordPolicy, https: tls !== undefined },
    'rest-auth listening',
  )
}

/** Reads the certificate and key named by the config; a missing file stops the start with its name. */
function readTls(config: Config): { cert: Buffer; key: Buffer } | undefined {
  if (config.tlsCertFile === undefined || config.tlsKeyFile === undefined) return undefined
  const read = (file: string, key: string) => {
    try {
      return readFileSync(file)
    } catch (error) {
      throw new Error(`${key}: cannot read ${file} (${(error as { code?: string }).code ?? 'error'})`, { cause: error })
    }
  }
  return { cert: read(config.tlsCertFile, 'TLS_CERT_FILE'), key: read(config.tlsKeyFile, 'TLS_KEY_FILE') }
}
