/**
 * TokenService's verified-token cache (src/tokens/tokens.ts, README "Performance and caches"): exact
 * token text → verified claims, each until `exp` + leeway. A hit skips the signature check (no call to
 * the keyring), so these tests count the keyring's `verificationKey` calls to tell a hit from a full
 * verification. Real keys in a real SQLite store; time from a manual clock.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { CryptoKey } from 'jose'
import type { Clock } from '../../src/clock.ts'
import { RestAuthError } from '../../src/errors.ts'
import type { Store } from '../../src/store/store.ts'
import { Keyring } from '../../src/tokens/keyring.ts'
import { pastItsTime, type TokenSettings, TokenService } from '../../src/tokens/tokens.ts'
import { freshStore } from '../helpers/fresh-store.ts'
import { heapHolds } from '../helpers/heap.ts'
import { b64url, manualClock, signWithForeignKey, tamperSignature } from '../http/support.ts'

const TTL = 60
const LEEWAY = 5
const SETTINGS: TokenSettings = {
  issuer: 'http://127.0.0.1:5000',
  audience: 'http://127.0.0.1:5000',
  ttl: TTL,
  renewalLimit: 86_400,
  clockLeeway: LEEWAY,
  verifiedCacheSize: 100,
}

/** The real keyring, counting how often a signature check asked it for a key. */
class CountingKeyring extends Keyring {
  lookups = 0

  constructor(store: Store, clock: Clock) {
    super(store, clock, (TTL + LEEWAY) * 1000)
  }

  override async verificationKey(kid: string): Promise<CryptoKey | undefined> {
    this.lookups++
    return super.verificationKey(kid)
  }
}

interface Fixture {
  readonly clock: ReturnType<typeof manualClock>
  readonly keyring: CountingKeyring
  readonly tokens: TokenService
  readonly store: Store
}

async function fixture(t: TestContext, settings: Partial<TokenSettings> = {}): Promise<Fixture> {
  const fresh = await freshStore(t, 'sqlite')
  assert.ok(fresh !== undefined, 'SQLite is always available')
  const clock = manualClock()
  const keyring = new CountingKeyring(fresh.store, clock)
  await keyring.init()
  const tokens = new TokenService(keyring, clock, { ...SETTINGS, ...settings })
  return { clock, keyring, tokens, store: fresh.store }
}

async function assertRefused(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RestAuthError, `expected RestAuthError, got ${String(error)}`)
    assert.equal(error.code, code)
    return true
  })
}

test('token cache: a second verify of the same token is a hit (no signature check) and returns the same claims', async (t) => {
  const f = await fixture(t)
  const { token, claims } = await f.tokens.issue(7, f.clock.seconds())
  const first = await f.tokens.verify(token)
  assert.equal(f.keyring.lookups, 1)
  const second = await f.tokens.verify(token)
  assert.equal(f.keyring.lookups, 1, 'served from the cache')
  assert.deepEqual(second, first)
  assert.equal(second.claims.jti, claims.jti)
})

test('token cache: a cached token past exp + leeway is refused with token_expired (RFC 7519 §4.1.4)', async (t) => {
  const f = await fixture(t)
  const { token, claims } = await f.tokens.issue(7, f.clock.seconds())
  await f.tokens.verify(token)
  assert.equal(f.keyring.lookups, 1)

  // past exp but inside the leeway: still good, and still from the cache (jose would accept it too)
  f.clock.set((claims.exp + LEEWAY) * 1000 - 1)
  const late = await f.tokens.verify(token)
  assert.equal(late.claims.jti, claims.jti)
  assert.equal(f.keyring.lookups, 1, 'still a cache hit inside the leeway')

  // exactly exp + leeway: the entry is no longer honoured; it says expired without a signature check
  f.clock.set((claims.exp + LEEWAY) * 1000)
  await assertRefused(f.tokens.verify(token), 'token_expired')
  // and it stays refused (an expired token is never served again), still without cryptography
  f.clock.advance(3600)
  await assertRefused(f.tokens.verify(token), 'token_expired')
  assert.equal(f.keyring.lookups, 1, 'an expired token is refused without a signature check')
  assert.equal(f.tokens.peekVerified(token), undefined, 'memory never vouches for it')
})

test('token cache: an expired token never seen before (a restart) is refused without a signature check', async (t) => {
  const f = await fixture(t)
  const { token, claims } = await f.tokens.issue(7, f.clock.seconds())
  // a new process: same keys, empty cache
  const restarted = new TokenService(f.keyring, f.clock, SETTINGS)
  f.clock.set((claims.exp + LEEWAY) * 1000 - 1)
  await restarted.verify(token)
  assert.equal(f.keyring.lookups, 1, 'inside the leeway: verified in full')
  const again = new TokenService(f.keyring, f.clock, SETTINGS)
  f.clock.set((claims.exp + LEEWAY) * 1000)
  for (let i = 0; i < 3; i++) await assertRefused(again.verify(token), 'token_expired')
  assert.equal(f.keyring.lookups, 1, 'past exp + leeway: refused from its claims alone')
  // revocation and introspection still verify an expired token in full
  assert.equal((await again.verify(token, { ignoreExpiry: true })).claims.jti, claims.jti)
  assert.equal(f.keyring.lookups, 2)
})

test('token cache: an expired forgery is refused as expired, never accepted; an unexpired forgery is still checked in full', async (t) => {
  const f = await fixture(t)
  const genuine = await f.tokens.issue(7, f.clock.seconds())
  const [header = '', payload = '', signature = ''] = genuine.token.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  const stale = `${header}.${b64url({ ...claims, exp: genuine.claims.exp - 3600 })}.${signature}`
  await assertRefused(f.tokens.verify(stale), 'token_expired')
  assert.equal(f.keyring.lookups, 0)
  const later = `${header}.${b64url({ ...claims, exp: genuine.claims.exp + 60 })}.${signature}`
  await assertRefused(f.tokens.verify(later), 'token_invalid')
  assert.equal(f.keyring.lookups, 1, 'a forgery that is not expired is checked in full')
})

test('pastItsTime: jose\'s exp and maxTokenAge rules on the unverified claims; anything unreadable is not past its time', () => {
  const settings = { ttl: 600, clockLeeway: 30 }
  const now = 1_800_000_000
  const jws = (claims: unknown) => `${b64url({ alg: 'ES256' })}.${b64url(claims)}.sig`
  const cases: ReadonlyArray<readonly [string, string, boolean]> = [
    ['exp inside the leeway', jws({ exp: now - 29, iat: now - 600 }), false],
    ['exp exactly now - leeway (jose: exp <= now - tolerance)', jws({ exp: now - 30, iat: now - 600 }), true],
    ['exp long past', jws({ exp: 0 }), true],
    ['exp in the future', jws({ exp: now + 600, iat: now }), false],
    ['iat older than ttl + leeway, far exp', jws({ exp: now + 3600, iat: now - 631 }), true],
    ['iat exactly ttl + leeway ago', jws({ exp: now + 3600, iat: now - 630 }), false],
    ['exp a string', jws({ exp: String(now - 3600) }), false],
    ['exp not finite (1e999 parses to Infinity)', `${b64url({})}.${Buffer.from('{"exp":-1e999}').toString('base64url')}.s`, false],
    ['no claims', jws({}), false],
    ['payload an array', jws([1, 2]), false],
    ['payload null', jws(null), false],
    ['payload not JSON', `a.${Buffer.from('not json').toString('base64url')}.c`, false],
    ['one segment', 'abc', false],
    ['two segments', `a.${b64url({ exp: 0 })}`, false],
    ['empty', '', false],
  ]
  for (const [what, token, expected] of cases) assert.equal(pastItsTime(token, now * 1000 + 999, settings), expected, what)
})

test('token cache: forgetVerified() drops every entry (the next verify checks the signature again)', async (t) => {
  const f = await fixture(t)
  const a = await f.tokens.issue(7, f.clock.seconds())
  const b = await f.tokens.issue(8, f.clock.seconds())
  await f.tokens.verify(a.token)
  await f.tokens.verify(b.token)
  assert.equal(f.keyring.lookups, 2)
  await f.tokens.verify(a.token)
  await f.tokens.verify(b.token)
  assert.equal(f.keyring.lookups, 2, 'both cached')

  f.tokens.forgetVerified()
  await f.tokens.verify(a.token)
  await f.tokens.verify(b.token)
  assert.equal(f.keyring.lookups, 4, 'both verified in full after forgetVerified()')
})

test('token cache: after forgetVerified(), a token whose key is gone from the database is refused, not served from memory', async (t) => {
  const f = await fixture(t)
  const { token } = await f.tokens.issue(7, f.clock.seconds())
  await f.tokens.verify(token)
  // the key disappears (as `keys rotate` prunes an expired key), and the app reacts to the 'keys' change
  for (const key of await f.store.listSigningKeys()) await f.store.deleteSigningKey(key.kid)
  await f.keyring.reload()
  f.tokens.forgetVerified()
  await assertRefused(f.tokens.verify(token), 'token_invalid')
})

test('token cache: a forged token is never served from the cache, even while the genuine one is cached', async (t) => {
  const f = await fixture(t)
  const genuine = await f.tokens.issue(7, f.clock.seconds())
  await f.tokens.verify(genuine.token)
  assert.equal(f.keyring.lookups, 1)

  const [header = '', payload = '', signature = ''] = genuine.token.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  const kid = (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { kid: string }).kid
  const forgeries: ReadonlyArray<readonly [string, string]> = [
    ['tampered signature', tamperSignature(genuine.token)],
    ['another subject under the genuine signature', `${header}.${b64url({ ...claims, sub: '8' })}.${signature}`],
    ['a later exp under the genuine signature', `${header}.${b64url({ ...claims, exp: genuine.claims.exp + 3600 })}.${signature}`],
    ['the genuine claims signed by a foreign key with the genuine kid', await signWithForeignKey(claims, kid)],
  ]
  for (const [what, forged] of forgeries) {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const before = f.keyring.lookups
      await assertRefused(f.tokens.verify(forged), 'token_invalid')
      assert.ok(f.keyring.lookups > before, `${what}, attempt ${attempt}: checked in full, not answered from the cache`)
    }
  }
  // the genuine entry is untouched
  const before = f.keyring.lookups
  assert.equal((await f.tokens.verify(genuine.token)).claims.sub, '7')
  assert.equal(f.keyring.lookups, before, 'the genuine token is still a hit')
})

test('token cache: verify({ ignoreExpiry }) neither reads nor fills the cache (revocation and introspection check in full)', async (t) => {
  const f = await fixture(t)
  const { token } = await f.tokens.issue(7, f.clock.seconds())
  await f.tokens.verify(token, { ignoreExpiry: true })
  await f.tokens.verify(token, { ignoreExpiry: true })
  assert.equal(f.keyring.lookups, 2, 'ignoreExpiry always checks in full')
  await f.tokens.verify(token)
  assert.equal(f.keyring.lookups, 3, 'ignoreExpiry did not put the token in the cache')
})

test('token cache: with verifiedCacheSize 0 (AUTH_TOKEN_CACHE_SIZE=0) nothing is cached, nor when the setting is absent', async (t) => {
  const f = await fixture(t, { verifiedCacheSize: 0 })
  const { verifiedCacheSize: _size, ...withoutSize } = SETTINGS
  const services: ReadonlyArray<readonly [string, TokenService]> = [
    ['verifiedCacheSize 0', f.tokens],
    ['verifiedCacheSize absent', new TokenService(f.keyring, f.clock, withoutSize)],
  ]
  for (const [what, tokens] of services) {
    const { token } = await tokens.issue(7, f.clock.seconds())
    const before = f.keyring.lookups
    for (let i = 1; i <= 3; i++) {
      await tokens.verify(token)
      assert.equal(f.keyring.lookups, before + i, `${what}: verify ${i} checked the signature`)
    }
  }
})

test('token cache: the cache is bounded by verifiedCacheSize (the least recently added entry goes first)', async (t) => {
  const f = await fixture(t, { verifiedCacheSize: 2 })
  const [a, b, c] = await Promise.all([7, 8, 9].map((id) => f.tokens.issue(id, f.clock.seconds())))
  assert.ok(a !== undefined && b !== undefined && c !== undefined)
  await f.tokens.verify(a.token)
  await f.tokens.verify(b.token)
  await f.tokens.verify(c.token) // evicts a
  assert.equal(f.keyring.lookups, 3)
  await f.tokens.verify(c.token)
  await f.tokens.verify(b.token)
  assert.equal(f.keyring.lookups, 3, 'b and c are cached')
  await f.tokens.verify(a.token)
  assert.equal(f.keyring.lookups, 4, 'a was evicted')
})

test('rememberedText: the text of a remembered token; nothing for one not verified yet', async (t) => {
  const f = await fixture(t)
  const { token } = await f.tokens.issue(7, f.clock.seconds())
  assert.equal(f.tokens.rememberedText(token), undefined, 'issued is not verified')
  await f.tokens.verify(token)
  assert.equal(f.tokens.rememberedText(`${token}`), token)
  assert.equal(f.tokens.rememberedText(tamperSignature(token)), undefined)
})

/** Verifies `token` as a slice of a form body with a client secret in it; nothing here outlives the call. */
async function verifyCutFromBody(tokens: TokenService, token: string, secret: string): Promise<void> {
  // a flat string as a decoded body is; the token sliced from it shares its memory (a V8 SlicedString)
  const body = Buffer.from(`client_secret=${secret}&token=${token}`, 'latin1').toString('latin1')
  const cut = body.slice(body.indexOf('&token=') + 7)
  assert.equal(cut, token)
  await tokens.verify(cut)
}

test('token cache: a token cut from a larger text (a form body) does not keep that text alive', async (t) => {
  const f = await fixture(t)
  const { token } = await f.tokens.issue(7, f.clock.seconds())
  const secret = randomUUID()
  await verifyCutFromBody(f.tokens, token, secret)
  assert.equal(f.tokens.peekVerified(token)?.claims.sub, '7', 'remembered')
  assert.equal(await heapHolds(`client_secret=${secret}`), false, 'the body (with its client secret) was freed')
})
