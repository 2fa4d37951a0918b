/**
 * Helpers for the OAuth 2 and token-lifecycle suites (test/oauth, test/lifecycle): form-encoded
 * requests, RFC 6749 §5.2 error checks, clients created straight in the store, a clock the test
 * moves by hand, and direct reads of the refresh/revocation tables (to prove effects, not calls).
 */
import assert from 'node:assert/strict'
import { decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose'
import type { Clock } from '../../src/clock.ts'
import { hashClientSecret, newClientId, newClientSecret } from '../../src/oauth/clients.ts'
import type { KyselyStore } from '../../src/store/kysely-store.ts'
import type { TestServer } from './server.ts'

/** A password every policy accepts (≥ 15 code points, not common, unrelated to the usernames used). */
export const PASSWORD = 'correct horse battery staple'

export interface ManualClock extends Clock {
  /** Moves the clock forward by `seconds` (may be fractional). */
  advance(seconds: number): void
  set(ms: number): void
  seconds(): number
}

/** A clock moved by hand. Starts on a whole second so `iat`/`auth_time` arithmetic is exact. */
export function manualClock(startMs = Math.floor(Date.now() / 1000) * 1000): ManualClock {
  let t = startMs
  return {
    now: () => t,
    advance(seconds) {
      t += Math.round(seconds * 1000)
    },
    set(ms) {
      t = ms
    },
    seconds: () => Math.floor(t / 1000),
  }
}

export type FormParams = Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>

export interface FormOptions {
  /** HTTP Basic: client_secret_basic (RFC 6749 §2.3.1), form-urlencoded before base64. */
  readonly client?: TestClient
  readonly headers?: Readonly<Record<string, string>>
}

export interface TestClient {
  readonly clientId: string
  readonly secret: string
}

/** RFC 6749 §2.3.1: client id and secret are application/x-www-form-urlencoded, then joined and base64-encoded. */
export function clientBasic(client: TestClient): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+')
  return `Basic ${Buffer.from(`${enc(client.clientId)}:${enc(client.secret)}`, 'utf8').toString('base64')}`
}

export function formBody(params: FormParams): string {
  const entries: Array<[string, string]> = Array.isArray(params)
    ? (params as ReadonlyArray<readonly [string, string]>).map(([k, v]) => [k, v])
    : Object.entries(params as Record<string, string>)
  return new URLSearchParams(entries).toString()
}

/** POST application/x-www-form-urlencoded (RFC 6749 §3.2). */
export function postForm(srv: TestServer, path: string, params: FormParams, options: FormOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', ...options.headers }
  if (options.client !== undefined) headers['authorization'] = clientBasic(options.client)
  return srv.request('POST', path, { headers, body: formBody(params) })
}

export interface TokenResponseJson {
  readonly access_token: string
  readonly token_type: string
  readonly expires_in: number
  readonly refresh_token?: string
  readonly scope?: string
}

export interface OAuthErrorJson {
  readonly error: string
  readonly error_description?: string
}

/** A 200 token response (RFC 6749 §5.1), with its no-store headers. */
export async function expectTokenResponse(res: Response): Promise<TokenResponseJson> {
  const text = await res.text()
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${text}`)
  assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/)
  assert.equal(res.headers.get('cache-control'), 'no-store')
  assert.equal(res.headers.get('pragma'), 'no-cache')
  const body = JSON.parse(text) as TokenResponseJson
  assert.equal(typeof body.access_token, 'string')
  assert.equal(body.token_type, 'Bearer')
  assert.equal(typeof body.expires_in, 'number')
  return body
}

/** An RFC 6749 §5.2 error: JSON with `error` (and an ASCII `error_description`), never cached. */
export async function expectOAuthError(res: Response, status: number, error: string): Promise<OAuthErrorJson> {
  const text = await res.text()
  assert.equal(res.status, status, `expected ${status} ${error}, got ${res.status}: ${text}`)
  assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/, text)
  assert.equal(res.headers.get('cache-control'), 'no-store')
  const body = JSON.parse(text) as OAuthErrorJson
  assert.equal(body.error, error, text)
  if (body.error_description !== undefined) assert.match(body.error_description, /^[\x20-\x21\x23-\x5B\x5D-\x7E]*$/)
  assert.doesNotMatch(text, /\n\s+at |node_modules|\/work\//, 'no internals in the body')
  return body
}

export interface ProblemJson {
  readonly status: number
  readonly code: string
  readonly detail: string
}

/** An RFC 9457 problem of the REST-auth routes. */
export async function expectProblem(res: Response, status: number, code: string): Promise<ProblemJson> {
  const text = await res.text()
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${text}`)
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json\b/, text)
  const body = JSON.parse(text) as ProblemJson
  assert.equal(body.code, code, text)
  return body
}

export const BASIC_CHALLENGE = 'Basic realm="Authentication Required"'

export function assertBearerChallenge(res: Response, error: 'invalid_token' | 'insufficient_scope' | 'invalid_request'): void {
  const challenge = res.headers.get('www-authenticate') ?? ''
  assert.match(challenge, /^Bearer realm="Authentication Required"/, challenge)
  assert.match(challenge, new RegExp(`, error="${error}"(,|$)`), challenge)
}

export async function registerUser(srv: TestServer, username: string, password = PASSWORD): Promise<number> {
  const res = await srv.register(username, password)
  const text = await res.text()
  assert.equal(res.status, 201, `registration of ${username}: ${res.status} ${text}`)
  return (JSON.parse(text) as { id: number }).id
}

/** `GET /api/token` with Basic username:password. */
export async function apiToken(srv: TestServer, username: string, password = PASSWORD): Promise<string> {
  return srv.token(username, password)
}

export interface ClientSpec {
  readonly name?: string
  readonly scopes?: readonly string[]
  readonly grantTypes?: readonly string[]
  readonly now?: number
}

/** Registers an OAuth client directly in the store (as `rest-auth client create` does). */
export async function createClient(srv: TestServer, spec: ClientSpec = {}): Promise<TestClient> {
  const clientId = newClientId()
  const secret = newClientSecret()
  await srv.store.createClient({
    clientId,
    name: spec.name ?? 'test client',
    secretHash: hashClientSecret(secret),
    scopes: [...(spec.scopes ?? [])],
    grantTypes: [...(spec.grantTypes ?? ['client_credentials'])],
    createdAt: spec.now ?? Date.now(),
  })
  return { clientId, secret }
}

/** `grant_type=password` → 200 token response. */
export async function passwordGrant(
  srv: TestServer,
  username: string,
  options: { password?: string; client?: TestClient; scope?: string } = {},
): Promise<TokenResponseJson> {
  const params: Record<string, string> = { grant_type: 'password', username, password: options.password ?? PASSWORD }
  if (options.scope !== undefined) params['scope'] = options.scope
  return expectTokenResponse(await postForm(srv, '/oauth/token', params, options.client ? { client: options.client } : {}))
}

/** `grant_type=refresh_token` (the raw response: callers check success or the error). */
export function refreshGrant(srv: TestServer, refreshToken: string, options: { client?: TestClient; scope?: string } = {}): Promise<Response> {
  const params: Record<string, string> = { grant_type: 'refresh_token', refresh_token: refreshToken }
  if (options.scope !== undefined) params['scope'] = options.scope
  return postForm(srv, '/oauth/token', params, options.client ? { client: options.client } : {})
}

export async function introspect(srv: TestServer, client: TestClient, token: string): Promise<Record<string, unknown>> {
  const res = await postForm(srv, '/oauth/introspect', { token }, { client })
  const text = await res.text()
  assert.equal(res.status, 200, `introspection: ${res.status} ${text}`)
  assert.equal(res.headers.get('cache-control'), 'no-store')
  return JSON.parse(text) as Record<string, unknown>
}

export interface AccessClaims extends JWTPayload {
  readonly sub: string
  readonly iat: number
  readonly exp: number
  readonly jti: string
  readonly auth_time?: number
  readonly client_id?: string
  readonly scope?: string
  readonly sid?: string
}

export function claimsOf(token: string): AccessClaims {
  return decodeJwt(token) as AccessClaims
}

export function kidOf(token: string): string {
  const { kid } = decodeProtectedHeader(token)
  assert.equal(typeof kid, 'string')
  return kid as string
}

/** The store's Kysely instance, to look at rows the HTTP API does not show. */
export function dbOf(srv: TestServer): KyselyStore['db'] {
  return (srv.store as KyselyStore).db
}

export interface RefreshRow {
  readonly token_hash: string
  readonly rotated_at: number | null
}

export async function refreshRowsOfFamily(srv: TestServer, familyId: string): Promise<RefreshRow[]> {
  const rows = await dbOf(srv).selectFrom('refresh_tokens').select(['token_hash', 'rotated_at']).where('family_id', '=', familyId).execute()
  return rows.map((r) => ({ token_hash: r.token_hash, rotated_at: r.rotated_at === null ? null : Number(r.rotated_at) }))
}

export async function familyRevokedAt(srv: TestServer, familyId: string): Promise<number | null> {
  const row = await dbOf(srv).selectFrom('refresh_families').select('revoked_at').where('id', '=', familyId).executeTakeFirstOrThrow()
  return row.revoked_at === null ? null : Number(row.revoked_at)
}
