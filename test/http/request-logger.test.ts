/**
 * The lazy per-request logger (src/http/request-logger.ts), Fastify's `childLoggerFactory` in buildApp:
 * the pino child of a request is made only when a call at an enabled level happens, and the lines it
 * writes are those an eager pino child would write (same bindings, level and redaction). Real pino
 * loggers from `createLogger` (the app's own, with REDACT_PATHS) write to a stream that collects lines;
 * the end-to-end tests read the log of the real app over loopback HTTP.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import pino, { type Logger } from 'pino'
import { buildApp, createLogger, REDACT_PATHS } from '../../src/http/app.ts'
import { LazyChildLogger, lazyChildLoggerFactory, requestLogging } from '../../src/http/request-logger.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createStore } from '../../src/store/kysely-store.ts'
import { FAST_ARGON2, startServer } from '../helpers/server.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'
import { expectJson, registerOk, STRONG, tokenOf } from './support.ts'

type LogRecord = Record<string, unknown> & { readonly level: number; readonly msg?: string }

/** A destination that keeps every line pino writes, parsed. */
class Lines {
  readonly #chunks: string[] = []
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, callback) => {
      this.#chunks.push(chunk.toString('utf8'))
      callback()
    },
  })

  text(): string {
    return this.#chunks.join('')
  }

  all(): LogRecord[] {
    return parseLines(this.text())
  }
}

function parseLines(text: string): LogRecord[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LogRecord)
}

function onlyLine(lines: Lines): LogRecord {
  const all = lines.all()
  assert.equal(all.length, 1, `exactly one line: ${lines.text()}`)
  return all[0] as LogRecord
}

/** The app's logger (createLogger: level and redaction of production) over a collecting stream. */
function appLogger(level: 'info' | 'debug' | 'warn' = 'info'): { logger: Logger; lines: Lines } {
  const lines = new Lines()
  return { logger: createLogger(level, lines.stream), lines }
}

/** A pino logger like the app's, counting the children actually made (pino's `onChild` hook). */
function countingLogger(level: 'info' | 'debug' = 'info'): { logger: Logger; lines: Lines; children: () => number } {
  const lines = new Lines()
  let made = 0
  const logger = pino(
    { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, onChild: () => void made++ },
    lines.stream as unknown as pino.DestinationStream,
  )
  return { logger, lines, children: () => made }
}

/** What Fastify does per request: the factory with the reqId bindings and no route options. */
function requestLogger(parent: Logger, reqId = 'req-1'): FastifyBaseLogger {
  return lazyChildLoggerFactory(parent as FastifyBaseLogger, { reqId }, {})
}

test('lazy child: a line carries the bindings (reqId) and the message, and is redacted like the parent', () => {
  const { logger, lines } = appLogger('info')
  const log = requestLogger(logger, 'req-42')
  assert.ok(log instanceof LazyChildLogger, 'no route options: the lazy shell')
  log.info(
    { password: 'hunter2-secret-pw', token: 'tok-secret-value', req: { headers: { authorization: 'Bearer abc.def.ghi' } }, user: { password: 'nested-pw-1' } },
    'signing in %s',
    'ada',
  )
  const line = onlyLine(lines)
  assert.equal(line['reqId'], 'req-42')
  assert.equal(line.msg, 'signing in ada', 'printf-style arguments are passed on as they came')
  assert.equal(line.level, 30)
  assert.equal(line['password'], '[redacted]')
  assert.equal(line['token'], '[redacted]')
  assert.deepEqual(line['req'], { headers: { authorization: '[redacted]' } })
  assert.deepEqual(line['user'], { password: '[redacted]' })
  for (const secret of ['hunter2-secret-pw', 'tok-secret-value', 'abc.def.ghi', 'nested-pw-1']) {
    assert.ok(!lines.text().includes(secret), `${secret} is not in the log`)
  }

  // the same call on an eager pino child writes the same line (apart from the time)
  const eager = appLogger('info')
  eager.logger.child({ reqId: 'req-42' }).info(
    { password: 'hunter2-secret-pw', token: 'tok-secret-value', req: { headers: { authorization: 'Bearer abc.def.ghi' } }, user: { password: 'nested-pw-1' } },
    'signing in %s',
    'ada',
  )
  const { time: _a, ...lazyLine } = line
  const { time: _b, ...eagerLine } = onlyLine(eager.lines)
  assert.deepEqual(lazyLine, eagerLine)
})

test('lazy child: every level method writes at its pino level with the bindings; an Error is serialised', () => {
  const { logger, lines } = appLogger('info')
  logger.level = 'trace'
  const log = requestLogger(logger, 'req-levels')
  log.trace('t')
  log.debug('d')
  log.info('i')
  log.warn('w')
  log.error(new Error('boom'), 'e')
  log.fatal('f')
  const all = lines.all()
  assert.deepEqual(
    all.map((r) => [r.level, r.msg]),
    [[10, 't'], [20, 'd'], [30, 'i'], [40, 'w'], [50, 'e'], [60, 'f']],
  )
  assert.ok(all.every((r) => r['reqId'] === 'req-levels'))
  const err = all[4]?.['err'] as { message?: unknown; type?: unknown } | undefined
  assert.equal(err?.message, 'boom')
  assert.equal(err?.type, 'Error')
})

test('lazy child: calls below the level write nothing and make no pino child; the first enabled call makes exactly one', () => {
  const { logger, lines, children } = countingLogger('info')
  const log = requestLogger(logger)
  log.debug({ a: 1 }, 'quiet')
  log.trace('quieter')
  log.silent('never')
  assert.equal(log.level, 'info', 'the level is the parent\'s')
  assert.equal(lines.text(), '', 'nothing written')
  assert.equal(children(), 0, 'no child made for disabled calls')
  log.info('one')
  log.warn('two')
  log.debug('still quiet')
  assert.equal(children(), 1, 'one child, made once, reused')
  assert.deepEqual(
    lines.all().map((r) => [r.msg, r['reqId']]),
    [['one', 'req-1'], ['two', 'req-1']],
  )
})

test('lazy child: a run-time change of the parent\'s level (logger.level = "debug") is honoured by an existing lazy child, before and after it made its pino child', () => {
  const { logger, lines, children } = countingLogger('info')
  const log = requestLogger(logger, 'req-live')
  log.debug('before')
  assert.equal(lines.text(), '')
  logger.level = 'debug'
  assert.equal(log.level, 'debug')
  log.debug('after raising')
  assert.deepEqual(lines.all().map((r) => r.msg), ['after raising'])
  assert.equal(children(), 1)

  // the made child still follows the parent (pino children inherit an unset level)
  logger.level = 'warn'
  assert.equal(log.level, 'warn')
  log.info('dropped')
  log.warn('kept')
  assert.deepEqual(lines.all().map((r) => r.msg), ['after raising', 'kept'])

  // and a lazy child that never logged follows a lowered level too
  const other = requestLogger(logger, 'req-other')
  other.info('not at warn')
  assert.equal(lines.all().length, 2)
  assert.equal(children(), 1, 'no child for a disabled call')
})

test('lazy child: setting `level` on the lazy child applies to it only, never to the parent or a sibling', () => {
  const { logger, lines } = appLogger('info')
  const log = requestLogger(logger, 'req-a')
  const sibling = requestLogger(logger, 'req-b')
  log.level = 'debug'
  assert.equal(log.level, 'debug')
  assert.equal(logger.level, 'info', 'parent unchanged')
  assert.equal(sibling.level, 'info', 'sibling unchanged')
  log.debug('child debug')
  logger.debug('parent debug')
  sibling.debug('sibling debug')
  assert.deepEqual(lines.all().map((r) => [r.msg, r['reqId']]), [['child debug', 'req-a']])

  // an own level also wins over later parent changes, as on a pino child
  log.level = 'error'
  log.warn('child warn')
  logger.warn('parent warn')
  sibling.warn('sibling warn')
  logger.level = 'trace'
  log.info('child info after parent trace')
  assert.equal(log.level, 'error')
  assert.deepEqual(
    lines.all().map((r) => [r.msg, r['reqId'] ?? null]),
    [
      ['child debug', 'req-a'],
      ['parent warn', null],
      ['sibling warn', 'req-b'],
    ],
  )
})

test('lazy child: child() carries both the request\'s and its own bindings, with the redaction', () => {
  const { logger, lines } = appLogger('info')
  const log = requestLogger(logger, 'req-7')
  const grandchild = log.child({ userId: 7, route: '/api/token' })
  grandchild.info({ password: 'pw-in-grandchild' }, 'issued')
  const line = onlyLine(lines)
  assert.equal(line['reqId'], 'req-7')
  assert.equal(line['userId'], 7)
  assert.equal(line['route'], '/api/token')
  assert.equal(line['password'], '[redacted]')
  assert.equal(line.msg, 'issued')
  // the child's own options apply to it only
  const quiet = log.child({ part: 'quiet' }, { level: 'error' })
  quiet.warn('not written')
  log.warn('written')
  assert.deepEqual(lines.all().map((r) => r.msg), ['issued', 'written'])
})

test('factory: route options (level, serializers) or a logger without isLevelEnabled get a real child at once', () => {
  const { logger, lines, children } = countingLogger('info')

  const leveled = lazyChildLoggerFactory(logger as FastifyBaseLogger, { reqId: 'req-l' }, { level: 'debug' })
  assert.ok(!(leveled instanceof LazyChildLogger))
  assert.equal(children(), 1, 'made at once')
  assert.equal(leveled.level, 'debug')
  leveled.debug('route-level debug')

  const serialized = lazyChildLoggerFactory(
    logger as FastifyBaseLogger,
    { reqId: 'req-s' },
    { serializers: { user: (u: { name: string }) => `user:${u.name}` } },
  )
  assert.ok(!(serialized instanceof LazyChildLogger))
  assert.equal(children(), 2)
  serialized.info({ user: { name: 'ada' } }, 'serialized')
  assert.deepEqual(
    lines.all().map((r) => [r.msg, r['reqId'], r['user'] ?? null]),
    [
      ['route-level debug', 'req-l', null],
      ['serialized', 'req-s', 'user:ada'],
    ],
  )

  // a Fastify-compatible logger that is not pino: its own child, as Fastify's default factory would
  const madeBy: unknown[] = []
  const plain: FastifyBaseLogger = {
    level: 'info',
    fatal: () => {},
    error: () => {},
    warn: () => {},
    info: () => {},
    debug: () => {},
    trace: () => {},
    silent: () => {},
    child(bindings) {
      madeBy.push(bindings)
      return plain
    },
  }
  const fromPlain = lazyChildLoggerFactory(plain, { reqId: 'req-p' }, {})
  assert.equal(fromPlain, plain)
  assert.deepEqual(madeBy, [{ reqId: 'req-p' }])
})

interface RequestLine extends LogRecord {
  readonly reqId: string
  readonly req?: { readonly method?: string; readonly url?: string }
  readonly res?: { readonly statusCode?: number }
}

function requestLines(text: string): RequestLine[] {
  return parseLines(text).filter((r): r is RequestLine => typeof r['reqId'] === 'string')
}

for (const kind of STORES) {
  test(`${kind}: the real app logs 'incoming request' and 'request completed' through the lazy child, each with the request's reqId, distinct per request`, async (t) => {
    const srv = await startServer(t, { store: kind }) // LOG_LEVEL=info, log collected by the helper
    if (!srv) return
    const before = srv.logs().length
    await expectJson(await srv.get('/healthz'), 200)
    await expectJson(await srv.get('/healthz?second=1'), 200)
    const lines = requestLines(srv.logs().slice(before))
    const incoming = lines.filter((r) => r.msg === 'incoming request')
    const completed = lines.filter((r) => r.msg === 'request completed')
    assert.equal(incoming.length, 2, srv.logs())
    assert.equal(completed.length, 2, srv.logs())
    const [first, second] = incoming
    assert.ok(first !== undefined && second !== undefined)
    assert.notEqual(first.reqId, second.reqId, 'two requests, two reqIds')
    assert.equal(first.req?.url, '/healthz')
    assert.equal(second.req?.url, '/healthz?second=1')
    for (const line of incoming) {
      const done = completed.find((r) => r.reqId === line.reqId)
      assert.ok(done !== undefined, `request ${line.reqId} has its 'request completed' line`)
      assert.equal(done.res?.statusCode, 200)
      assert.equal(typeof done['responseTime'], 'number')
    }
  })

  test(`${kind}: a handler's own line (request.log) carries the reqId of its request, and the token in the Authorization header is not logged`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const user = await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const before = srv.logs().length
    assert.equal((await srv.request('DELETE', '/api/token', { bearer: token })).status, 204)
    const text = srv.logs().slice(before)
    const lines = requestLines(text)
    const revoked = lines.find((r) => r.msg === 'token revoked')
    assert.ok(revoked !== undefined, `handler line written: ${text}`)
    assert.equal(revoked['sub'], String(user.id))
    const incoming = lines.find((r) => r.msg === 'incoming request')
    assert.ok(incoming !== undefined)
    assert.equal(revoked.reqId, incoming.reqId, 'the handler line belongs to its request')
    for (const part of token.split('.').slice(1)) assert.ok(!text.includes(part), 'no token segment in the log')
  })

  test(`${kind}: at LOG_LEVEL=warn a request writes no line at all`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { LOG_LEVEL: 'warn' } })
    if (!srv) return
    const before = srv.logs().length
    await expectJson(await srv.get('/healthz'), 200)
    assert.equal((await srv.get('/api/resource')).status, 401)
    assert.equal(requestLines(srv.logs().slice(before)).length, 0, srv.logs().slice(before))
  })
}

test('requestLogging: info or finer hands Fastify the logger and the lazy factory; warn and above hands it none, and attach gives a request and its reply a lazy child of ours', () => {
  for (const level of ['info', 'debug'] as const) {
    const { logger } = appLogger(level)
    const logging = requestLogging(logger as FastifyBaseLogger)
    assert.ok('loggerInstance' in logging.fastify && logging.fastify.loggerInstance === logger, `${level}: Fastify gets the logger (its request lines)`)
    assert.ok('childLoggerFactory' in logging.fastify && logging.fastify.childLoggerFactory === lazyChildLoggerFactory)
    assert.equal(logging.attach, undefined, `${level}: Fastify's own children are used`)
  }
  const { logger, lines } = appLogger('warn')
  const logging = requestLogging(logger as FastifyBaseLogger)
  assert.deepEqual(logging.fastify, { logger: false }, 'warn: no logger and no factory, so Fastify neither times every response nor validates a child per request')
  assert.ok(logging.attach !== undefined)
  // what Fastify hands a request without a logger: its null logger, on the request and the reply
  const nullLogger = { child: () => assert.fail('the null logger is never used') } as unknown as FastifyBaseLogger
  const request = { id: 'req-9', log: nullLogger } as unknown as FastifyRequest
  const reply = { log: nullLogger } as unknown as FastifyReply
  logging.attach(request, reply)
  assert.ok(request.log instanceof LazyChildLogger)
  assert.equal(reply.log, request.log, 'the reply logs through the same child')
  request.log.info('below the level')
  assert.equal(lines.all().length, 0)
  reply.log.warn({ password: 'python-is-great-2026' }, 'handler warning')
  const line = onlyLine(lines)
  assert.equal(line.msg, 'handler warning')
  assert.equal(line['reqId'], 'req-9')
  assert.equal(line['password'], '[redacted]')
})

test('sqlite: at LOG_LEVEL=warn (Fastify without a logger) a request\'s own warning and a 500 are logged with the reqId, the 500 answered as problem+json', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t, 'sqlite')
  assert.ok(databaseUrl !== undefined)
  const { config } = loadConfig({ env: {}, overrides: { PORT: '0', LOG_LEVEL: 'warn', AUTH_RATE_LIMITS: 'off', ...FAST_ARGON2, DATABASE_URL: databaseUrl } })
  const store = createStore(config.databaseUrl)
  await store.migrate()
  const lines = new Lines()
  const { app } = await buildApp({ config, store, logger: createLogger(config.logLevel, lines.stream) })
  app.get('/test/warn', async (request) => {
    request.log.warn({ detail: 'x' }, 'handler warning')
    return { ok: true }
  })
  app.get('/test/fail', async () => {
    throw new Error('boom')
  })
  app.get('/test/logger', async (request, reply) => ({ lazy: request.log instanceof LazyChildLogger, same: reply.log === request.log }))
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  assert.equal((await fetch(`${url}/test/warn`)).status, 200)
  assert.deepEqual(await (await fetch(`${url}/test/logger`)).json(), { lazy: true, same: true }, 'a request and its reply log through our lazy child, not Fastify\'s null logger')
  const failed = await fetch(`${url}/test/fail`)
  assert.equal(failed.status, 500)
  assert.equal(failed.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  assert.ok(!(await failed.text()).includes('boom'), 'the error stays in the log')
  const records = requestLines(lines.text())
  const warning = records.find((r) => r.msg === 'handler warning')
  const failure = records.find((r) => r.msg === 'request failed')
  assert.ok(warning !== undefined && failure !== undefined, lines.text())
  assert.notEqual(warning.reqId, failure.reqId, 'each line carries its own request\'s reqId')
  assert.equal(failure.level, 50)
  assert.equal(records.filter((r) => r.msg === 'incoming request' || r.msg === 'request completed').length, 0, 'no request lines below info')
})
