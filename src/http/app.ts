/**
 * buildApp: a configured, unstarted Fastify app (no listen, no env). Tests listen on 127.0.0.1:0.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import pino, { type Logger } from 'pino'
import type { Clock } from '../clock.ts'
import { systemClock } from '../clock.ts'
import type { Config } from '../config/schema.ts'
import { RestAuthError } from '../errors.ts'
import { createRuntime, type Runtime } from '../runtime.ts'
import type { StateChange, Store } from '../store/store.ts'
import { type CounterStore, MemoryCounterStore } from '../ratelimit/counters.ts'
import { ChangeFeed } from '../state/feed.ts'
import { CachingStore, DEFAULT_CACHE_LIMITS } from '../state/caching-store.ts'
import { BODY_LIMIT_BYTES, parseJsonBody } from './json-body.ts'
import { errorHandler, PROBLEM_CONTENT_TYPE, sendProblem, toProblem } from './problem.ts'
import { registerRoutes } from './routes.ts'
import { registerTransport, securityHeaders } from './plugins/transport.ts'
import { requestLogging } from './request-logger.ts'
import { staticHeaderResponse } from './static-headers.ts'
import { problemSchema } from './schemas.ts'

const PURGE_INTERVAL_MS = 10 * 60_000

export interface BuildAppOptions {
  readonly config: Config
  readonly store: Store
  readonly clock?: Clock
  /** A pino logger; by default one is made from `config.logLevel` writing to stdout. */
  readonly logger?: Logger
  /** PEM certificate and key: the app serves HTTPS (the CLI reads TLS_CERT_FILE / TLS_KEY_FILE). */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer }
  /** Rate-limit counters shared between instances (Redis); default in memory. */
  readonly counters?: CounterStore
  /** Other processes of this server (cluster workers): told of this one's changes, telling it theirs. */
  readonly peers?: {
    readonly publish: (change: Pick<StateChange, 'kind' | 'ref'>) => void
    readonly subscribe: (apply: (change: Pick<StateChange, 'kind' | 'ref'>) => void) => void
  }
}

/** Paths redacted from every log line (house style anti-pattern B). */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'password',
  '*.password',
  'token',
  '*.token',
  'password_hash',
  '*.password_hash',
  'passwordHash',
  '*.passwordHash',
]

export function createLogger(level: Config['logLevel'], destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }
  return destination === undefined ? pino(options) : pino(options, destination as pino.DestinationStream)
}


/**
 * Errors Node's HTTP parser raises before Fastify sees a request (headers over Node's 16 KiB, broken
 * framing): answered as problem+json too, never Fastify's plain JSON, and the socket closed.
 */
function clientErrorHandler(error: NodeJS.ErrnoException, socket: import('node:net').Socket): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW'
  const problem = new RestAuthError(
    tooLarge ? 'header_too_large' : 'invalid_request',
    tooLarge ? 'The request headers are too large.' : 'The request could not be parsed.',
  )
  const body = JSON.stringify(toProblem(problem))
  socket.end(
    `HTTP/1.1 ${problem.status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
      `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      'X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n' +
      body,
  )
}

/** REDIS_URL: counters shared by every instance, with this process's own as the fallback. */
async function sharedCounters(url: string, logger: Logger): Promise<CounterStore> {
  // loaded only with REDIS_URL: a server without Redis never pays for ioredis (about 20 MB of RSS)
  const { FailoverCounterStore, RedisCounterStore } = await import('../store/redis/counters.ts')
  const redis = new RedisCounterStore(url)
  // give the connection a moment, so the first requests do not fall back (and log an outage) needlessly
  await redis.ready()
  return new FailoverCounterStore(redis, new MemoryCounterStore(), (degraded, error) =>
    degraded
      ? logger.error({ err: error }, 'Redis unreachable: rate limits fall back to per-instance counters')
      : logger.warn('Redis reachable again: rate limits are shared across instances'),
  )
}

export interface RestAuthApp {
  readonly app: FastifyInstance
  readonly runtime: Runtime
  /**
   * Reads the change log now, so changes made by other processes (the CLI, other instances) are
   * applied before the next request rather than within AUTH_STATE_POLL_MS.
   */
  sync(): Promise<void>
}

export async function buildApp(options: BuildAppOptions): Promise<RestAuthApp> {
  const { config } = options
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? createLogger(config.logLevel)
  const counters = options.counters ?? (config.redisUrl !== undefined && config.rateLimits ? await sharedCounters(config.redisUrl, logger) : undefined)
  // The hot reads of the token path from memory, kept fresh by the database's change log.
  const feed =
    config.statePollMs > 0
      ? new ChangeFeed(options.store, systemClock, {
          pollMs: config.statePollMs,
          staleMs: Math.max(1_000, 4 * config.statePollMs),
          onError: (error) => logger.warn({ err: error }, 'change log unreadable: caches bypassed until it is back'),
          onListening: (listening, error) =>
            listening
              ? logger.debug('listening for change-log notifications')
              : logger.warn({ err: error }, 'change-log notifications lost: changes from other instances arrive by polling until they are back'),
        })
      : undefined
  const caching = feed === undefined ? undefined : new CachingStore(options.store, feed, DEFAULT_CACHE_LIMITS, options.peers?.publish)
  const store: Store = caching ?? options.store
  if (caching !== undefined) {
    options.peers?.subscribe((change) => {
      caching.invalidate(change)
      if (change.kind === 'keys') void feed?.poll()
    })
  }
  await feed?.start()
  const runtime = createRuntime(config, store, clock, {
    onRehash: (userId, outcome, error) =>
      outcome === 'upgraded'
        ? logger.info({ userId }, 'password hash upgraded to current parameters')
        : logger.warn({ userId, err: error }, 'password hash upgrade failed'),
    onAuditError: (error, event) => logger.error({ err: error, event }, 'audit log write failed'),
    ...(counters === undefined ? {} : { counters }),
  })
  await runtime.init()
  feed?.onChange((change) => {
    if (change.kind !== 'keys') return
    // forget after the reload, so no token is re-cached against the old keys in between
    runtime.keyring.reload().then(
      () => runtime.tokens.forgetVerified(),
      (error: unknown) => {
        runtime.tokens.forgetVerified()
        logger.warn({ err: error }, 'signing keys reload failed')
      },
    )
  })
  feed?.onReset(() => runtime.tokens.forgetVerified())

  const logging = requestLogging(logger as FastifyBaseLogger)
  const app = Fastify({
    // Responses carry X-Content-Type-Options and Referrer-Policy in their header block from the start
    ...(options.tls === undefined
      ? staticHeaderResponse === undefined ? {} : { http: { ServerResponse: staticHeaderResponse } }
      : { https: { cert: options.tls.cert, key: options.tls.key, ...(staticHeaderResponse === undefined ? {} : { ServerResponse: staticHeaderResponse }) } }),
    ...logging.fastify,
    // Fastify builds its per-request log arguments before the level check; skip them when info is off
    logController: new LogController({ disableRequestLogging: () => !logger.isLevelEnabled('info') }),
    bodyLimit: BODY_LIMIT_BYTES,
    trustProxy: config.trustProxy.length === 0 ? false : [...config.trustProxy],
    requestTimeout: 30_000,
    keepAliveTimeout: 72_000,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    clientErrorHandler,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 100 },
    // Router-level refusals (bad percent-encoding, over-long path parameter) would otherwise be answered
    // by Fastify itself as plain JSON that echoes the path; send them through the problem pipeline too.
    // These replies skip the hooks, so they get the security headers here.
    frameworkErrors: (error, request, reply) => {
      logging.attach?.(request, reply)
      return errorHandler(error, request, securityHeaders(request, reply))
    },
  })
  app.server.headersTimeout = 60_000
  app.decorateRequest('principal', undefined)

  // Body: strict JSON only.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer))
    } catch (error) {
      done(error as Error, undefined)
    }
  })

  // The first onRequest step, and in it first the request's logger (below info): every later step,
  // handler and error handler logs through it.
  registerTransport(app, config, { tls: options.tls !== undefined, first: logging.attach })
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, new RestAuthError('not_found', `No route for ${request.method} ${request.url.split('?')[0] ?? ''}.`)),
  )

  app.addSchema(problemSchema)
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'rest-auth',
        version: '0.1.0',
        description: "Authentication service for REST APIs, wire-compatible with Miguel Grinberg's REST-auth.",
      },
      servers: [{ url: config.publicUrl }],
      components: {
        securitySchemes: {
          basicAuth: { type: 'http', scheme: 'basic', description: 'username:password, or token:anything (REST-auth)' },
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          clientBasic: { type: 'http', scheme: 'basic', description: 'OAuth client: client_id:client_secret (RFC 6749 §2.3.1)' },
        },
      },
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  registerRoutes(app, runtime)

  // Denylist rows outlive their token by nothing: drop them (and ended refresh families) regularly.
  const purge = () =>
    store.purgeExpired(clock.now(), config.auditRetentionDays === 0 ? undefined : clock.now() - config.auditRetentionDays * 86_400_000).then(
      (removed) => removed > 0 && logger.debug({ removed }, 'expired revocation and refresh rows purged'),
      (error: unknown) => logger.warn({ err: error }, 'purge of expired revocation rows failed'),
    )
  const purgeTimer = setInterval(purge, PURGE_INTERVAL_MS)
  purgeTimer.unref()
  app.addHook('onReady', async () => {
    void purge()
  })
  app.addHook('onClose', async () => {
    clearInterval(purgeTimer)
    await feed?.stop()
    await runtime.close()
  })
  return { app, runtime, sync: async () => feed?.poll() }
}
