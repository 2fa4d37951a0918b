/**
 * X-Content-Type-Options and Referrer-Policy come from the header block our ServerResponse writes
 * (src/http/static-headers.ts), not from a per-request step: each must be on every kind of answer
 * exactly once, in a well-formed head, and `app.inject` (whose responses are not ours) must get them
 * from the transport hook instead.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import { loadConfig } from '../../src/config/load.ts'
import { buildApp, createLogger } from '../../src/http/app.ts'
import { STATIC_HEADER_BLOCK, defaultToNoStore, hasStaticHeaders, staticHeaderResponse } from '../../src/http/static-headers.ts'
import { createStore } from '../../src/store/kysely-store.ts'
import { basicHeader, FAST_ARGON2, startServer } from '../helpers/server.ts'
import { freshDatabaseUrl } from '../helpers/stores.ts'
import { registerOk, STRONG } from './support.ts'
import { createServer, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** The raw head of one answer: the status line and the header lines exactly as sent. */
function rawHead(baseUrl: string, request: string): Promise<{ statusLine: string; lines: string[] }> {
  const url = new URL(baseUrl)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    const chunks: Buffer[] = []
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')))
    const done = () => {
      const all = Buffer.concat(chunks).toString('latin1')
      const end = all.indexOf('\r\n\r\n')
      if (end < 0) return reject(new Error(`no response head in ${JSON.stringify(all.slice(0, 200))}`))
      const [statusLine = '', ...lines] = all.slice(0, end).split('\r\n')
      resolve({ statusLine, lines })
    }
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (error) => (chunks.length > 0 ? done() : reject(error)))
    socket.on('end', done)
    socket.write(request.replaceAll('\n', '\r\n').replace('HOST', url.host))
  })
}

const count = (lines: readonly string[], name: string) => lines.filter((l) => l.toLowerCase().startsWith(`${name}:`)).length

test('this Node has the header-block hook, so the static headers cost requests nothing', () => {
  // If a Node release drops `_storeHeader`, this fails loudly (the hook step would still set them).
  assert.notEqual(staticHeaderResponse, undefined)
  assert.equal(STATIC_HEADER_BLOCK.endsWith('\r\n'), true)
  assert.equal(hasStaticHeaders(new ServerResponse({ method: 'GET', httpVersionMajor: 1, httpVersionMinor: 1 } as never)), false)
})

test('X-Content-Type-Options and Referrer-Policy: exactly once on every kind of answer, in a well-formed head', async (t) => {
  const srv = await startServer(t)
  if (!srv) return
  await registerOk(srv, 'miguel', STRONG)
  const token = await srv.token('miguel', STRONG)
  const cases: Array<[string, string]> = [
    ['200 JSON', 'GET /healthz HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
    ['200 Bearer', `GET /api/resource HTTP/1.1\nHost: HOST\nAuthorization: Bearer ${token}\nConnection: close\n\n`],
    ['200 Basic', `GET /api/resource HTTP/1.1\nHost: HOST\nAuthorization: ${basicHeader('miguel', STRONG)}\nConnection: close\n\n`],
    ['HEAD', `HEAD /api/resource HTTP/1.1\nHost: HOST\nAuthorization: Bearer ${token}\nConnection: close\n\n`],
    ['401', 'GET /api/resource HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
    ['404', 'GET /no/such/route HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
    ['204 preflight', 'OPTIONS /api/resource HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
    ['400 router refusal', 'GET /api/users/%E0%A4%A HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
    ['415', 'POST /api/users HTTP/1.1\nHost: HOST\nContent-Type: text/plain\nContent-Length: 1\nConnection: close\n\nx'],
    ['HTML page', 'GET /docs/ HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
    ['static file (a stream)', 'GET /docs/static/swagger-ui.css HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
    ['token (its own no-store)', `GET /api/token HTTP/1.1\nHost: HOST\nAuthorization: ${basicHeader('miguel', STRONG)}\nConnection: close\n\n`],
    ['JWKS (its own max-age)', 'GET /.well-known/jwks.json HTTP/1.1\nHost: HOST\nConnection: close\n\n'],
  ]
  // Cache-Control as sent: no-store on every /api/ answer (written with the header block, or a
  // handler's own), the JWKS its max-age; never twice
  const cacheControl: Record<string, string | undefined> = {
    '200 Bearer': 'no-store',
    '200 Basic': 'no-store',
    HEAD: 'no-store',
    '401': 'no-store',
    '400 router refusal': 'no-store',
    '415': 'no-store',
    'token (its own no-store)': 'no-store',
  }
  const statuses: string[] = []
  for (const [what, request] of cases) {
    const { statusLine, lines } = await rawHead(srv.url, request)
    assert.match(statusLine, /^HTTP\/1\.1 \d{3} /, what)
    statuses.push(statusLine.slice(9, 12))
    for (const line of lines) assert.match(line, /^[A-Za-z0-9-]+: ./, `${what}: header line ${JSON.stringify(line)}`)
    assert.equal(count(lines, 'x-content-type-options'), 1, `${what}: ${lines.join(' | ')}`)
    assert.equal(count(lines, 'referrer-policy'), 1, `${what}: ${lines.join(' | ')}`)
    assert.ok(lines.includes('X-Content-Type-Options: nosniff') && lines.includes('Referrer-Policy: no-referrer'), what)
    const sent = lines.filter((l) => l.toLowerCase().startsWith('cache-control:')).map((l) => l.slice(l.indexOf(':') + 1).trim())
    if (what === 'JWKS (its own max-age)') assert.match(sent.join(), /^public, max-age=\d+$/, what)
    else if (cacheControl[what] !== undefined) assert.deepEqual(sent, [cacheControl[what]], `${what}: ${lines.join(' | ')}`)
    else assert.ok(sent.length <= 1, `${what}: ${lines.join(' | ')}`)
  }
  assert.deepEqual(statuses, ['200', '200', '200', '200', '401', '404', '204', '400', '415', '200', '200', '200', '200'])
})

test('app.inject answers (not our ServerResponse) get the same headers from the transport step', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t, 'sqlite')
  if (databaseUrl === undefined) return
  const { config } = loadConfig({ env: {}, overrides: { PORT: '0', LOG_LEVEL: 'warn', AUTH_RATE_LIMITS: 'off', ...FAST_ARGON2, DATABASE_URL: databaseUrl } })
  const store = createStore(config.databaseUrl)
  await store.migrate()
  const sink = new Writable({ write: (_chunk: Buffer, _enc, cb) => cb() })
  const { app } = await buildApp({ config, store, logger: createLogger(config.logLevel, sink) })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  for (const url of ['/healthz', '/api/resource', '/no/such/route']) {
    const reply = await app.inject({ method: 'GET', url })
    assert.equal(reply.headers['x-content-type-options'], 'nosniff', url)
    assert.equal(reply.headers['referrer-policy'], 'no-referrer', url)
    assert.equal(reply.headers['cache-control'], url.startsWith('/api/') ? 'no-store' : undefined, url)
  }
})

test('the default no-store: written unless the answer names a Cache-Control of its own, in any of Node\'s header forms', async (t) => {
  assert.ok(staticHeaderResponse !== undefined)
  const forms: Record<string, (res: ServerResponse) => void> = {
    'no header of its own': (res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('x'),
    'implicit head (end without writeHead)': (res) => res.end('x'),
    'lower case, as Fastify passes it': (res) => res.writeHead(200, { 'cache-control': 'max-age=5' }).end('x'),
    'mixed case in writeHead': (res) => res.writeHead(200, { 'Cache-Control': 'max-age=5' }).end('x'),
    'setHeader, then writeHead': (res) => {
      res.setHeader('CACHE-CONTROL', 'max-age=5')
      res.writeHead(200, { 'content-type': 'text/plain' }).end('x')
    },
    'setHeader, implicit head': (res) => {
      res.setHeader('Cache-Control', 'max-age=5')
      res.end('x')
    },
    'a flat array': (res) => res.writeHead(200, ['Content-Type', 'text/plain', 'cache-Control', 'max-age=5']).end('x'),
    'not marked': (res) => res.end('x'),
  }
  const server = createServer({ ServerResponse: staticHeaderResponse }, (req, res) => {
    const form = decodeURIComponent((req.url ?? '/').slice(1))
    if (form !== 'not marked') assert.equal(defaultToNoStore(res), true)
    forms[form]?.(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  for (const form of Object.keys(forms)) {
    const { statusLine, lines } = await rawHead(`http://127.0.0.1:${port}`, `GET /${encodeURIComponent(form)} HTTP/1.1\nHost: HOST\nConnection: close\n\n`)
    assert.match(statusLine, /^HTTP\/1\.1 200 /, form)
    const sent = lines.filter((l) => l.toLowerCase().startsWith('cache-control:')).map((l) => l.slice(14).trim())
    const expected = form === 'not marked' ? [] : form.startsWith('no header') || form.startsWith('implicit') ? ['no-store'] : ['max-age=5']
    assert.deepEqual(sent, expected, `${form}: ${lines.join(' | ')}`)
    assert.equal(count(lines, 'x-content-type-options'), 1, form)
  }
  // responses that are not ours cannot carry it: the caller sets the header instead
  assert.equal(defaultToNoStore(new ServerResponse({ method: 'GET', httpVersionMajor: 1, httpVersionMinor: 1 } as never)), false)
})
