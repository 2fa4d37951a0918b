/**
 * Shared pieces of the HTTP suite (not a test file: the runner only picks up `*.test.ts`).
 * Real loopback HTTP only: fetch for ordinary requests, raw bytes over node:net where fetch would
 * rewrite the request (duplicate headers, a chosen Host, bytes that are not UTF-8).
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose'
import type { Clock } from '../../src/clock.ts'
import type { TestServer } from '../helpers/server.ts'

/** A password every policy accepts (≥ 15 code points, not common, unrelated to the usernames used). */
export const STRONG = 'correct horse battery staple'

/** A clock the test moves by hand. Starts on a whole second so `iat`/`auth_time` arithmetic is exact. */
export interface ManualClock extends Clock {
  advance(seconds: number): void
  set(ms: number): void
  seconds(): number
}

export function manualClock(startMs = Math.floor(Date.now() / 1000) * 1000): ManualClock {
  let t = startMs
  return {
    now: () => t,
    advance(seconds) {
      t += seconds * 1000
    },
    set(ms) {
      t = ms
    },
    seconds: () => Math.floor(t / 1000),
  }
}

export interface ProblemJson {
  readonly type: string
  readonly title: string
  readonly status: number
  readonly detail: string
  readonly code: string
  readonly [k: string]: unknown
}

/** Stack frames, source locations and server paths: none may reach a client. */
export function assertNoInternals(text: string): void {
  assert.doesNotMatch(text, /\n\s+at /, 'stack frame in the body')
  assert.doesNotMatch(text, /\bat [^\s"]+ \(/, 'stack frame in the body')
  assert.doesNotMatch(text, /\.(?:ts|js|mjs|cjs):\d+/, 'source location in the body')
  assert.doesNotMatch(text, /(?:file:\/\/|node_modules|\/work\/|\/home\/|\/tmp\/|\/usr\/)/, 'server path in the body')
  assert.doesNotMatch(text, /(?:SQLITE_|syntax error|relation "|violates|duplicate key)/i, 'database text in the body')
}

/** Checks an RFC 9457 problem answer and returns its body. */
export async function expectProblem(res: Response, status: number, code?: string): Promise<ProblemJson> {
  const text = await res.text()
  assert.equal(res.status, status, `expected ${status}${code ? ` ${code}` : ''}, got ${res.status}: ${text}`)
  return checkProblemText(text, res.headers.get('content-type'), status, code)
}

export function checkProblemText(text: string, contentType: string | null | undefined, status: number, code?: string): ProblemJson {
  assert.match(contentType ?? '', /^application\/problem\+json\b/, `content-type of ${text}`)
  assertNoInternals(text)
  const body = JSON.parse(text) as ProblemJson
  assert.equal(typeof body.type, 'string')
  assert.equal(typeof body.title, 'string')
  assert.equal(typeof body.detail, 'string')
  assert.equal(typeof body.code, 'string')
  assert.equal(body.status, status)
  assert.equal(body.type, `/errors#${body.code}`)
  if (code !== undefined) assert.equal(body.code, code, `detail: ${body.detail}`)
  return body
}

export async function expectJson<T = Record<string, unknown>>(res: Response, status: number): Promise<T> {
  const text = await res.text()
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${text}`)
  assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/)
  return JSON.parse(text) as T
}

export async function registerOk(srv: TestServer, username: string, password = STRONG): Promise<{ id: number; username: string }> {
  return expectJson<{ id: number; username: string }>(await srv.register(username, password), 201)
}

export async function tokenOf(srv: TestServer, auth: { basic?: readonly [string, string]; bearer?: string }): Promise<string> {
  const body = await expectJson<{ token: string; duration: number }>(await srv.get('/api/token', auth), 200)
  return body.token
}

export interface AccessClaimsJson {
  readonly iss: string
  readonly aud: string
  readonly sub: string
  readonly iat: number
  readonly exp: number
  readonly jti: string
  readonly auth_time: number
}

export function claimsOf(token: string): AccessClaimsJson {
  return decodeJwt(token) as unknown as AccessClaimsJson
}

export function headerOf(token: string): ReturnType<typeof decodeProtectedHeader> {
  return decodeProtectedHeader(token)
}

/** Replaces one character in the middle of the signature (every such character carries 6 bits). */
export function tamperSignature(token: string): string {
  const dot = token.lastIndexOf('.')
  const i = dot + 10
  const ch = token[i]
  return token.slice(0, i) + (ch === 'A' ? 'B' : 'A') + token.slice(i + 1)
}

export function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url')
}

/** An unsigned token (RFC 7519 §6): `alg: none`, empty signature. */
export function unsecuredToken(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  return `${b64url({ ...header, alg: 'none' })}.${b64url(claims)}.`
}

/** Signs claims with a brand-new ES256 key the server has never seen. */
export async function signWithForeignKey(claims: Record<string, unknown>, kid: string): Promise<string> {
  const { privateKey } = await generateKeyPair('ES256')
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid }).sign(privateKey)
}

/** Signs claims with the server's own current key, read from its database (to test claim checks alone). */
export async function signWithServerKey(
  srv: TestServer,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const keys = await srv.store.listSigningKeys()
  const record = keys.at(-1)
  assert.ok(record !== undefined, 'the server has a signing key in its database')
  const key = await importJWK(JSON.parse(record.privateJwk) as JWK, 'ES256')
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: record.kid, ...header }).sign(key)
}

// ---------------------------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over node:net
// ---------------------------------------------------------------------------------------------------------------

export interface RawResponse {
  readonly status: number
  /** Lower-cased names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly bodyBytes: Buffer
}

/**
 * Sends one request exactly as given (header lines as written, body bytes as given) with
 * `Connection: close`, and parses the answer. `headers` are [name, value] pairs; values may be
 * Buffers to send bytes that are not UTF-8.
 */
export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  headers: ReadonlyArray<readonly [string, string | Buffer]>,
  body?: Buffer | string,
): Promise<RawResponse> {
  const url = new URL(baseUrl)
  const bodyBytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')
  const lines: Buffer[] = [Buffer.from(`${method} ${path} HTTP/1.1\r\n`, 'latin1')]
  const names = headers.map(([n]) => n.toLowerCase())
  if (!names.includes('host')) lines.push(Buffer.from(`Host: ${url.host}\r\n`, 'latin1'))
  for (const [name, value] of headers) {
    lines.push(Buffer.from(`${name}: `, 'latin1'), Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1'), Buffer.from('\r\n'))
  }
  if (bodyBytes !== undefined && !names.includes('content-length')) {
    lines.push(Buffer.from(`Content-Length: ${bodyBytes.length}\r\n`, 'latin1'))
  }
  lines.push(Buffer.from('Connection: close\r\n\r\n', 'latin1'))
  if (bodyBytes !== undefined) lines.push(bodyBytes)
  const request = Buffer.concat(lines)

  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    const chunks: Buffer[] = []
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')))
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (error) => {
      // The server may close as soon as it answered; what it sent still counts.
      if (chunks.length > 0) resolve(parseRaw(Buffer.concat(chunks)))
      else reject(error)
    })
    socket.on('end', () => resolve(parseRaw(Buffer.concat(chunks))))
    socket.write(request)
  })
}

function parseRaw(all: Buffer): RawResponse {
  const split = all.indexOf('\r\n\r\n')
  assert.ok(split > 0, `no HTTP response head in ${JSON.stringify(all.toString('latin1').slice(0, 200))}`)
  const head = all.subarray(0, split).toString('latin1').split('\r\n')
  const statusLine = head.shift() ?? ''
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)
  assert.ok(m !== null, `bad status line ${statusLine}`)
  const headers: Record<string, string> = {}
  for (const line of head) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  let body = all.subarray(split + 4)
  if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
    const parts: Buffer[] = []
    let rest = body
    for (;;) {
      const eol = rest.indexOf('\r\n')
      if (eol < 0) break
      const size = Number.parseInt(rest.subarray(0, eol).toString('latin1'), 16)
      if (!Number.isFinite(size) || size === 0) break
      parts.push(rest.subarray(eol + 2, eol + 2 + size))
      rest = rest.subarray(eol + 2 + size + 2)
    }
    body = Buffer.concat(parts)
  }
  return { status: Number(m[1]), headers, body: body.toString('utf8'), bodyBytes: body }
}

/** Headers of a fetch Response as a plain object, minus `date` (which legitimately differs). */
export function headersWithoutDate(res: Response): Record<string, string> {
  const out: Record<string, string> = {}
  res.headers.forEach((value, name) => {
    if (name !== 'date') out[name] = value
  })
  return out
}
