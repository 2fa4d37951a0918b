/**
 * A table of JWT attacks (RFC 8725 "JWT Best Current Practices", OWASP JWT Cheat Sheet), each run through
 * every way a token can be presented (contract §1): `Authorization: Bearer <t>` on /api/resource,
 * `<t>:x` as the Basic username on /api/resource, and renewal at GET /api/token with Bearer. Every case is
 * refused with 401 (400 bearer_malformed where RFC 6750 §2.1 says the credential is not a b64token, 431
 * header_too_large past the 8 KiB cap), never 200, never 5xx, with an RFC 9457 body that carries neither
 * the token nor any internals.
 *
 * Forgeries that need a valid signature are signed with the server's own private key, read from its
 * database, so that only the property under test is wrong (the control subtests prove that a correct
 * forgery passes). Attacker keys are fresh jose keys the server has never seen.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createPrivateKey, type JsonWebKey, randomUUID, sign as nodeSign } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  base64url,
  CompactSign,
  type CompactJWSHeaderParameters,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  importPKCS8,
  type JWK,
  SignJWT,
} from 'jose'
import type { ErrorCode } from '../../src/errors.ts'
import { createStore } from '../../src/store/kysely-store.ts'
import type { SigningKey } from '../../src/store/store.ts'
import { generateSigningKey } from '../../src/tokens/rotation.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'
import { checkProblemText, claimsOf, expectJson, headerOf, manualClock, registerOk, STRONG, tokenOf } from '../http/support.ts'

// ---------------------------------------------------------------------------------------------------------------
// Presentations and the refusal rule
// ---------------------------------------------------------------------------------------------------------------

type Presentation = 'bearer' | 'basic' | 'renew'
const PRESENTATIONS: readonly Presentation[] = ['bearer', 'basic', 'renew']

/** RFC 9110 / security baseline: the app refuses an Authorization value over 8 KiB with 431. */
const AUTHORIZATION_CAP = 8192
/** RFC 6750 §2.1 b64token: what a Bearer credential may hold. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
/** RFC 7515 §7.1 compact serialisation: three base64url segments. Only such a Basic username is a token. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
/** jose's and the verifier's own words: none may reach a client. */
const JOSE_TEXT = /JWS|JWE|JWK|JWT|ERR_J|claim|signature verification|Compact|crit|alg\b|kid\b/i

function authorizationFor(p: Presentation, token: string): string {
  return p === 'basic' ? `Basic ${Buffer.from(`${token}:x`, 'utf8').toString('base64')}` : `Bearer ${token}`
}

async function present(srv: TestServer, p: Presentation, token: string): Promise<Response> {
  const path = p === 'renew' ? '/api/token' : '/api/resource'
  return srv.get(path, { headers: { authorization: authorizationFor(p, token) } })
}

/**
 * What the contract allows for a refused token: the case's code when the credential is read as a token;
 * `bearer_malformed` (400) for a Bearer credential that is not a b64token (RFC 6750 §2.1); for Basic, a
 * username that does not have the compact JWS shape is a username, so `invalid_credentials`; past the cap,
 * 431 `header_too_large`.
 */
function allowedOutcome(p: Presentation, token: string, codes: readonly ErrorCode[]): { status: number; codes: readonly ErrorCode[] } {
  if (authorizationFor(p, token).length > AUTHORIZATION_CAP) return { status: 431, codes: ['header_too_large'] }
  if (p !== 'basic' && !B64TOKEN.test(token)) return { status: 400, codes: ['bearer_malformed'] }
  if (p === 'basic' && !(token.length > 32 && COMPACT_JWS.test(token))) return { status: 401, codes: ['invalid_credentials'] }
  return { status: 401, codes }
}

async function expectRefused(srv: TestServer, p: Presentation, token: string, codes: readonly ErrorCode[], label: string): Promise<void> {
  const res = await present(srv, p, token)
  const text = await res.text()
  const where = `${label} [${p}]`
  assert.notEqual(res.status, 200, `${where}: accepted: ${text}`)
  assert.ok(res.status < 500, `${where}: ${res.status} ${text}`)
  const expected = allowedOutcome(p, token, codes)
  assert.equal(res.status, expected.status, `${where}: ${text}`)
  const problem = checkProblemText(text, res.headers.get('content-type'), expected.status)
  assert.ok(expected.codes.includes(problem.code as ErrorCode), `${where}: code ${problem.code}, expected one of ${expected.codes.join(', ')}`)
  assert.doesNotMatch(problem.detail, JOSE_TEXT, `${where}: verifier internals in detail: ${problem.detail}`)

  const challenge = res.headers.get('www-authenticate') ?? ''
  if (expected.status === 401) {
    if (p === 'basic') assert.equal(challenge, 'Basic realm="Authentication Required"', where)
    else assert.match(challenge, /^Bearer realm="Authentication Required", error="invalid_token"/, `${where}: ${challenge}`)
  } else if (expected.status === 400) {
    assert.match(challenge, /^Bearer realm="Authentication Required", error="invalid_request"/, `${where}: ${challenge}`)
  }
  assert.doesNotMatch(challenge, JOSE_TEXT, `${where}: verifier internals in the challenge: ${challenge}`)
  // Neither the token nor any of its segments is echoed (house style anti-pattern B).
  for (const piece of [token, ...token.split('.').filter((s) => s.length >= 12)]) {
    assert.ok(!text.includes(piece), `${where}: the token is echoed in the body`)
    assert.ok(!challenge.includes(piece), `${where}: the token is echoed in the challenge`)
  }
}

async function expectAccepted(srv: TestServer, token: string, label: string): Promise<void> {
  for (const p of PRESENTATIONS) {
    const res = await present(srv, p, token)
    assert.equal(res.status, 200, `${label} [${p}]: ${await res.text()}`)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Forging
// ---------------------------------------------------------------------------------------------------------------

const enc = (value: unknown): string => base64url.encode(JSON.stringify(value))
const P256_ORDER = BigInt('0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551')

/** ES256 over exactly `signingInput` (RFC 7515 §5.1), with the raw r‖s signature of RFC 7518 §3.4. */
function es256(privateJwk: JWK, signingInput: string): string {
  const key = createPrivateKey({ key: privateJwk as JsonWebKey, format: 'jwk' })
  return nodeSign('sha256', Buffer.from(signingInput, 'ascii'), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')
}

/** A compact JWS from a header (object, or exact JSON text) and a payload (object, or exact bytes). */
function compact(privateJwk: JWK, header: Record<string, unknown> | string, payload: Record<string, unknown> | Uint8Array | string): string {
  const h = typeof header === 'string' ? base64url.encode(header) : enc(header)
  const p = payload instanceof Uint8Array || typeof payload === 'string' ? base64url.encode(payload) : enc(payload)
  return `${h}.${p}.${es256(privateJwk, `${h}.${p}`)}`
}

interface KnownKey {
  readonly kid: string
  readonly privateJwk: JWK
  readonly publicJwk: JWK
}

function knownKey(record: SigningKey): KnownKey {
  return { kid: record.kid, privateJwk: JSON.parse(record.privateJwk) as JWK, publicJwk: JSON.parse(record.publicJwk) as JWK }
}

interface Attacker {
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
  readonly kid: string
  /** Base URL of an HTTP server the attacker controls; every request it gets is recorded. */
  readonly url: string
  readonly hits: string[]
  /** A self-signed certificate (standard base64 DER) of `certKey`, for `x5c`; undefined without openssl. */
  readonly cert: { readonly der: string; readonly key: CryptoKey } | undefined
}

async function startAttacker(t: TestContext): Promise<Attacker> {
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  const kid = `attacker-${randomUUID()}`
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }
  const hits: string[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    hits.push(`${req.method ?? ''} ${req.url ?? ''}`)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: [publicJwk] }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  return { privateKey, publicJwk, kid, url: `http://127.0.0.1:${port}`, hits, cert: await selfSignedCert(t) }
}

/** An attacker's self-signed P-256 certificate (for `x5c`), made with the openssl binary when there is one. */
async function selfSignedCert(t: TestContext): Promise<{ der: string; key: CryptoKey } | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'rest-auth-x5c-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=attacker.example', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' })
  } catch {
    return undefined
  }
  const pem = readFileSync(join(dir, 'cert.pem'), 'utf8')
  const der = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')
  const key = await importPKCS8(readFileSync(join(dir, 'key.pem'), 'utf8'), 'ES256')
  return { der, key }
}

async function attackerSign(privateKey: CryptoKey, header: Record<string, unknown>, claims: Record<string, unknown>): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', ...header } as CompactJWSHeaderParameters)
    .sign(privateKey)
}

/** The signature segment of an ES256 token with s replaced by n − s: a second valid signature (ECDSA malleability). */
function highS(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string]
  const sig = Buffer.from(s, 'base64url')
  assert.equal(sig.length, 64)
  const sValue = BigInt(`0x${sig.subarray(32).toString('hex')}`)
  const flipped = Buffer.from((P256_ORDER - sValue).toString(16).padStart(64, '0'), 'hex')
  return `${h}.${p}.${Buffer.concat([sig.subarray(0, 32), flipped]).toString('base64url')}`
}

/** The same signature bytes with the unused low bits of the last base64url character set (RFC 4648 §3.5). */
function nonCanonicalSignature(token: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const last = token.at(-1) ?? 'A'
  const value = alphabet.indexOf(last)
  // 64 bytes → 86 characters: the last one carries 2 bits of data and 4 unused bits.
  return token.slice(0, -1) + (alphabet[value | 0b0101] ?? last)
}

/** The signature as DER (ASN.1 SEQUENCE of two INTEGERs) instead of RFC 7518 §3.4's raw r‖s. */
function derSignature(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string]
  const raw = Buffer.from(s, 'base64url')
  const int = (b: Buffer) => {
    let v = b
    while (v.length > 1 && v[0] === 0 && (v[1] ?? 0) < 0x80) v = v.subarray(1)
    if ((v[0] ?? 0) >= 0x80) v = Buffer.concat([Buffer.from([0]), v])
    return Buffer.concat([Buffer.from([0x02, v.length]), v])
  }
  const body = Buffer.concat([int(raw.subarray(0, 32)), int(raw.subarray(32))])
  return `${h}.${p}.${Buffer.concat([Buffer.from([0x30, body.length]), body]).toString('base64url')}`
}

/**
 * A correct token (server key) whose header and payload base64url hold '-' and '_' and need padding, so that
 * the standard alphabet and padded re-encodings really differ from it.
 */
function awkward(f: Fixture): string {
  for (let n = 0; n < 12; n++) {
    const header = f.header({ 'urn:example:pad': `${'?'.repeat(n)}>>>` })
    const claims = f.claims({ pad: `${'?'.repeat(n)}>>>` })
    const [h, p] = [enc(header), enc(claims)]
    if (/[-_]/.test(h) && /[-_]/.test(p) && h.length % 4 !== 0 && p.length % 4 !== 0) {
      const token = f.serverSigned(claims, header)
      return token
    }
  }
  throw new Error('no awkward encoding found')
}

function segments(token: string): [string, string, string] {
  const parts = token.split('.')
  assert.equal(parts.length, 3)
  return parts as [string, string, string]
}

// ---------------------------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------------------------

interface Fixture {
  readonly srv: TestServer
  /** Seconds, the server's (manual) clock. */
  readonly now: number
  readonly leeway: number
  /** A real token from /api/token. */
  readonly valid: string
  /** The key the server signs with, a second key it publishes (staged), and an expired one it must not trust. */
  readonly current: KnownKey
  readonly staged: KnownKey
  readonly expired: KnownKey
  readonly attacker: Attacker
  /** The JWK Set exactly as /.well-known/jwks.json serves it. */
  readonly jwksText: string
  /** Valid claims with a fresh jti, then `extra` (an `undefined` member removes the claim). */
  claims(extra?: Record<string, unknown>): Record<string, unknown>
  /** Header of a correct token, then `extra` (an `undefined` member removes the parameter). */
  header(extra?: Record<string, unknown>): Record<string, unknown>
  /** Signed with the server's current key. */
  serverSigned(claims?: Record<string, unknown> | Uint8Array | string, header?: Record<string, unknown> | string): string
}

interface Attack {
  readonly name: string
  /** Expected code when the credential is read as a token; default token_invalid. */
  readonly codes?: readonly ErrorCode[]
  make(f: Fixture): string | Promise<string>
}

const HS_SECRETS: ReadonlyArray<readonly [string, (f: Fixture) => Promise<Uint8Array>]> = [
  ['the JWK exactly as the JWKS serves it', async (f) => new TextEncoder().encode(JSON.stringify(jwkOf(f)))],
  ['the whole JWKS document', async (f) => new TextEncoder().encode(f.jwksText)],
  ['the public JWK {kty,crv,x,y}', async (f) => {
    const { kty, crv, x, y } = jwkOf(f)
    return new TextEncoder().encode(JSON.stringify({ kty, crv, x, y }))
  }],
  ['the SPKI PEM', async (f) => new TextEncoder().encode(await spkiPem(f))],
  ['the SPKI PEM without its final newline', async (f) => new TextEncoder().encode((await spkiPem(f)).trimEnd())],
  ['the SPKI DER', async (f) => Buffer.from((await spkiPem(f)).replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')],
  ['the uncompressed EC point 04‖x‖y', async (f) => {
    const { x, y } = jwkOf(f)
    return Buffer.concat([Buffer.from([4]), Buffer.from(String(x), 'base64url'), Buffer.from(String(y), 'base64url')])
  }],
]

function jwkOf(f: Fixture): JWK {
  const jwks = JSON.parse(f.jwksText) as { keys: JWK[] }
  const jwk = jwks.keys.find((k) => k.kid === f.current.kid)
  assert.ok(jwk !== undefined, 'the signing key is in the JWKS')
  return jwk
}

async function spkiPem(f: Fixture): Promise<string> {
  return exportSPKI((await importJWK(jwkOf(f), 'ES256')) as CryptoKey)
}

const ATTACKS: readonly Attack[] = [
  // ---- RFC 8725 §2.1 / §3.1: algorithm "none" and algorithm confusion ----
  { name: 'alg none, empty signature (RFC 7519 §6)', make: (f) => `${enc(f.header({ alg: 'none' }))}.${enc(f.claims())}.` },
  { name: 'alg none, with a signature part', make: (f) => `${enc(f.header({ alg: 'none' }))}.${enc(f.claims())}.${segments(f.valid)[2]}` },
  { name: 'alg none, with an arbitrary signature part', make: (f) => `${enc(f.header({ alg: 'none' }))}.${enc(f.claims())}.c2lnbmF0dXJl` },
  { name: 'alg "None" (case variant)', make: (f) => `${enc(f.header({ alg: 'None' }))}.${enc(f.claims())}.` },
  { name: 'alg "NONE" with the kid removed', make: (f) => `${enc(f.header({ alg: 'NONE', kid: undefined }))}.${enc(f.claims())}.` },
  { name: 'alg none over the real token’s payload', make: (f) => `${enc(f.header({ alg: 'none' }))}.${segments(f.valid)[1]}.` },
  ...HS_SECRETS.map(
    ([what, secret]): Attack => ({
      name: `HS256 keyed with the server's public key: ${what} (RFC 8725 §2.1 algorithm confusion)`,
      make: async (f) =>
        new SignJWT(f.claims()).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: f.current.kid }).sign(await secret(f)),
    }),
  ),
  { name: 'HS512 keyed with the SPKI PEM', make: async (f) =>
      new SignJWT(f.claims()).setProtectedHeader({ alg: 'HS512', typ: 'at+jwt', kid: f.current.kid }).sign(new TextEncoder().encode(await spkiPem(f))) },
  { name: 'RS256 by an attacker key, with the server kid (alg allowlist)', make: async (f) => {
      const { privateKey } = await generateKeyPair('RS256')
      return new SignJWT(f.claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: f.current.kid }).sign(privateKey)
    } },
  { name: 'ES384 by an attacker key, with the server kid (alg allowlist)', make: async (f) => {
      const { privateKey } = await generateKeyPair('ES384')
      return new SignJWT(f.claims()).setProtectedHeader({ alg: 'ES384', typ: 'at+jwt', kid: f.current.kid }).sign(privateKey)
    } },
  { name: 'EdDSA by an attacker key, with the server kid (alg allowlist)', make: async (f) => {
      const { privateKey } = await generateKeyPair('Ed25519')
      return new SignJWT(f.claims()).setProtectedHeader({ alg: 'Ed25519', typ: 'at+jwt', kid: f.current.kid }).sign(privateKey)
    } },

  // ---- RFC 8725 §3.10 / OWASP: keys named by the token itself ----
  { name: 'embedded jwk of the attacker key, no kid', make: (f) => attackerSign(f.attacker.privateKey, { jwk: f.attacker.publicJwk }, f.claims()) },
  { name: 'embedded jwk of the attacker key, with the server kid', make: (f) =>
      attackerSign(f.attacker.privateKey, { jwk: f.attacker.publicJwk, kid: f.current.kid }, f.claims()) },
  { name: 'embedded jwk claiming to be the server key (server x,y) signed by the attacker', make: (f) =>
      attackerSign(f.attacker.privateKey, { jwk: jwkOf(f), kid: f.current.kid }, f.claims()) },
  { name: 'jku pointing at the attacker’s JWKS', make: (f) =>
      attackerSign(f.attacker.privateKey, { jku: `${f.attacker.url}/jwks.json`, kid: f.attacker.kid }, f.claims()) },
  { name: 'jku pointing at the attacker’s JWKS, with the server kid', make: (f) =>
      attackerSign(f.attacker.privateKey, { jku: `${f.attacker.url}/jwks.json`, kid: f.current.kid }, f.claims()) },
  { name: 'x5u pointing at the attacker’s server', make: (f) =>
      attackerSign(f.attacker.privateKey, { x5u: `${f.attacker.url}/cert.pem`, kid: f.attacker.kid }, f.claims()) },
  { name: 'x5c with the attacker’s self-signed certificate', make: (f) =>
      f.attacker.cert === undefined
        ? attackerSign(f.attacker.privateKey, { x5c: [Buffer.from('not a certificate').toString('base64')] }, f.claims())
        : attackerSign(f.attacker.cert.key, { x5c: [f.attacker.cert.der] }, f.claims()) },
  { name: 'x5c with the attacker’s certificate, with the server kid', make: (f) =>
      f.attacker.cert === undefined
        ? attackerSign(f.attacker.privateKey, { x5c: ['AAAA'], kid: f.current.kid }, f.claims())
        : attackerSign(f.attacker.cert.key, { x5c: [f.attacker.cert.der], kid: f.current.kid }, f.claims()) },

  // ---- kid injection (OWASP JWT CS; the kid must only ever be a map lookup) ----
  ...['../../etc/passwd', "' OR 1=1 --", `${'A'.repeat(3000)}`, '', ' ', '%00', 'null', '*'].map(
    (kid): Attack => ({
      name: `kid ${JSON.stringify(kid.length > 40 ? `${kid.slice(0, 8)}… (${kid.length} chars)` : kid)}, signed by the server key`,
      make: (f) => f.serverSigned(f.claims(), f.header({ kid })),
    }),
  ),
  { name: "kid \"' OR 1=1 --\", signed by an attacker key", make: (f) => attackerSign(f.attacker.privateKey, { kid: "' OR 1=1 --" }, f.claims()) },
  { name: 'kid "../../etc/passwd", signed by an attacker key', make: (f) => attackerSign(f.attacker.privateKey, { kid: '../../etc/passwd' }, f.claims()) },
  { name: 'kid of the current key followed by NUL and junk', make: (f) => f.serverSigned(f.claims(), f.header({ kid: `${f.current.kid}\u0000x` })) },
  { name: 'kid of the current key with a trailing space', make: (f) => f.serverSigned(f.claims(), f.header({ kid: `${f.current.kid} ` })) },
  { name: 'kid of the current key in upper case', make: (f) => f.serverSigned(f.claims(), f.header({ kid: f.current.kid.toUpperCase() })) },
  { name: 'kid missing', make: (f) => f.serverSigned(f.claims(), f.header({ kid: undefined })) },
  { name: 'kid a number', make: (f) => f.serverSigned(f.claims(), f.header({ kid: 1 })) },
  { name: 'kid null', make: (f) => f.serverSigned(f.claims(), f.header({ kid: null })) },
  { name: 'kid an array holding the current kid', make: (f) => f.serverSigned(f.claims(), f.header({ kid: [f.current.kid] })) },
  { name: 'kid an object', make: (f) => f.serverSigned(f.claims(), f.header({ kid: { $ne: '' } })) },
  { name: 'kid of another known (published, staged) key, signed by the current key', make: (f) =>
      f.serverSigned(f.claims(), f.header({ kid: f.staged.kid })) },
  { name: 'kid of the current key, signed by the other known key', make: (f) =>
      compact(f.staged.privateJwk, f.header(), f.claims()) },
  { name: 'kid of an expired key, signed by that key (no longer trusted, not in the JWKS)', make: (f) =>
      compact(f.expired.privateJwk, f.header({ kid: f.expired.kid }), f.claims()) },
  { name: 'kid of the current key, signed by the expired key', make: (f) => compact(f.expired.privateJwk, f.header(), f.claims()) },

  // ---- crit (RFC 7515 §4.1.11: an unknown critical extension must be rejected) ----
  { name: 'crit with an unknown extension', make: (f) =>
      f.serverSigned(f.claims(), f.header({ crit: ['urn:example:must-understand'], 'urn:example:must-understand': true })) },
  { name: 'crit naming an extension that is absent', make: (f) => f.serverSigned(f.claims(), f.header({ crit: ['urn:example:absent'] })) },
  { name: 'crit empty array', make: (f) => f.serverSigned(f.claims(), f.header({ crit: [] })) },
  { name: 'crit not an array', make: (f) => f.serverSigned(f.claims(), f.header({ crit: 'urn:example:x', 'urn:example:x': 1 })) },
  { name: 'crit naming a registered header parameter (alg)', make: (f) => f.serverSigned(f.claims(), f.header({ crit: ['alg'] })) },
  { name: 'b64:false (RFC 7797 unencoded payload) in a JWT', make: (f) => {
      const h = enc(f.header({ b64: false, crit: ['b64'] }))
      const payload = JSON.stringify(f.claims())
      return `${h}.${payload}.${es256(f.current.privateJwk, `${h}.${payload}`)}`
    } },

  // ---- the payload is not a JSON object (RFC 7519 §7.2 step 10) ----
  ...(
    [
      ['a JSON array', '[]'],
      ['a JSON array of claims', `["sub","1"]`],
      ['a JSON string', '"hello"'],
      ['a JSON number', '42'],
      ['JSON null', 'null'],
      ['JSON true', 'true'],
      ['not JSON', 'not json at all'],
      ['truncated JSON', '{"sub":"1","exp":'],
      ['an empty string', ''],
      ['an empty object', '{}'],
    ] as const
  ).map(([what, text]): Attack => ({ name: `payload is ${what}`, make: (f) => f.serverSigned(text) })),
  { name: 'payload is not UTF-8', make: (f) => f.serverSigned(Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])) },

  // ---- required claims (security baseline "jose verify options"; RFC 9068 §2.2) ----
  ...(['exp', 'iat', 'sub', 'jti', 'aud', 'iss', 'auth_time'] as const).map(
    (claim): Attack => ({ name: `missing ${claim}`, make: (f) => f.serverSigned(f.claims({ [claim]: undefined })) }),
  ),
  { name: 'missing typ (RFC 9068 §4 / RFC 8725 §3.11)', make: (f) => f.serverSigned(f.claims(), f.header({ typ: undefined })) },
  { name: 'wrong aud', make: (f) => f.serverSigned(f.claims({ aud: 'https://other.example' })) },
  { name: 'aud an array without ours', make: (f) => f.serverSigned(f.claims({ aud: ['https://other.example', 'https://third.example'] })) },
  { name: 'aud empty array', make: (f) => f.serverSigned(f.claims({ aud: [] })) },
  { name: 'aud a number', make: (f) => f.serverSigned(f.claims({ aud: 1 })) },
  { name: 'wrong iss', make: (f) => f.serverSigned(f.claims({ iss: 'https://other.example' })) },
  { name: 'iss with a trailing slash', make: (f) => f.serverSigned(f.claims({ iss: `${String(f.claims()['iss'])}/` })) },
  { name: 'typ JWT', make: (f) => f.serverSigned(f.claims(), f.header({ typ: 'JWT' })) },
  { name: 'typ of another token kind (rt+jwt)', make: (f) => f.serverSigned(f.claims(), f.header({ typ: 'rt+jwt' })) },
  { name: 'typ a number', make: (f) => f.serverSigned(f.claims(), f.header({ typ: 1 })) },
  { name: 'exp a string', make: (f) => f.serverSigned(f.claims({ exp: String(f.now + 600) })) },
  { name: 'iat a string', make: (f) => f.serverSigned(f.claims({ iat: String(f.now) })) },
  { name: 'jti a number', make: (f) => f.serverSigned(f.claims({ jti: 12345 })) },
  { name: 'jti an object', make: (f) => f.serverSigned(f.claims({ jti: {} })) },

  // ---- time (RFC 7519 §4.1.4/§4.1.5/§4.1.6; security baseline "Clock leeway" 30 s) ----
  { name: 'exp in the past, one second beyond the leeway', codes: ['token_expired'], make: (f) =>
      f.serverSigned(f.claims({ exp: f.now - f.leeway - 1, iat: f.now - f.leeway - 1 - 600, auth_time: f.now - f.leeway - 1 - 600 })) },
  { name: 'exp a day in the past', codes: ['token_expired'], make: (f) =>
      f.serverSigned(f.claims({ exp: f.now - 86_400, iat: f.now - 86_400 - 600, auth_time: f.now - 86_400 - 600 })) },
  { name: 'exp 0', codes: ['token_expired'], make: (f) => f.serverSigned(f.claims({ exp: 0 })) },
  { name: 'nbf in the future, one second beyond the leeway', make: (f) => f.serverSigned(f.claims({ nbf: f.now + f.leeway + 1 })) },
  { name: 'nbf an hour in the future', make: (f) => f.serverSigned(f.claims({ nbf: f.now + 3600 })) },
  { name: 'iat in the future, one second beyond the leeway', make: (f) =>
      f.serverSigned(f.claims({ iat: f.now + f.leeway + 1, exp: f.now + f.leeway + 1 + 600 })) },
  { name: 'iat a year in the future', make: (f) => f.serverSigned(f.claims({ iat: f.now + 365 * 86_400, exp: f.now + 365 * 86_400 + 600 })) },
  { name: 'iat older than the token lifetime (maxTokenAge) with a far exp', codes: ['token_expired', 'token_invalid'], make: (f) =>
      f.serverSigned(f.claims({ iat: f.now - 600 - f.leeway - 1, exp: f.now + 3600 })) },

  // ---- sub (RFC 9068 §2.2: the user id, never reused) ----
  ...['0', '-1', '1.5', 'abc', '99999999999999999999', '9007199254740993', '01', '1e0', ' 1', '+1', '0x1', '', '424242'].map(
    (sub): Attack => ({ name: `sub ${JSON.stringify(sub)}`, make: (f) => f.serverSigned(f.claims({ sub })) }),
  ),
  { name: 'sub a number', make: (f) => f.serverSigned(f.claims({ sub: 1 })) },
  { name: 'sub null', make: (f) => f.serverSigned(f.claims({ sub: null })) },
  { name: 'sub and client_id of a client that does not exist', make: (f) =>
      f.serverSigned(f.claims({ sub: 'no-such-client', client_id: 'no-such-client', auth_time: undefined })) },

  // ---- size (security baseline "Header size": app cap 8 KiB → 431) ----
  { name: 'oversized: 9 KiB token signed by the server key', codes: ['header_too_large'], make: (f) => {
      const token = f.serverSigned(f.claims({ pad: 'p'.repeat(6600) }))
      assert.ok(token.length > 9 * 1024 && token.length < 10 * 1024, `token of ${token.length} characters`)
      return token
    } },
  // Past Node's own 16 KiB header limit (the Basic form of a 9 KiB token is about 12 KiB): the answer is still
  // 431, and still RFC 9457 problem+json with its catalogue code (security baseline "Header size", "Errors").
  { name: 'oversized: 17 KiB token, past Node’s 16 KiB maxHeaderSize → 431 problem+json header_too_large', codes: ['header_too_large'], make: (f) => {
      const token = f.serverSigned(f.claims({ pad: 'p'.repeat(12_600) }))
      assert.ok(token.length > 16 * 1024 && token.length < 18 * 1024, `token of ${token.length} characters`)
      return token
    } },
  { name: 'oversized: 9 KiB of token-shaped garbage', codes: ['header_too_large'], make: () =>
      `${'a'.repeat(3 * 1024)}.${'b'.repeat(3 * 1024)}.${'c'.repeat(3 * 1024)}` },

  // ---- base64url (RFC 7515 §2: base64url without padding, no other characters) ----
  { name: 'header with a character outside base64url (!)', make: (f) => `!${f.valid}` },
  { name: 'header in the standard base64 alphabet (+ and /), original signature', make: (f) => {
      const [h, p, sig] = segments(awkward(f))
      const std = Buffer.from(h, 'base64url').toString('base64').replace(/=+$/, '')
      assert.notEqual(std, h, 'the re-encoding differs from the original')
      return `${std}.${p}.${sig}`
    } },
  { name: 'payload in the standard base64 alphabet (+ and /), original signature', make: (f) => {
      const [h, p, sig] = segments(awkward(f))
      const std = Buffer.from(p, 'base64url').toString('base64').replace(/=+$/, '')
      assert.notEqual(std, p, 'the re-encoding differs from the original')
      return `${h}.${std}.${sig}`
    } },
  { name: 'header and payload with "=" padding, original signature', make: (f) => {
      const [h, p, sig] = segments(awkward(f))
      return `${Buffer.from(h, 'base64url').toString('base64')}.${Buffer.from(p, 'base64url').toString('base64')}.${sig}`
    } },
  { name: 'header with "=" padding', make: (f) => {
      const [h, p, s] = segments(f.valid)
      return `${h}==.${p}.${s}`
    } },
  { name: 'payload with a character outside base64url (*)', make: (f) => {
      const [h, p, s] = segments(f.valid)
      return `${h}.${p.slice(0, 10)}*${p.slice(10)}.${s}`
    } },
  { name: 'payload cut to a length base64 cannot have (4k + 1)', make: (f) => {
      const [h, p, s] = segments(f.valid)
      const cut = (p.length + 3) % 4 // characters to drop so that the length is ≡ 1 (mod 4)
      return `${h}.${p.slice(0, p.length - (cut === 0 ? 4 : cut))}.${s}`
    } },
  { name: 'payload segment with whitespace inside', make: (f) => {
      const [h, p, s] = segments(f.valid)
      return `${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`
    } },
  { name: 'header that decodes to something that is not JSON', make: (f) => `${base64url.encode('not json')}.${segments(f.valid)[1]}.${segments(f.valid)[2]}` },
  { name: 'header that is a JSON array', make: (f) => `${base64url.encode('["ES256"]')}.${segments(f.valid)[1]}.${segments(f.valid)[2]}` },
  { name: 'header that is truncated JSON', make: (f) => `${base64url.encode('{"alg":"ES256","kid":')}.${segments(f.valid)[1]}.${segments(f.valid)[2]}` },
  { name: 'empty header segment', make: (f) => `.${segments(f.valid)[1]}.${segments(f.valid)[2]}` },
  { name: 'empty payload segment', make: (f) => `${segments(f.valid)[0]}..${segments(f.valid)[2]}` },
  { name: 'only two segments', make: (f) => f.valid.slice(0, f.valid.lastIndexOf('.')) },
  { name: 'four segments', make: (f) => `${f.valid}.${segments(f.valid)[2]}` },
  { name: 'five segments (a JWE in place of a JWS)', make: (f) =>
      `${enc({ alg: 'dir', enc: 'A256GCM', kid: f.current.kid })}..${base64url.encode('iv-iv-iv-iv')}.${segments(f.valid)[1]}.${base64url.encode('tag-tag-tag-tag')}` },
  { name: 'signature as DER instead of r‖s (RFC 7518 §3.4)', make: (f) => derSignature(f.serverSigned()) },
  { name: 'signature truncated to 63 bytes', make: (f) => {
      const [h, p, s] = segments(f.valid)
      return `${h}.${p}.${Buffer.from(s, 'base64url').subarray(0, 63).toString('base64url')}`
    } },
  { name: 'signature of zeros', make: (f) => {
      const [h, p] = segments(f.valid)
      return `${h}.${p}.${Buffer.alloc(64).toString('base64url')}`
    } },
  { name: 'signature r = s = n (out of range)', make: (f) => {
      const [h, p] = segments(f.valid)
      const n = Buffer.from(P256_ORDER.toString(16), 'hex')
      return `${h}.${p}.${Buffer.concat([n, n]).toString('base64url')}`
    } },
]

/** Variants of a token that an attacker can derive from its bytes alone (no key). */
const MALLEATIONS: ReadonlyArray<readonly [string, (token: string) => string]> = [
  ['the exact same token', (t) => t],
  ['signature with "==" padding', (t) => `${t}==`],
  ['signature with one "=" (wrong padding)', (t) => `${t}=`],
  ['signature in the standard base64 alphabet', (t) => {
    const [h, p, s] = segments(t)
    return `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}`
  }],
  ['signature with non-canonical final bits (same bytes)', nonCanonicalSignature],
  ['signature with s replaced by n − s (ECDSA malleability)', highS],
  ['signature as DER', derSignature],
  ['a trailing dot', (t) => `${t}.`],
  ['two trailing dots', (t) => `${t}..`],
  ['a leading dot', (t) => `.${t}`],
  ['header with "=" padding', (t) => {
    const [h, p, s] = segments(t)
    return `${h}=.${p}.${s}`
  }],
  ['payload with "=" padding', (t) => {
    const [h, p, s] = segments(t)
    return `${h}.${p}=.${s}`
  }],
]

// ---------------------------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------------------------

async function setUp(t: TestContext, kind: (typeof STORES)[number]): Promise<Fixture | undefined> {
  const clock = manualClock()
  // Keys the server must know before it starts: a second, staged key (published, not yet signing) and an
  // expired one (retired longer ago than TTL + leeway: it must verify nothing).
  const databaseUrl = await freshDatabaseUrl(t, kind)
  if (databaseUrl === undefined) return undefined
  const pre = createStore(databaseUrl)
  const nowMs = clock.now()
  const day = 86_400_000
  const staged = await generateSigningKey(nowMs, nowMs + day)
  const expired = { ...(await generateSigningKey(nowMs - 10 * day, nowMs - 10 * day)), retiresAt: nowMs - 9 * day }
  try {
    await pre.migrate()
    await pre.insertSigningKey(staged)
    await pre.insertSigningKey(expired)
  } finally {
    await pre.close()
  }

  const srv = await startServer(t, { store: kind, clock, databaseUrl })
  assert.ok(srv !== undefined)
  await registerOk(srv, 'miguel')
  const valid = await tokenOf(srv, { basic: ['miguel', STRONG] })
  const records = await srv.store.listSigningKeys()
  const currentRecord = records.find((r) => r.kid === headerOf(valid).kid)
  assert.ok(currentRecord !== undefined, 'the token names a key of the database')
  assert.notEqual(currentRecord.kid, staged.kid, 'the staged key does not sign yet')
  assert.notEqual(currentRecord.kid, expired.kid)

  const jwksRes = await srv.get('/.well-known/jwks.json')
  assert.equal(jwksRes.status, 200)
  const jwksText = await jwksRes.text()
  const published = (JSON.parse(jwksText) as { keys: JWK[] }).keys.map((k) => k.kid)
  assert.ok(published.includes(currentRecord.kid) && published.includes(staged.kid), 'current and staged keys are published')
  assert.ok(!published.includes(expired.kid), 'the expired key is not published')

  const base = claimsOf(valid) as unknown as Record<string, unknown>
  const strip = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))
  const current = knownKey(currentRecord)
  const fixture: Fixture = {
    srv,
    now: clock.seconds(),
    leeway: srv.config.clockLeeway,
    valid,
    current,
    staged: knownKey(staged),
    expired: knownKey(expired),
    attacker: await startAttacker(t),
    jwksText,
    claims: (extra = {}) => strip({ ...base, jti: randomUUID(), ...extra }),
    header: (extra = {}) => strip({ alg: 'ES256', typ: 'at+jwt', kid: current.kid, ...extra }),
    serverSigned: (claims = fixture.claims(), header = fixture.header()) => compact(current.privateJwk, header, claims),
  }
  return fixture
}

for (const kind of STORES) {
  test(`${kind}: every JWT attack is refused through Bearer, Basic-username and renewal, 401 and never 5xx (RFC 8725, RFC 6750 §3.1)`, async (t) => {
    const f = await setUp(t, kind)
    if (f === undefined) return
    const { srv } = f

    await t.test('control: the real token and a correct forgery with the server key are accepted everywhere', async () => {
      await expectAccepted(srv, f.valid, 'real token')
      await expectAccepted(srv, f.serverSigned(), 'correct forgery')
      await expectAccepted(srv, awkward(f), 'correct forgery whose base64url holds - and _ (used by the re-encoding cases)')
      // Inside the leeway on every time claim: still accepted, so the refusals below come from the leeway.
      const edge = f.serverSigned(
        f.claims({ exp: f.now - f.leeway + 1, iat: f.now - f.leeway + 1 - 600, auth_time: f.now - 700, nbf: f.now + f.leeway - 1 }),
      )
      await expectAccepted(srv, edge, 'exp and nbf just inside the leeway')
      await expectAccepted(srv, f.serverSigned(f.claims({ iat: f.now + f.leeway - 1, exp: f.now + 600 })), 'iat just inside the leeway')
      assert.deepEqual(await expectJson(await srv.get('/api/resource', { bearer: f.serverSigned() }), 200), { data: 'Hello, miguel!' })
    })

    for (const attack of ATTACKS) {
      await t.test(attack.name, async () => {
        const token = await attack.make(f)
        for (const p of PRESENTATIONS) await expectRefused(srv, p, token, attack.codes ?? ['token_invalid'], attack.name)
      })
    }

    await t.test('no key was fetched from a URL the token named (jku, x5u: RFC 8725 §3.10)', () => {
      assert.deepEqual(f.attacker.hits, [])
    })

    await t.test('the real token still works after the attacks', async () => {
      await expectAccepted(srv, f.valid, 'real token')
    })
  })

  test(`${kind}: a revoked token stays revoked in every re-encoding an attacker can make (RFC 7009 §2.1, security baseline "Revocation by jti")`, async (t) => {
    const f = await setUp(t, kind)
    if (f === undefined) return
    const { srv } = f
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })
    const other = await tokenOf(srv, { basic: ['miguel', STRONG] })
    await expectAccepted(srv, token, 'before revocation')
    const del = await srv.request('DELETE', '/api/token', { bearer: token })
    assert.equal(del.status, 204, await del.text())
    await expectAccepted(srv, other, 'another token of the same user is not revoked')

    for (const [name, malleate] of MALLEATIONS) {
      await t.test(`revoked token, ${name}`, async () => {
        const variant = malleate(token)
        const codes: readonly ErrorCode[] = variant === token ? ['token_revoked'] : ['token_revoked', 'token_invalid']
        for (const p of PRESENTATIONS) await expectRefused(srv, p, variant, codes, `revoked token, ${name}`)
      })
    }

    await t.test('revoked token: renewal through the Basic username is refused too', async () => {
      const res = await srv.get('/api/token', { basic: [token, 'x'] })
      const text = await res.text()
      assert.equal(res.status, 401, text)
      assert.equal((JSON.parse(text) as { code: string }).code, 'token_revoked')
    })

    await t.test('revoking a re-encoded copy revokes the token it copies (by jti, not by its bytes)', async () => {
      const fresh = await tokenOf(srv, { basic: ['miguel', STRONG] })
      const copy = highS(fresh)
      assert.notEqual(copy, fresh)
      const res = await srv.request('DELETE', '/api/token', { bearer: copy })
      // Either the copy verifies (then its jti is revoked) or it is refused as invalid; never a 5xx.
      assert.ok([204, 401].includes(res.status), `${res.status} ${await res.text()}`)
      if (res.status === 204) await expectRefused(srv, 'bearer', fresh, ['token_revoked'], 'original after its copy was revoked')
    })
  })
}
