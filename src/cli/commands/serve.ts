/** Process edge: config → store → migrate → app → listen; SIGTERM/SIGINT close gracefully. */
import cluster from 'node:cluster'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { IpcCounterStore, runPrimary, shareInvalidations } from '../cluster.ts'
import { loadConfig } from '../../config/load.ts'
import type { Config } from '../../config/schema.ts'
import { buildApp, createLogger } from '../../http/app.ts'
import { createStore } from '../../store/kysely-store.ts'
import { hashConcurrencyFor } from '../../passwords/limiter.ts'
import { applyHeapGrowing } from '../node-flags.ts'
import { lowerPoolPriority } from '../pool-priority.ts'

/** How long in-flight requests get after SIGTERM before the process gives up on them. */
const SHUTDOWN_GRACE_MS = 25_000

export async function serveCommand(overrides: Record<string, string>): Promise<void> {
  // before the first request's garbage: V8 reads it at every full GC (see node-flags.ts)
  applyHeapGrowing()
  const loaded = loadConfig({ overrides })
  const { warnings } = loaded
  const workers = loaded.config.workers === 0 ? availableParallelism() : loaded.config.workers
  // AUTH_HASH_CONCURRENCY=auto shares the cores among this server's processes
  const config: Config =
    loaded.config.hashConcurrency === 0 ? { ...loaded.config, hashConcurrency: hashConcurrencyFor(availableParallelism(), workers) } : loaded.config
  const logger = createLogger(config.logLevel)
  const worker = cluster.isWorker
  if (!worker) for (const warning of warnings) logger.warn(warning)
  const store = createStore(config.databaseUrl)
  try {
    // The primary (or the only process) migrates; workers find the schema up to date.
    for (const o of await store.migrate()) if (!worker) logger.info({ migration: o.migrationName, status: o.status }, 'migration')
  } catch (error) {
    await store.close()
    throw error
  }
  if (!worker && workers > 1) {
    await store.close()
    readTls(config) // a missing certificate stops the start here, not in every worker
    const code = await runPrimary(workers, logger)
    logger.info({ workers }, 'stopped')
    logger.flush()
    process.exit(code)
  }
  const tls = readTls(config)
  const { app } = await buildApp({
    config,
    store,
    logger,
    ...(tls === undefined ? {} : { tls }),
    ...(worker ? workerSharing(config) : {}),
  })

  // password hashing below the event loop, before the first request (pool-priority.ts)
  const pool = await lowerPoolPriority(config.hashNice)
  if (pool.applied) logger.debug({ nice: pool.nice, threads: pool.threads.length }, 'libuv pool threads (argon2) reniced')
  else if (config.hashNice !== 0 && process.platform === 'linux') logger.warn({ reason: pool.reason }, 'AUTH_HASH_NICE not applied')

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
    // A keep-alive connection whose request was in flight at the signal stays open after its answer
    // (in a cluster worker server.close() does not reap it): close each one as soon as it is idle.
    const reap = setInterval(() => app.server.closeIdleConnections(), 100)
    reap.unref()
    app
      .close()
      .then(() => store.close())
      .then(
        () => {
          // a cluster's primary says 'stopped' once all of its workers have
          logger.info(worker ? 'worker stopped' : 'stopped')
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

/** What a cluster worker shares with its siblings: cache invalidations, and counters unless Redis holds them. */
function workerSharing(config: Config) {
  let apply: (change: Parameters<Parameters<typeof shareInvalidations>[0]>[0]) => void = () => {}
  const publish = shareInvalidations((change) => apply(change))
  return {
    peers: {
      publish,
      subscribe: (f: typeof apply) => {
        apply = f
      },
    },
    ...(config.redisUrl === undefined && config.rateLimits ? { counters: new IpcCounterStore() } : {}),
  }
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
