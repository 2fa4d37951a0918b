/**
 * Operations and documents over real HTTP, against every store: /healthz, /readyz, /openapi.json,
 * /docs, /errors (contract §3), the 404 problem, security headers, and log redaction (house style
 * anti-pattern B).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ERROR_CATALOGUE } from '../../src/errors.ts'
import { basicHeader, startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, registerOk, STRONG, tamperSignature, tokenOf } from './support.ts'

interface OpenApiDoc {
  openapi: string
  paths: Record<string, Record<string, { responses?: Record<string, unknown>; security?: unknown }>>
}

for (const kind of STORES) {
  test(`${kind}: GET /healthz → 200 (contract §3 liveness)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const body = await expectJson<{ status: string }>(await srv.get('/healthz'), 200)
    assert.equal(body.status, 'ok')
  })

  test(`${kind}: GET /readyz → 200, then 503 database_unavailable once the store is closed (contract §3 readiness)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const ready = await expectJson<{ status: string }>(await srv.get('/readyz'), 200)
    assert.equal(ready.status, 'ready')
    await srv.store.close()
    const res = await srv.get('/readyz')
    const problem = await expectProblem(res, 503, 'database_unavailable')
    assert.ok(res.headers.get('retry-after') !== null, 'Retry-After tells clients when to come back')
    assert.ok(!/sqlite|postgres|destroyed|pool/i.test(problem.detail), `detail stays generic: ${problem.detail}`)
    // Liveness does not depend on the database.
    assert.equal((await srv.get('/healthz')).status, 200)
  })

  test(`${kind}: two deployments on one database server (separate schemas or files) both start and stay apart (DATABASE_URL ?schema=)`, async (t) => {
    // Regression: the migrator used to find the *other* schema's migration tables and then fail on its own.
    const a = await startServer(t, { store: kind })
    if (!a) return
    const b = await startServer(t, { store: kind })
    assert.ok(b)
    assert.notEqual(a.databaseUrl, b.databaseUrl)
    const ua = await registerOk(a, 'miguel')
    const ub = await registerOk(b, 'miguel')
    assert.equal(ua.id, ub.id, 'each deployment numbers its own users')
    const token = await tokenOf(a, { basic: ['miguel', STRONG] })
    await expectProblem(await b.get('/api/resource', { bearer: token }), 401, 'token_invalid')
    for (const srv of [a, b]) assert.equal((await srv.get('/readyz')).status, 200)
  })

  test(`${kind}: /openapi.json is OpenAPI 3 and documents the REST-auth routes with their responses (contract §3)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const doc = await expectJson<OpenApiDoc>(await srv.get('/openapi.json'), 200)
    assert.match(doc.openapi, /^3\.\d+\.\d+$/)
    const expected: Array<[string, string, string[]]> = [
      ['/api/users', 'post', ['201', '400']],
      ['/api/users/{id}', 'get', ['200', '404']],
      ['/api/token', 'get', ['200', '401']],
      ['/api/resource', 'get', ['200', '401']],
    ]
    for (const [path, method, statuses] of expected) {
      const op = doc.paths[path]?.[method]
      assert.ok(op, `${method.toUpperCase()} ${path} is documented`)
      for (const status of statuses) assert.ok(op.responses?.[status], `${method.toUpperCase()} ${path} documents ${status}`)
    }
    assert.ok(doc.paths['/api/token']?.['get']?.security, '/api/token declares its security schemes')
    assert.ok(doc.paths['/api/resource']?.['get']?.security, '/api/resource declares its security schemes')
    const text = JSON.stringify(doc)
    assert.ok(!text.includes(srv.databaseUrl), 'the document does not reveal the database')
  })

  test(`${kind}: /docs answers 200 HTML (contract §3)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const res = await srv.get('/docs')
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html\b/)
    assert.match(await res.text(), /<html/i)
  })

  test(`${kind}: /errors lists every code of ERROR_CATALOGUE with its status (house style 4)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const res = await srv.get('/errors')
    assert.equal(res.status, 200)
    const text = await res.text()
    for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
      assert.match(text, new RegExp(`\\| \`${code}\` \\| ${entry.status} \\|`), `${code} is listed with status ${entry.status}`)
    }
  })

  test(`${kind}: unknown route → 404 problem not_found (RFC 9457)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/api'],
      ['GET', '/api/users'],
      ['DELETE', '/api/users/1'],
      ['POST', '/api/token'],
      ['GET', '/api/resource/'],
      ['GET', '/api/users/1/extra'],
    ] as const) {
      await expectProblem(await srv.request(method, path), 404, 'not_found')
    }
  })

  test(`${kind}: security headers on answers and problems (security baseline "Transport headers")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const responses = [
      await srv.get('/healthz'),
      await srv.get('/nope'),
      await srv.register('miguel', STRONG),
      await srv.get('/api/resource'),
      await srv.get('/api/resource', { basic: ['miguel', STRONG] }),
      await srv.get('/api/users/999'),
      await srv.post('/api/users', { body: 'x', headers: { 'content-type': 'text/plain' } }),
    ]
    for (const res of responses) {
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', res.url)
      assert.equal(res.headers.get('x-powered-by'), null)
      assert.equal(res.headers.get('access-control-allow-origin'), null, 'no CORS unless allow-listed')
      await res.body?.cancel()
    }
    for (const res of responses.filter((r) => new URL(r.url).pathname.startsWith('/api/'))) {
      assert.match(res.headers.get('cache-control') ?? '', /no-store/, res.url)
    }
  })

  test(`${kind}: the log holds no password, token, hash or Basic credentials (house style anti-pattern B)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { LOG_LEVEL: 'trace' } })
    if (!srv) return
    const password = 'Sekrit-Passphrase-4711'
    const wrongPassword = 'Wr0ng-Guess-Passphrase-0815'
    await registerOk(srv, 'miguel', password)
    const token = await tokenOf(srv, { basic: ['miguel', password] })
    const tampered = tamperSignature(token)
    const renewed = await tokenOf(srv, { bearer: token })
    const requests: Array<Promise<Response>> = [
      srv.get('/api/resource', { basic: ['miguel', password] }),
      srv.get('/api/resource', { basic: [token, 'unused-password-xyz'] }),
      srv.get('/api/resource', { bearer: token }),
      srv.get('/api/resource', { basic: ['miguel', wrongPassword] }),
      srv.get('/api/resource', { basic: ['nobody', wrongPassword] }),
      srv.get('/api/resource', { bearer: tampered }),
      srv.get('/api/resource', { basic: [tampered, wrongPassword] }),
      srv.get('/api/token', { bearer: tampered }),
      srv.get('/api/resource', { headers: { authorization: `Digest ${password}` } }),
      srv.post('/api/users', { json: { username: 'miguel', password } }), // taken
      srv.post('/api/users', { json: { username: 'other', password: wrongPassword, extra: { password } } }),
    ]
    for (const res of await Promise.all(requests)) await res.body?.cancel()

    const logs = srv.logs()
    assert.ok(logs.length > 0, 'the server logged something')
    const secrets: Array<[string, string]> = [
      ['password', password],
      ['wrong password', wrongPassword],
      ['token', token],
      ['renewed token', renewed],
      ['tampered token', tampered],
      ['token signature', token.split('.')[2] ?? ''],
      ['Basic credentials', basicHeader('miguel', password).slice('Basic '.length)],
      ['Basic credentials (wrong)', basicHeader('miguel', wrongPassword).slice('Basic '.length)],
      ['token-as-username credentials', basicHeader(token, 'unused-password-xyz').slice('Basic '.length)],
      ['unused password', 'unused-password-xyz'],
      ['argon2 hash', '$argon2id$'],
    ]
    for (const [name, secret] of secrets) {
      assert.ok(secret.length > 8)
      assert.ok(!logs.includes(secret), `the log contains the ${name}`)
    }
    const hash = (await srv.store.findUserByCanonicalName('miguel'))?.passwordHash ?? ''
    assert.ok(hash.startsWith('$argon2id$'))
    assert.ok(!logs.includes(hash.split('$').at(-1) ?? 'unreachable'), 'the log contains the hash digest')
  })
}
