/**
 * Transport rules over real HTTP and HTTPS: HSTS on HTTPS only, credentials refused over plain HTTP
 * (AUTH_REQUIRE_HTTPS) with X-Forwarded-* honoured only from TRUST_PROXY, CORS by allow-list only,
 * nosniff everywhere, no-store on token responses, and the production refusals of the config
 * (security baseline "Transport headers", "Proxy"; RFC 6797; RFC 6749 §5.1; ASVS 3.4.1/3.4.2/3.4.4,
 * 4.1.3; Fetch standard CORS protocol).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { loadConfig } from '../../src/config/load.ts'
import { ConfigError } from '../../src/config/schema.ts'
import { buildApp, createLogger } from '../../src/http/app.ts'
import { createStore } from '../../src/store/kysely-store.ts'
import { basicHeader, FAST_ARGON2, startServer } from '../helpers/server.ts'
import { REQUIRE_SERVICES } from '../helpers/services.ts'
import { freshDatabaseUrl } from '../helpers/stores.ts'
import { postForm } from '../helpers/oauth.ts'
import { expectJson, expectProblem, rawRequest, registerOk, STRONG } from './support.ts'

const HSTS = 'max-age=31536000; includeSubDomains'
const APP_ORIGIN = 'https://app.example.com'
const REMOTE = '203.0.113.7'

// ---------------------------------------------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------------------------------------------

interface TlsFiles {
  readonly cert: Buffer
  readonly key: Buffer
}

/** A self-signed P-256 certificate for localhost / 127.0.0.1, made with the openssl binary; undefined = skipped. */
function selfSignedCertificate(t: TestContext): TlsFiles | undefined {
  const probe = spawnSync('openssl', ['version'], { encoding: 'utf8' })
  if (probe.error !== undefined || probe.status !== 0) {
    if (REQUIRE_SERVICES) throw new Error('REQUIRE_SERVICES=1 but the openssl binary is missing')
    process.stderr.write('\n*** SKIPPING HTTPS tests: no openssl binary ***\n\n')
    t.skip('openssl binary not found')
    return undefined
  }
  const dir = mkdtempSync(join(tmpdir(), 'rest-auth-tls-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  const made = spawnSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', keyFile, '-out', certFile,
    ],
    { encoding: 'utf8' },
  )
  assert.equal(made.status, 0, `openssl req failed: ${made.stderr}`)
  return { cert: readFileSync(certFile), key: readFileSync(keyFile) }
}

interface HttpsServer {
  readonly url: string
  readonly ca: Buffer
}

/** The real app with `tls` (as the CLI builds it from TLS_CERT_FILE / TLS_KEY_FILE), on 127.0.0.1:0. */
async function startHttps(t: TestContext, env: Readonly<Record<string, string>> = {}): Promise<HttpsServer | undefined> {
  const tls = selfSignedCertificate(t)
  if (tls === undefined) return undefined
  const databaseUrl = await freshDatabaseUrl(t, 'sqlite')
  if (databaseUrl === undefined) return undefined
  const { config } = loadConfig({
    env: {},
    overrides: { PORT: '0', LOG_LEVEL: 'info', AUTH_RATE_LIMITS: 'off', ...FAST_ARGON2, ...env, DATABASE_URL: databaseUrl },
  })
  const store = createStore(config.databaseUrl)
  await store.migrate()
  const sink = new Writable({ write: (_chunk: Buffer, _enc, cb) => cb() })
  const { app } = await buildApp({ config, store, logger: createLogger(config.logLevel, sink), tls })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(async () => {
    await app.close()
    await store.close()
  })
  assert.match(url, /^https:\/\//, 'the app serves HTTPS')
  return { url, ca: tls.cert }
}

interface SimpleResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
}

/** One request over TLS, verifying the server against the test certificate (no rejectUnauthorized: false). */
function overHttps(srv: HttpsServer, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, srv.url),
      { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) }, ca: srv.ca, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

test('HTTPS: every response carries Strict-Transport-Security max-age=31536000; includeSubDomains (RFC 6797 §7.1, ASVS 3.4.1)', async (t) => {
  const srv = await startHttps(t, { AUTH_REQUIRE_HTTPS: 'on' })
  if (!srv) return
  const json = { 'content-type': 'application/json' }
  const registered = await overHttps(srv, 'POST', '/api/users', json, JSON.stringify({ username: 'miguel', password: STRONG }))
  assert.equal(registered.status, 201, registered.body)
  const cases: Array<[string, string, Record<string, string>, number]> = [
    ['GET', '/healthz', {}, 200],
    ['GET', '/no/such/route', {}, 404],
    ['GET', '/api/resource', {}, 401],
    ['GET', '/api/resource', { authorization: basicHeader('miguel', 'wrong password here') }, 401],
    ['GET', '/api/token', { authorization: basicHeader('miguel', STRONG) }, 200],
    ['OPTIONS', '/api/resource', {}, 204],
  ]
  for (const [method, path, headers, status] of cases) {
    const res = await overHttps(srv, method, path, headers)
    assert.equal(res.status, status, `${method} ${path}: ${res.body}`)
    assert.equal(res.headers['strict-transport-security'], HSTS, `${method} ${path} → ${status}`)
    // from the header block of our ServerResponse, which the HTTPS server uses too: once each
    assert.equal(res.headers['x-content-type-options'], 'nosniff', `${method} ${path} → ${status}`)
    assert.equal(res.headers['referrer-policy'], 'no-referrer', `${method} ${path} → ${status}`)
  }
})

test('plain HTTP: no response carries Strict-Transport-Security, not even with X-Forwarded-Proto: https from an untrusted peer (RFC 6797 §7.2)', async (t) => {
  const srv = await startServer(t)
  if (!srv) return
  await registerOk(srv, 'miguel')
  const responses: Response[] = [
    await srv.get('/healthz'),
    await srv.get('/no/such/route'),
    await srv.get('/api/resource'),
    await srv.get('/api/token', { basic: ['miguel', STRONG] }),
    await srv.get('/api/token', { basic: ['miguel', STRONG], headers: { 'x-forwarded-proto': 'https' } }),
    await srv.get('/healthz', { headers: { 'x-forwarded-proto': 'https' } }),
    await srv.request('OPTIONS', '/api/resource'),
  ]
  for (const res of responses) {
    assert.equal(res.headers.get('strict-transport-security'), null, `${res.url} → ${res.status}`)
    await res.arrayBuffer()
  }
})

// ---------------------------------------------------------------------------------------------------------------
// AUTH_REQUIRE_HTTPS and TRUST_PROXY
// ---------------------------------------------------------------------------------------------------------------

const BEHIND_PROXY = { AUTH_REQUIRE_HTTPS: 'on', TRUST_PROXY: '127.0.0.1' } as const

async function expectHttpsRequired(res: Response): Promise<void> {
  assert.ok(res.status < 300 || res.status >= 400, `never a redirect (got ${res.status})`)
  assert.equal(res.headers.get('location'), null, 'no Location')
  await expectProblem(res, 403, 'https_required')
}

test('AUTH_REQUIRE_HTTPS=on: credentials from a remote client over plain HTTP → 403 https_required, never a redirect; with X-Forwarded-Proto: https from the trusted proxy → 200 (ASVS 3.4.1 / RFC 6797 §7.2, security baseline "Proxy")', async (t) => {
  const srv = await startServer(t, { env: BEHIND_PROXY })
  if (!srv) return
  await registerOk(srv, 'miguel')
  await expectHttpsRequired(await srv.get('/api/resource', { basic: ['miguel', STRONG], headers: { 'x-forwarded-for': REMOTE } }))
  await expectHttpsRequired(await srv.get('/api/token', { basic: ['miguel', STRONG], headers: { 'x-forwarded-for': REMOTE, 'x-forwarded-proto': 'http' } }))
  await expectHttpsRequired(await srv.get('/api/resource', { bearer: 'eyJhbGciOiJFUzI1NiJ9.e30.x', headers: { 'x-forwarded-for': REMOTE } }))
  const proxied = await srv.get('/api/resource', { basic: ['miguel', STRONG], headers: { 'x-forwarded-for': REMOTE, 'x-forwarded-proto': 'https' } })
  assert.equal(proxied.headers.get('strict-transport-security'), HSTS, 'the proxy speaks HTTPS to the client: HSTS')
  assert.deepEqual(await expectJson(proxied, 200), { data: 'Hello, miguel!' })
})

test('AUTH_REQUIRE_HTTPS=on: /oauth/token over plain HTTP from a remote client → 403 with an RFC 6749 §5.2 body (error invalid_request), never a redirect', async (t) => {
  const srv = await startServer(t, { env: BEHIND_PROXY })
  if (!srv) return
  await registerOk(srv, 'miguel')
  const res = await srv.request('POST', '/oauth/token', {
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': REMOTE },
    body: `grant_type=password&username=miguel&password=${encodeURIComponent(STRONG)}`,
  })
  assert.equal(res.status, 403)
  assert.equal(res.headers.get('location'), null)
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
  assert.equal(res.headers.get('cache-control'), 'no-store')
  assert.deepEqual(await res.json(), { error: 'invalid_request', error_description: 'Credentials are accepted over HTTPS only.' })
  // the same request through the TLS-terminating proxy is answered as usual
  const proxied = await srv.request('POST', '/oauth/token', {
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': REMOTE, 'x-forwarded-proto': 'https' },
    body: `grant_type=password&username=miguel&password=${encodeURIComponent(STRONG)}`,
  })
  const body = (await proxied.json()) as { error?: string; access_token?: string }
  assert.ok(proxied.status !== 403, `not refused through the proxy: ${JSON.stringify(body)}`)
})

test('AUTH_REQUIRE_HTTPS=on: a refused request is not checked: wrong passwords over plain HTTP get 403, not 401, and do not count toward login throttling (docs/errors.md https_required)', async (t) => {
  const srv = await startServer(t, { env: { ...BEHIND_PROXY, AUTH_RATE_LIMITS: 'on' } })
  if (!srv) return
  await registerOk(srv, 'miguel')
  for (let i = 0; i < 8; i++) {
    await expectHttpsRequired(await srv.get('/api/resource', { basic: ['miguel', 'a wrong guess'], headers: { 'x-forwarded-for': REMOTE } }))
  }
  const ok = await srv.get('/api/resource', { basic: ['miguel', STRONG], headers: { 'x-forwarded-for': REMOTE, 'x-forwarded-proto': 'https' } })
  await expectJson(ok, 200)
})

test('AUTH_REQUIRE_HTTPS=on: a loopback client without proxy headers passes (development), and so does a request without credentials (/healthz) from a remote client (configuration AUTH_REQUIRE_HTTPS)', async (t) => {
  const srv = await startServer(t, { env: BEHIND_PROXY })
  if (!srv) return
  await registerOk(srv, 'miguel')
  assert.deepEqual(await expectJson(await srv.get('/api/resource', { basic: ['miguel', STRONG] }), 200), { data: 'Hello, miguel!' })
  assert.deepEqual(await expectJson(await srv.get('/healthz', { headers: { 'x-forwarded-for': REMOTE } }), 200), { status: 'ok' })
  await expectJson(await srv.get('/api/users/1', { headers: { 'x-forwarded-for': REMOTE } }), 200)
  // No credentials: the route's own 401 with its challenge, not a 403.
  const anonymous = await srv.get('/api/resource', { headers: { 'x-forwarded-for': REMOTE } })
  assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm=/)
  await expectProblem(anonymous, 401, 'authentication_required')
})

test('AUTH_REQUIRE_HTTPS=on: a credential-bearing body (POST /api/users, POST /oauth/token) from a remote client over plain HTTP → 403, and nothing is created (configuration AUTH_REQUIRE_HTTPS)', async (t) => {
  const srv = await startServer(t, { env: BEHIND_PROXY })
  if (!srv) return
  await expectHttpsRequired(
    await srv.post('/api/users', { json: { username: 'miguel', password: STRONG }, headers: { 'x-forwarded-for': REMOTE } }),
  )
  assert.equal(await srv.store.findUserByCanonicalName('miguel'), undefined, 'the user was not registered')
  await registerOk(srv, 'miguel') // from loopback
  const res = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: STRONG }, { headers: { 'x-forwarded-for': REMOTE } })
  const text = await res.text()
  assert.equal(res.status, 403, text)
  assert.doesNotMatch(text, /access_token/)
})

test('AUTH_REQUIRE_HTTPS=on: the credential-bearing body rule holds however the path is spelled: POST /%61pi/users and /%6Fauth/token reach the same routes and must get 403 too (configuration AUTH_REQUIRE_HTTPS, RFC 3986 §2.3)', async (t) => {
  const srv = await startServer(t, { env: BEHIND_PROXY })
  if (!srv) return
  const registration = await srv.request('POST', '/%61pi/users', { json: { username: 'miguel', password: STRONG }, headers: { 'x-forwarded-for': REMOTE } })
  const registrationText = await registration.text()
  assert.notEqual(registration.status, 201, `a password crossed plain HTTP and was accepted: ${registrationText}`)
  assert.equal(registration.status, 403, registrationText)
  assert.equal(await srv.store.findUserByCanonicalName('miguel'), undefined, 'the user was not registered')
  await registerOk(srv, 'miguel') // from loopback
  const grant = await srv.request('POST', '/%6Fauth/token', {
    body: new URLSearchParams({ grant_type: 'password', username: 'miguel', password: STRONG }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': REMOTE },
  })
  const grantText = await grant.text()
  assert.doesNotMatch(grantText, /access_token/, 'no token for a password sent over plain HTTP')
  assert.equal(grant.status, 403, grantText)
})

test('without TRUST_PROXY, X-Forwarded-For and X-Forwarded-Proto from 127.0.0.1 are ignored: the client stays 127.0.0.1 (loopback, so it passes) (ASVS 4.1.3, security baseline "Proxy")', async (t) => {
  const srv = await startServer(t, { env: { AUTH_REQUIRE_HTTPS: 'on' } })
  if (!srv) return
  await registerOk(srv, 'miguel')
  const res = await srv.get('/api/token', { basic: ['miguel', STRONG], headers: { 'x-forwarded-for': REMOTE, 'x-forwarded-proto': 'https' } })
  assert.equal(res.headers.get('strict-transport-security'), null, 'X-Forwarded-Proto from an untrusted peer does not make it HTTPS')
  await expectJson(res, 200)
  await srv.runtime.audit.flush() // entries are written in batches
  const issued = await srv.store.queryAudit({ event: 'token.issued', limit: 10 })
  assert.equal(issued.length, 1)
  assert.equal(issued[0]?.ip, '127.0.0.1', 'request.ip is the socket address')
})

test('with TRUST_PROXY=127.0.0.1, the client address is the one X-Forwarded-For names (security baseline "Proxy")', async (t) => {
  const srv = await startServer(t, { env: BEHIND_PROXY })
  if (!srv) return
  await registerOk(srv, 'miguel')
  await expectJson(await srv.get('/api/token', { basic: ['miguel', STRONG], headers: { 'x-forwarded-for': REMOTE, 'x-forwarded-proto': 'https' } }), 200)
  await srv.runtime.audit.flush() // entries are written in batches
  const issued = await srv.store.queryAudit({ event: 'token.issued', limit: 10 })
  assert.equal(issued[0]?.ip, REMOTE)
})

// ---------------------------------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------------------------------

function listOf(value: string | null): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '')
}

function accessControlHeaders(res: Response): string[] {
  const names: string[] = []
  res.headers.forEach((_v, name) => {
    if (name.startsWith('access-control-')) names.push(name)
  })
  return names
}

test('CORS_ORIGINS: a preflight from an allowed origin → 204 with Allow-Origin echoing it and Allow-Headers including Authorization, no authentication needed (Fetch standard §3.2.3, security baseline "Transport headers")', async (t) => {
  const srv = await startServer(t, { env: { CORS_ORIGINS: APP_ORIGIN } })
  if (!srv) return
  const res = await srv.request('OPTIONS', '/api/resource', {
    headers: { origin: APP_ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
  })
  assert.equal(res.status, 204, await res.text())
  assert.equal(res.headers.get('access-control-allow-origin'), APP_ORIGIN)
  assert.ok(listOf(res.headers.get('access-control-allow-headers')).includes('authorization'), String(res.headers.get('access-control-allow-headers')))
  assert.ok(listOf(res.headers.get('access-control-allow-methods')).includes('get'), String(res.headers.get('access-control-allow-methods')))
  assert.ok(listOf(res.headers.get('vary')).includes('origin'), 'Vary: Origin')
  assert.equal(res.headers.get('www-authenticate'), null, 'a preflight is not asked to authenticate')
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
})

test('CORS_ORIGINS: an origin not on the list (or one that merely starts with an allowed one) gets no Access-Control-Allow-Origin (Fetch standard CORS protocol, security baseline "Transport headers": allow-listed only)', async (t) => {
  const srv = await startServer(t, { env: { CORS_ORIGINS: APP_ORIGIN } })
  if (!srv) return
  await registerOk(srv, 'miguel')
  for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'http://app.example.com', 'https://app.example.com:8443', 'null']) {
    const pre = await srv.request('OPTIONS', '/api/resource', { headers: { origin, 'access-control-request-method': 'GET' } })
    assert.equal(pre.headers.get('access-control-allow-origin'), null, `preflight from ${origin}`)
    assert.equal(pre.headers.get('access-control-allow-headers'), null, `preflight from ${origin}`)
    await pre.arrayBuffer()
    const get = await srv.get('/api/resource', { basic: ['miguel', STRONG], headers: { origin } })
    assert.equal(get.headers.get('access-control-allow-origin'), null, `GET from ${origin}`)
    assert.ok(listOf(get.headers.get('vary')).includes('origin'), 'Vary: Origin, so a cache keeps the answers apart')
    await get.arrayBuffer()
  }
})

test('CORS_ORIGINS: an ordinary request from the allowed origin gets Allow-Origin and Expose-Headers including WWW-Authenticate, on 200 and on 401 (Fetch standard CORS protocol)', async (t) => {
  const srv = await startServer(t, { env: { CORS_ORIGINS: APP_ORIGIN } })
  if (!srv) return
  await registerOk(srv, 'miguel')
  const ok = await srv.get('/api/resource', { basic: ['miguel', STRONG], headers: { origin: APP_ORIGIN } })
  assert.equal(ok.headers.get('access-control-allow-origin'), APP_ORIGIN)
  assert.ok(listOf(ok.headers.get('access-control-expose-headers')).includes('www-authenticate'))
  assert.ok(listOf(ok.headers.get('vary')).includes('origin'))
  await expectJson(ok, 200)
  const denied = await srv.get('/api/resource', { basic: ['miguel', 'wrong password'], headers: { origin: APP_ORIGIN } })
  assert.equal(denied.headers.get('access-control-allow-origin'), APP_ORIGIN, 'the script can read the 401')
  assert.ok(listOf(denied.headers.get('access-control-expose-headers')).includes('www-authenticate'))
  assert.match(denied.headers.get('www-authenticate') ?? '', /^Basic realm=/)
  await expectProblem(denied, 401, 'invalid_credentials')
})

test('CORS_ORIGINS set: Vary: Origin on every response, with or without an Origin header (RFC 9110 §12.5.5, Fetch standard CORS protocol and HTTP caches)', async (t) => {
  const srv = await startServer(t, { env: { CORS_ORIGINS: `${APP_ORIGIN},https://admin.example.com` } })
  if (!srv) return
  for (const res of [await srv.get('/healthz'), await srv.get('/no/such/route'), await srv.get('/api/resource'), await srv.get('/healthz', { headers: { origin: 'https://admin.example.com' } })]) {
    assert.ok(listOf(res.headers.get('vary')).includes('origin'), `${res.url} → ${res.status}`)
    await res.arrayBuffer()
  }
  const second = await srv.get('/healthz', { headers: { origin: 'https://admin.example.com' } })
  assert.equal(second.headers.get('access-control-allow-origin'), 'https://admin.example.com', 'each listed origin is allowed')
  await second.arrayBuffer()
})

test('without CORS_ORIGINS no Access-Control-* header ever appears (security baseline "Transport headers": no CORS unless allow-listed)', async (t) => {
  const srv = await startServer(t)
  if (!srv) return
  await registerOk(srv, 'miguel')
  const responses = [
    await srv.request('OPTIONS', '/api/resource', { headers: { origin: APP_ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } }),
    await srv.request('OPTIONS', '/api/token', { headers: { origin: 'null', 'access-control-request-method': 'GET' } }),
    await srv.get('/api/resource', { basic: ['miguel', STRONG], headers: { origin: APP_ORIGIN } }),
    await srv.get('/api/resource', { headers: { origin: APP_ORIGIN } }),
    await srv.get('/healthz', { headers: { origin: APP_ORIGIN } }),
    await srv.get('/no/such/route', { headers: { origin: APP_ORIGIN } }),
  ]
  for (const res of responses) {
    assert.deepEqual(accessControlHeaders(res), [], `${res.url} → ${res.status}`)
    await res.arrayBuffer()
  }
})

// ---------------------------------------------------------------------------------------------------------------
// Headers on every response
// ---------------------------------------------------------------------------------------------------------------

test('X-Content-Type-Options: nosniff on every response: 200, 201, 204, 400, 401, 403, 404, 415 (ASVS 3.4.4)', async (t) => {
  const srv = await startServer(t, { env: BEHIND_PROXY })
  if (!srv) return
  const checked: number[] = []
  const check = async (res: Response, status: number) => {
    assert.equal(res.status, status, `${res.url}: ${await res.clone().text()}`)
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${res.url} → ${res.status}`)
    checked.push(status)
    await res.arrayBuffer()
  }
  await check(await srv.register('miguel', STRONG), 201)
  await check(await srv.get('/healthz'), 200)
  await check(await srv.get('/no/such/route'), 404)
  await check(await srv.get('/api/users/999'), 404)
  await check(await srv.get('/api/resource'), 401)
  await check(await srv.get('/api/resource', { basic: ['miguel', 'wrong password'] }), 401)
  await check(await srv.request('OPTIONS', '/api/resource'), 204)
  await check(await srv.post('/api/users', { body: 'x', headers: { 'content-type': 'text/plain' } }), 415)
  await check(await srv.get('/api/resource', { basic: ['miguel', STRONG], headers: { 'x-forwarded-for': REMOTE } }), 403)
  // A router-level refusal (bad percent-encoding) that Fastify answers before any hook.
  const raw = await rawRequest(srv.url, 'GET', '/api/users/%E0%A4%A', [])
  assert.equal(raw.status, 400, raw.body)
  assert.equal(raw.headers['x-content-type-options'], 'nosniff', 'router errors too')
  assert.deepEqual(checked.length, 9)
})

test('Cache-Control: no-store by default on every /api/ answer, decided by the route matched (however the path is spelled, HEAD and 404 under /api/ included), and not elsewhere; Referrer-Policy: no-referrer everywhere (security baseline "Transport headers")', async (t) => {
  const srv = await startServer(t)
  if (!srv) return
  await registerOk(srv, 'miguel', STRONG)
  const api = [
    await srv.get('/api/users/1'),
    await srv.get('/%61pi/users/1'),
    await srv.get('/api/resource'),
    await srv.get('/api/resource', { basic: ['miguel', STRONG] }),
    await srv.request('HEAD', '/api/resource', { basic: ['miguel', STRONG] }),
    await srv.get('/api/no/such/route'),
    await srv.request('OPTIONS', '/api/users'),
  ]
  const other = [await srv.get('/healthz'), await srv.get('/openapi.json'), await srv.get('/no/such/route')]
  for (const res of api) {
    assert.equal(res.headers.get('cache-control'), 'no-store', `${res.url} → ${res.status}`)
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer', res.url)
    await res.body?.cancel()
  }
  for (const res of other) {
    assert.equal(res.headers.get('cache-control'), null, `${res.url} → ${res.status}`)
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer', res.url)
    await res.body?.cancel()
  }
  assert.deepEqual(api.map((r) => r.status), [200, 200, 401, 200, 200, 404, 204])
})

test('Cache-Control: no-store (and Pragma: no-cache) on the token responses of /api/token and /oauth/token, success or error (RFC 6749 §5.1, security baseline "Transport headers")', async (t) => {
  const srv = await startServer(t)
  if (!srv) return
  await registerOk(srv, 'miguel')
  const token = await srv.get('/api/token', { basic: ['miguel', STRONG] })
  assert.equal(token.headers.get('cache-control'), 'no-store')
  assert.equal(token.headers.get('pragma'), 'no-cache')
  await expectJson(token, 200)
  const denied = await srv.get('/api/token', { basic: ['miguel', 'wrong password'] })
  assert.equal(denied.headers.get('cache-control'), 'no-store')
  await expectProblem(denied, 401, 'invalid_credentials')
  const grant = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: STRONG })
  assert.equal(grant.headers.get('cache-control'), 'no-store')
  assert.equal(grant.headers.get('pragma'), 'no-cache')
  await expectJson(grant, 200)
  const bad = await postForm(srv, '/oauth/token', { grant_type: 'password', username: 'miguel', password: 'wrong password' })
  assert.equal(bad.headers.get('cache-control'), 'no-store')
  assert.equal(bad.status, 400, await bad.text())
})

// ---------------------------------------------------------------------------------------------------------------
// Config (pure: loadConfig)
// ---------------------------------------------------------------------------------------------------------------

function configError(env: Record<string, string>): ConfigError {
  let caught: unknown
  try {
    loadConfig({ env })
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${JSON.stringify(env)}, got ${String(caught)}`)
  return caught
}

test('config: NODE_ENV=production refuses AUTH_REQUIRE_HTTPS=off and AUTH_RATE_LIMITS=off, naming the key (house style §2.13, ASVS 3.4.1, NIST SP 800-63B-4 §3.2.2)', () => {
  const https = configError({ NODE_ENV: 'production', AUTH_REQUIRE_HTTPS: 'off' })
  assert.equal(https.key, 'AUTH_REQUIRE_HTTPS')
  assert.match(https.message, /^AUTH_REQUIRE_HTTPS: /)
  assert.match(https.message, /AUTH_ALLOW_INSECURE_PRODUCTION/, 'the message names the override')
  const limits = configError({ NODE_ENV: 'production', AUTH_RATE_LIMITS: 'off' })
  assert.equal(limits.key, 'AUTH_RATE_LIMITS')
  assert.match(limits.message, /^AUTH_RATE_LIMITS: /)
})

test('config: AUTH_ALLOW_INSECURE_PRODUCTION=on lets production start with both off, with a warning naming each key (house style §2.13)', () => {
  const { config, warnings } = loadConfig({
    env: { NODE_ENV: 'production', AUTH_REQUIRE_HTTPS: 'off', AUTH_RATE_LIMITS: 'off', AUTH_ALLOW_INSECURE_PRODUCTION: 'on' },
  })
  assert.equal(config.requireHttps, false)
  assert.equal(config.rateLimits, false)
  assert.ok(warnings.some((w) => w.includes('AUTH_REQUIRE_HTTPS')), warnings.join('\n'))
  assert.ok(warnings.some((w) => w.includes('AUTH_RATE_LIMITS')), warnings.join('\n'))
})

test('config: production defaults AUTH_REQUIRE_HTTPS to on; elsewhere it defaults to off; an explicit value wins (configuration AUTH_REQUIRE_HTTPS)', () => {
  const production = loadConfig({ env: { NODE_ENV: 'production' } })
  assert.equal(production.config.requireHttps, true)
  assert.equal(production.config.rateLimits, true)
  assert.deepEqual(production.warnings, [], 'safe defaults start without warnings')
  assert.equal(loadConfig({ env: {} }).config.requireHttps, false)
  assert.equal(loadConfig({ env: { NODE_ENV: 'development' } }).config.requireHttps, false)
  assert.equal(loadConfig({ env: { AUTH_REQUIRE_HTTPS: 'on' } }).config.requireHttps, true)
})

test('config: TLS_CERT_FILE and TLS_KEY_FILE go together; one without the other is a ConfigError naming the missing key (configuration)', () => {
  assert.equal(configError({ TLS_CERT_FILE: '/etc/rest-auth/cert.pem' }).key, 'TLS_KEY_FILE')
  assert.equal(configError({ TLS_KEY_FILE: '/etc/rest-auth/key.pem' }).key, 'TLS_CERT_FILE')
  const { config } = loadConfig({ env: { TLS_CERT_FILE: '/etc/rest-auth/cert.pem', TLS_KEY_FILE: '/etc/rest-auth/key.pem' } })
  assert.equal(config.tlsCertFile, '/etc/rest-auth/cert.pem')
  assert.equal(config.tlsKeyFile, '/etc/rest-auth/key.pem')
})

test('config: CORS_ORIGINS takes exact origins only: "*", "null", a path, a query, credentials or a non-http scheme are refused (security baseline "Transport headers")', () => {
  for (const bad of ['*', 'null', 'https://a.example/path', 'https://a.example?x=1', 'https://user@a.example', 'ftp://a.example', 'a.example', `${APP_ORIGIN},*`]) {
    const error = configError({ CORS_ORIGINS: bad })
    assert.equal(error.key, 'CORS_ORIGINS', bad)
  }
  const { config } = loadConfig({ env: { CORS_ORIGINS: 'https://a.example/, https://b.example:8443' } })
  assert.deepEqual(config.corsOrigins, ['https://a.example', 'https://b.example:8443'])
  assert.deepEqual(loadConfig({ env: {} }).config.corsOrigins, [])
})

test('config: TRUST_PROXY refuses trusting everyone ("true", "*") and takes an explicit list (ASVS 4.1.3, security baseline "Proxy")', () => {
  assert.equal(configError({ TRUST_PROXY: 'true' }).key, 'TRUST_PROXY')
  assert.equal(configError({ TRUST_PROXY: '*' }).key, 'TRUST_PROXY')
  assert.equal(configError({ TRUST_PROXY: '10.0.0.1,everyone' }).key, 'TRUST_PROXY')
  assert.deepEqual(loadConfig({ env: { TRUST_PROXY: '10.0.0.1, 192.168.0.0/16' } }).config.trustProxy, ['10.0.0.1', '192.168.0.0/16'])
})

test('config: REDIS_URL must be redis:// or rediss:// (configuration REDIS_URL)', () => {
  assert.equal(configError({ REDIS_URL: 'http://127.0.0.1:6379' }).key, 'REDIS_URL')
  assert.equal(loadConfig({ env: { REDIS_URL: 'rediss://cache.internal:6380' } }).config.redisUrl, 'rediss://cache.internal:6380')
})

