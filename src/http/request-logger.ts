/**
 * Per-request loggers made only when a request logs. Fastify gives every request a child of the app's
 * logger (bound to its reqId); pino builds a child eagerly (bindings serialised, prototype chain set
 * up), which cost about 5 µs of the ~30 µs a request costs at LOG_LEVEL=warn, where most requests
 * never log a line. This child is a shell that makes the real pino child on the first enabled call,
 * so log lines are unchanged: same bindings, same level, same redaction.
 */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type LogCall = (...args: unknown[]) => void

/** pino's loggers have isLevelEnabled; Fastify's logger type does not promise it. */
interface LevelAware extends FastifyBaseLogger {
  isLevelEnabled(level: string): boolean
}

function levelAware(logger: FastifyBaseLogger): logger is LevelAware {
  return typeof (logger as Partial<LevelAware>).isLevelEnabled === 'function'
}

export class LazyChildLogger implements FastifyBaseLogger {
  readonly #parent: LevelAware
  readonly #bindings: Bindings
  #real: LevelAware | undefined

  constructor(parent: LevelAware, bindings: Bindings) {
    this.#parent = parent
    this.#bindings = bindings
  }

  #child(): LevelAware {
    this.#real ??= this.#parent.child(this.#bindings) as LevelAware
    return this.#real
  }

  get level(): string {
    return (this.#real ?? this.#parent).level
  }

  set level(level: string) {
    this.#child().level = level
  }

  /** Made at once: it is the caller's to keep. */
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#child().child(bindings, options)
  }

  // pino's (obj, msg, ...args) or (msg, ...args), passed on as they came
  fatal(...args: unknown[]): void {
    this.#log('fatal', args)
  }
  error(...args: unknown[]): void {
    this.#log('error', args)
  }
  warn(...args: unknown[]): void {
    this.#log('warn', args)
  }
  info(...args: unknown[]): void {
    this.#log('info', args)
  }
  debug(...args: unknown[]): void {
    this.#log('debug', args)
  }
  trace(...args: unknown[]): void {
    this.#log('trace', args)
  }
  silent(): void {}

  #log(level: Level, args: unknown[]): void {
    // a level set on the made child wins; before that the parent's, which may change at run time
    if (!(this.#real ?? this.#parent).isLevelEnabled(level)) return
    const child = this.#child()
    ;(child[level] as LogCall).apply(child, args)
  }
}

/**
 * Fastify's `childLoggerFactory`. Route-level log levels or serializers (none are used here), or a
 * logger without pino's level check, get a real child at once.
 */
export function lazyChildLoggerFactory(
  this: unknown,
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  if (options.level !== undefined || options.serializers !== undefined || !levelAware(logger)) return logger.child(bindings, options)
  return new LazyChildLogger(logger, bindings)
}

type ChildLoggerFactory = typeof lazyChildLoggerFactory

export interface RequestLogging {
  /** Spread into Fastify's options. */
  readonly fastify: { readonly loggerInstance: FastifyBaseLogger; readonly childLoggerFactory: ChildLoggerFactory } | { readonly logger: false }
  /**
   * Set when Fastify is given no logger: gives a request and its reply a lazy child of ours (bound to the
   * request's id). The app runs it as its first onRequest step and before answering a router-level
   * refusal, so every line a request can log has a real logger.
   */
  readonly attach: ((request: FastifyRequest, reply: FastifyReply) => void) | undefined
}

/**
 * How requests get their loggers. With request logging on (info or finer: Fastify's 'incoming
 * request' / 'request completed' lines), Fastify gets the logger and makes lazy request children of it.
 * Below info, Fastify is given no logger, and so skips what it does per request only for its own
 * request lines: it timed every response (a 'finish' and an 'error' listener added and removed, two
 * clock reads), about 7,000 instructions of ~100,000 per request (callgrind). Nor is it given a
 * `childLoggerFactory`: with one, Fastify builds a bindings literal with a computed key and checks the
 * child's seven methods (`validateLogger`, 14 megamorphic property loads) on every request, ~3,000
 * instructions of a /healthz request's ~72,000 (callgrind); without one it hands each request its null
 * logger for free. `attach` then replaces that null logger with a lazy child of ours, so requests
 * still log with the same bindings (reqId), level and redaction. The choice is made when the app is
 * built: a level raised to info later gives handler lines, not Fastify's request lines.
 */
export function requestLogging(logger: FastifyBaseLogger): RequestLogging {
  if (!levelAware(logger) || logger.isLevelEnabled('info')) {
    return { fastify: { loggerInstance: logger, childLoggerFactory: lazyChildLoggerFactory }, attach: undefined }
  }
  return {
    fastify: { logger: false },
    attach(request, reply) {
      const log = new LazyChildLogger(logger, { reqId: request.id }) // Fastify's default requestIdLogLabel
      request.log = log
      reply.log = log
    },
  }
}
