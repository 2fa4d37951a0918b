/**
 * The synchronous authentication fast path: `Authenticator.fromMemory(header)` over
 * `TokenService.peekVerified` and `CachingStore.peekUser/peekClient/peekRevocation`, as wired by
 * createRuntime (memory: the CachingStore) and used by the callback-style hook of
 * src/http/plugins/authenticate.ts. fromMemory must answer only when memory knows for sure, and
 * undefined otherwise, so the async read-through `authenticate()` decides (and gives the reason).
 *
 * Unit tests run over a real SQLite file: KyselyStore + ChangeFeed + CachingStore, the real runtime
 * (keys in the store, a fast argon2 profile, never a stub). The runtime's clock and the feed's clock
 * are two manual clocks, so token expiry and feed staleness are moved independently. The feed never
 * polls by itself (pollMs 60 s): only a test's `feed.poll()` reads the change log.
 * The HTTP tests go through startServer, against every store.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { Principal } from '../../src/auth/authenticate.ts'
import { parseAuthorization } from '../../src/auth/authorization.ts'
import { loadConfig } from '../../src/config/load.ts'
import { RestAuthError } from '../../src/errors.ts'
import { hashClientSecret, newClientId, newClientSecret } from '../../src/oauth/clients.ts'
import { createRuntime, type Runtime } from '../../src/runtime.ts'
import { CachingStore } from '../../src/state/caching-store.ts'
import { ChangeFeed } from '../../src/state/feed.ts'
import type { KyselyStore } from '../../src/store/kysely-store.ts'
import type { User } from '../../src/store/store.ts'
import { freshStore } from '../helpers/fresh-store.ts'
import { heapHolds } from '../helpers/heap.ts'
import {
  assertBearerChallenge,
  clientBasic,
  createClient,
  expectProblem,
  expectTokenResponse,
  postForm,
  registerUser,
} from '../helpers/oauth.ts'
import { basicHeader, FAST_ARGON2, startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { manualClock, type ManualClock, rawRequest, tamperSignature } from '../http/support.ts'

const PASSWORD = 'correct horse battery staple'
const NEW_PASSWORD = 'saffron harbor velvet lantern'
const NEVER_BY_ITSELF = 60_000

interface Fixture {
  readonly inner: KyselyStore
  readonly cache: CachingStore
  readonly feed: ChangeFeed
  readonly runtime: Runtime
  /** The runtime's clock: token issue and expiry, credential-cache lifetime. */
  readonly clock: ManualClock
  /** The change feed's clock: its freshness only. */
  readonly feedClock: ManualClock
  readonly user: User
  /** A user token of `user`, issued at the fixture's start, not yet verified. */
  readonly token: string
}

interface FixtureOptions {
  readonly env?: Readonly<Record<string, string>>
  readonly staleMs?: number
}

async function fixture(t: TestContext, options: FixtureOptions = {}): Promise<Fixture> {
  const fresh = await freshStore(t, 'sqlite')
  assert.ok(fresh !== undefined, 'SQLite is always available')
  const clock = manualClock()
  const feedClock = manualClock()
  const feed = new ChangeFeed(fresh.store, feedClock, {
    pollMs: NEVER_BY_ITSELF,
    staleMs: options.staleMs ?? NEVER_BY_ITSELF,
    onError: (error) => assert.fail(`change log unreadable: ${String(error)}`),
  })
  const cache = new CachingStore(fresh.store, feed)
  await feed.start()
  t.after(() => feed.stop())
  const { config } = loadConfig({
    env: {},
    overrides: {
      AUTH_RATE_LIMITS: 'off',
      AUTH_CREDENTIAL_CACHE_TTL: '60',
      ...FAST_ARGON2,
      ...options.env,
      DATABASE_URL: fresh.databaseUrl,
    },
  })
  const runtime = createRuntime(config, cache, clock)
  await runtime.init()
  t.after(() => runtime.close())
  const user = await cache.createUser({
    username: 'ada',
    usernameCanonical: 'ada',
    passwordHash: await runtime.hasher.hash(PASSWORD),
    now: clock.now(),
  })
  assert.ok(user !== undefined, 'user created')
  const { token } = await runtime.tokens.issue(user.id, clock.seconds())
  return { inner: fresh.store, cache, feed, runtime, clock, feedClock, user, token }
}

const bearer = (token: string) => `Bearer ${token}`
/** REST-auth: the token as the Basic username, any password. */
const tokenAsBasic = (token: string) => basicHeader(token, 'x')

async function assertRefused(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RestAuthError, `expected a RestAuthError, got ${String(error)}`)
    assert.equal(error.code, code)
    return true
  })
}

function assertUserToken(principal: Principal | undefined, user: User): asserts principal is Extract<Principal, { method: 'token' }> {
  assert.ok(principal !== undefined, 'memory vouches for the token')
  assert.equal(principal.method, 'token')
  assert.equal(principal.user.id, user.id)
}

test('fromMemory: cold (nothing verified or cached yet) → undefined for a Bearer token, the token as Basic username and a password', async (t) => {
  const f = await fixture(t)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)
  assert.equal(f.runtime.authenticator.fromMemory(tokenAsBasic(f.token)), undefined)
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined)
  // the read-through path is the one that decides
  assertUserToken(await f.runtime.authenticator.authenticate(bearer(f.token)), f.user)
})

test('fromMemory: after one authenticate() of a Bearer token → the same user principal, for Bearer and for the token as Basic username (REST-auth)', async (t) => {
  const f = await fixture(t)
  const read = await f.runtime.authenticator.authenticate(bearer(f.token))
  assertUserToken(read, f.user)
  const known = f.runtime.authenticator.fromMemory(bearer(f.token))
  assertUserToken(known, f.user)
  assert.deepEqual(known, read, 'same principal: user, auth_time and claims')
  assert.deepEqual(f.runtime.authenticator.fromMemory(tokenAsBasic(f.token)), read)
  // scheme names are case-insensitive (RFC 9110 §11.1), surrounding whitespace is trimmed
  assert.deepEqual(f.runtime.authenticator.fromMemory(`bearer ${f.token}`), read)
  assert.deepEqual(f.runtime.authenticator.fromMemory(`  BEARER   ${f.token} `), read)
  // the memory hit changes nothing for the async path
  assert.deepEqual(await f.runtime.authenticator.authenticate(bearer(f.token)), read)
})

test('fromMemory: warmed through the token as Basic username, the Bearer form is known too (one verification cache keyed by token text)', async (t) => {
  const f = await fixture(t)
  const read = await f.runtime.authenticator.authenticate(tokenAsBasic(f.token))
  assertUserToken(read, f.user)
  assert.deepEqual(f.runtime.authenticator.fromMemory(tokenAsBasic(f.token)), read)
  assert.deepEqual(f.runtime.authenticator.fromMemory(basicHeader(f.token, 'another password')), read, 'the password is ignored')
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read)
})

test('fromMemory: the token as Basic username, once answered, is found by the base64 of its whole 3-byte groups: every password part and token length', async (t) => {
  const f = await fixture(t)
  const auth = f.runtime.authenticator
  // Tokens issued when the times have 10, 11 and 12 digits are 4 characters apart (iat, exp and
  // auth_time grow by one digit each): tokens of every length modulo 3, the point where the base64 splits.
  const parts = ['', 'x', 'unused', 'ünïcödé', ':', 'a:b', 'p'.repeat(300), '\u0000', '🔑']
  const residues = new Set<number>()
  let tokens: string[] = []
  for (const era of [0, 10_000_000_000, 100_000_000_000]) {
    if (era > f.clock.seconds()) f.clock.advance(era - f.clock.seconds())
    tokens = [(await f.runtime.tokens.issue(f.user.id, f.clock.seconds())).token, (await f.runtime.tokens.issue(f.user.id, f.clock.seconds())).token]
    for (const token of tokens) residues.add(token.length % 3)
    await eraChecks(tokens)
  }
  assert.equal(residues.size, 3, 'tokens of all three lengths modulo 3')

  async function eraChecks(tokens: readonly string[]): Promise<void> {
    for (const token of tokens) {
      const read = await auth.authenticate(tokenAsBasic(token))
      assertUserToken(read, f.user)
      assert.equal(read.claims.jti, (await f.runtime.tokens.verify(token)).claims.jti)
      assert.deepEqual(auth.fromMemory(tokenAsBasic(token)), read, 'parsed, then remembered')
      for (const part of parts) {
        const header = basicHeader(token, part)
        assert.deepEqual(auth.fromMemory(header), read, `password part ${JSON.stringify(part.slice(0, 10))}`)
        assert.deepEqual(auth.fromMemory(header.replace(/=+$/, '')), read, 'base64 padding is optional')
        assert.deepEqual(auth.fromMemory(`bAsIc ${header.slice(6)}`), read, 'the scheme in any case')
      }
      // a password part that is not UTF-8: the full parse reads the whole text as latin-1, the token alike
      const latin1 = `Basic ${Buffer.concat([Buffer.from(`${token}:`), Buffer.from([0xff, 0xfe, 0x80])]).toString('base64')}`
      assert.deepEqual(auth.fromMemory(latin1), read)
      // forms the shortcut leaves to the full parse, which trims and skips spaces
      assert.deepEqual(auth.fromMemory(`${tokenAsBasic(token)} `), read)
      assert.deepEqual(auth.fromMemory(`Basic   ${tokenAsBasic(token).slice(6)}`), read)
      assert.deepEqual(auth.fromMemory(`\t${tokenAsBasic(token)}`), read)
    }

    // near misses of a remembered token: memory says nothing, and the full parse decides as before
    for (const token of tokens) {
      const good = tokenAsBasic(token).slice(6)
      // the last character carries padding bits, which a base64url decoder may ignore: change the one before
      const lateChanged = `${token.slice(0, -2)}${token.at(-2) === 'A' ? 'B' : 'A'}${token.slice(-1)}`
      const misses: Array<[string, string]> = [
        [basicHeader(`${token}x`, 'x'), 'token_invalid'],
        [basicHeader(token.slice(0, -1), 'x'), 'token_invalid'],
        [basicHeader(lateChanged, 'x'), 'token_invalid'],
        [basicHeader(tamperSignature(token), 'x'), 'token_invalid'],
        [`Basic ${Buffer.from(token).toString('base64')}`, 'authorization_malformed'],
        [`Basic ${good}!`, 'authorization_malformed'],
        [`Basic ${good}==`, 'authorization_malformed'],
        [`Basic ${good.slice(0, -2)}*${good.slice(-2)}`, 'authorization_malformed'],
      ]
      for (const [header, code] of misses) {
        assert.equal(auth.fromMemory(header), undefined, `${code}: ${header.slice(-12)}`)
        await assertRefused(auth.authenticate(header), code)
      }
      // Cut short by one to three characters: whatever the full parse makes of it, memory answers the same
      const read = await auth.authenticate(tokenAsBasic(token))
      for (let cut = 1; cut <= 3; cut++) {
        const header = `Basic ${good.slice(0, -cut)}`
        const parsed = (() => {
          try {
            return parseAuthorization(header)
          } catch {
            return undefined
          }
        })()
        if (parsed?.scheme === 'basic' && parsed.username === token) assert.deepEqual(auth.fromMemory(header), read, `cut ${cut}`)
        else assert.equal(auth.fromMemory(header), undefined, `cut ${cut}`)
      }
    }
  }

  // the remembered prefix answers only what memory knows now: revoked, it vouches for nothing
  const [first] = tokens
  assert.ok(first !== undefined)
  const claims = (await f.runtime.tokens.verify(first)).claims
  await f.cache.revokeJti(claims.jti, claims.sub, (claims.exp + f.runtime.config.clockLeeway) * 1000, f.clock.now())
  assert.equal(auth.fromMemory(tokenAsBasic(first)), undefined)
  await assertRefused(auth.authenticate(tokenAsBasic(first)), 'token_revoked')
  // the others are still remembered
  for (const token of tokens.slice(1)) assertUserToken(auth.fromMemory(basicHeader(token, 'y')), f.user)
})

test('fromMemory: a Bearer header answered before is remembered with its token, and still answers only what memory knows now', async (t) => {
  const f = await fixture(t)
  const read = await f.runtime.authenticator.authenticate(bearer(f.token))
  assert.ok(read.method === 'token')
  // the first fromMemory parses the header and remembers it; the second takes the remembered token
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read)
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read)
  // a header that differs in one character is parsed on its own (and is not the verified token)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(`${f.token.slice(0, -1)}${f.token.endsWith('A') ? 'B' : 'A'}`)), undefined)
  assert.equal(f.runtime.authenticator.fromMemory(`Bearer ${f.token}=`), undefined)
  // verifications forgotten (a signing key removed): the remembered header no longer vouches
  f.runtime.tokens.forgetVerified()
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)
  assertUserToken(await f.runtime.authenticator.authenticate(bearer(f.token)), f.user)
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read)
  // past exp + leeway: the remembered header answers nothing, and authenticate() says why
  f.clock.advance(read.claims.exp - f.clock.seconds() + f.runtime.config.clockLeeway + 1)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)
  await assertRefused(f.runtime.authenticator.authenticate(bearer(f.token)), 'token_expired')
})

test('fromMemory: a malformed or empty header, or a token that is not the remembered one → undefined, never a throw', async (t) => {
  const f = await fixture(t)
  await f.runtime.authenticator.authenticate(bearer(f.token))
  const other = await f.runtime.tokens.issue(f.user.id, f.clock.seconds())
  const headers = [
    '',
    '   ',
    'Bearer',
    'Bearer ',
    'Bearer a b',
    'Bearer "quoted"',
    'Basic',
    'Basic !!!not-base64',
    `Basic ${Buffer.from('no colon here').toString('base64')}`,
    'Digest username="ada"',
    'Negotiate',
    `Bearer ${'a'.repeat(9000)}`,
    `Bearer ${tamperSignature(f.token)}`,
    `Bearer ${f.token}x`,
    `Bearer ${other.token}`,
    basicHeader('', ''),
    basicHeader('ada', ''),
    basicHeader('', PASSWORD),
  ]
  for (const header of headers) {
    assert.doesNotThrow(() => f.runtime.authenticator.fromMemory(header), `no throw for ${JSON.stringify(header.slice(0, 40))}`)
    assert.equal(f.runtime.authenticator.fromMemory(header), undefined, `undefined for ${JSON.stringify(header.slice(0, 40))}`)
  }
  // the remembered token is still served
  assertUserToken(f.runtime.authenticator.fromMemory(bearer(f.token)), f.user)
})

test('fromMemory: an authenticator without memory (no CachingStore) never answers', async (t) => {
  const fresh = await freshStore(t, 'sqlite')
  assert.ok(fresh !== undefined)
  const clock = manualClock()
  const { config } = loadConfig({ env: {}, overrides: { AUTH_RATE_LIMITS: 'off', ...FAST_ARGON2, DATABASE_URL: fresh.databaseUrl } })
  const runtime = createRuntime(config, fresh.store, clock)
  await runtime.init()
  t.after(() => runtime.close())
  const user = await fresh.store.createUser({ username: 'ada', usernameCanonical: 'ada', passwordHash: await runtime.hasher.hash(PASSWORD), now: clock.now() })
  assert.ok(user !== undefined)
  const { token } = await runtime.tokens.issue(user.id, clock.seconds())
  assertUserToken(await runtime.authenticator.authenticate(bearer(token)), user)
  assert.equal(runtime.authenticator.fromMemory(bearer(token)), undefined)
})

/** A change made through the caching store after the token was served from memory, and what authenticate() then says. */
interface Revocation {
  readonly name: string
  readonly apply: (f: Fixture, claims: { readonly jti: string; readonly exp: number; readonly sub: string }) => Promise<unknown>
  readonly code: string
}

const REVOCATIONS: readonly Revocation[] = [
  {
    name: 'its jti revoked (RFC 7009 §2.1)',
    apply: (f, c) => f.cache.revokeJti(c.jti, c.sub, (c.exp + f.runtime.config.clockLeeway) * 1000, f.clock.now()),
    code: 'token_revoked',
  },
  {
    name: 'its jti revoked through OAuthService.revokeAccessToken (the logout path)',
    apply: async (f) => {
      const principal = await f.runtime.authenticator.authenticate(bearer(f.token))
      assert.ok(principal.method === 'token')
      await f.runtime.oauth.revokeAccessToken(principal)
    },
    code: 'token_revoked',
  },
  {
    name: 'revokeAllForUser (log out everywhere)',
    apply: (f) => f.cache.revokeAllForUser(f.user.id, f.clock.seconds() + 1, f.clock.now()),
    code: 'token_revoked',
  },
  {
    name: 'the user disabled (updateUser status)',
    apply: (f) => f.cache.updateUser(f.user.id, { status: 'disabled' }, f.clock.now()),
    code: 'token_revoked',
  },
  {
    name: 'the user set back to pending (updateUser status)',
    apply: (f) => f.cache.updateUser(f.user.id, { status: 'pending' }, f.clock.now()),
    code: 'token_revoked',
  },
  {
    name: 'the user deleted',
    apply: (f) => f.cache.deleteUser(f.user.id),
    code: 'token_invalid',
  },
]

for (const revocation of REVOCATIONS) {
  test(`fromMemory: a token served from memory, then ${revocation.name} → undefined at once, and authenticate() rejects with ${revocation.code}`, async (t) => {
    const f = await fixture(t)
    const read = await f.runtime.authenticator.authenticate(bearer(f.token))
    assert.ok(read.method === 'token')
    assertUserToken(f.runtime.authenticator.fromMemory(bearer(f.token)), f.user)
    await revocation.apply(f, read.claims)
    assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined, 'memory no longer vouches')
    assert.equal(f.runtime.authenticator.fromMemory(tokenAsBasic(f.token)), undefined)
    await assertRefused(f.runtime.authenticator.authenticate(bearer(f.token)), revocation.code)
    // the refusal re-read the state into memory: memory must still not vouch for the token
    assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined, 'still undefined once memory knows the refusal')
    await assertRefused(f.runtime.authenticator.authenticate(tokenAsBasic(f.token)), revocation.code)
  })
}

test('fromMemory: a role change (updateUser roles) drops the cached user: undefined until read again, then the principal has the new roles', async (t) => {
  const f = await fixture(t)
  await f.runtime.authenticator.authenticate(bearer(f.token))
  const before = f.runtime.authenticator.fromMemory(bearer(f.token))
  assertUserToken(before, f.user)
  assert.deepEqual(before.user.roles, [])
  await f.cache.updateUser(f.user.id, { roles: ['admin'] }, f.clock.now())
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined, 'no stale roles from memory')
  const read = await f.runtime.authenticator.authenticate(bearer(f.token))
  assert.ok(read.method === 'token')
  assert.deepEqual(read.user.roles, ['admin'])
  const known = f.runtime.authenticator.fromMemory(bearer(f.token))
  assertUserToken(known, f.user)
  assert.deepEqual(known.user.roles, ['admin'])
})

test('fromMemory: a token of a refresh family → undefined once the family is revoked (RFC 6749 §10.4, RFC 7009 §2.1), then token_revoked', async (t) => {
  const f = await fixture(t)
  const now = f.clock.now()
  const family = randomUUID()
  await f.cache.createRefreshFamily({
    family: { id: family, userId: f.user.id, clientId: null, scope: null, authTime: f.clock.seconds(), createdAt: now, expiresAt: now + 3_600_000 },
    tokenHash: 'cd'.repeat(32),
    idleExpiresAt: now + 3_600_000,
  })
  const { token } = await f.runtime.tokens.issueFor({ userId: f.user.id, authTime: f.clock.seconds(), sid: family })
  const read = await f.runtime.authenticator.authenticate(bearer(token))
  assert.ok(read.method === 'token')
  assert.equal(read.claims.sid, family)
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(token)), read)
  await f.cache.revokeRefreshFamily(family, 'logout', f.clock.now())
  assert.equal(f.runtime.authenticator.fromMemory(bearer(token)), undefined)
  await assertRefused(f.runtime.authenticator.authenticate(bearer(token)), 'token_revoked')
  assert.equal(f.runtime.authenticator.fromMemory(bearer(token)), undefined)
  // a token of the same user without the family is untouched
  await f.runtime.authenticator.authenticate(bearer(f.token))
  assertUserToken(f.runtime.authenticator.fromMemory(bearer(f.token)), f.user)
})

test('fromMemory: a client_credentials token → a client_token principal from memory; undefined once the client is deleted, then token_invalid', async (t) => {
  const f = await fixture(t)
  const clientId = newClientId()
  await f.cache.createClient({
    clientId,
    name: 'service',
    secretHash: hashClientSecret(newClientSecret()),
    scopes: ['read'],
    grantTypes: ['client_credentials'],
    createdAt: f.clock.now(),
  })
  const { token } = await f.runtime.tokens.issueFor({ clientId, scope: ['read'] })
  assert.equal(f.runtime.authenticator.fromMemory(bearer(token)), undefined, 'cold')
  const read = await f.runtime.authenticator.authenticate(bearer(token))
  assert.equal(read.method, 'client_token')
  const known = f.runtime.authenticator.fromMemory(bearer(token))
  assert.deepEqual(known, read)
  assert.ok(known?.method === 'client_token')
  assert.equal(known.client.clientId, clientId)
  await f.cache.deleteClient(clientId)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(token)), undefined)
  await assertRefused(f.runtime.authenticator.authenticate(bearer(token)), 'token_invalid')
})

test('fromMemory: while the change feed is stale → undefined (never a stale "valid"); after a successful poll the caches restart empty', async (t) => {
  const f = await fixture(t, { staleMs: 1_000 })
  const read = await f.runtime.authenticator.authenticate(bearer(f.token))
  await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read)
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD))?.method, 'password')

  f.feedClock.advance(0.999)
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read, 'still fresh just before staleMs')
  f.feedClock.advance(0.001)
  assert.equal(f.feed.fresh(), false)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined, 'stale feed: token not vouched for')
  assert.equal(f.runtime.authenticator.fromMemory(tokenAsBasic(f.token)), undefined)
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined, 'stale feed: password not vouched for')
  assert.equal(f.cache.peekUser(f.user.id), undefined)
  assert.equal(f.cache.peekRevocation(read.method === 'token' ? read.claims.jti : '', undefined), undefined)

  // the database still answers through the async path, which does not re-fill memory while stale
  assert.deepEqual(await f.runtime.authenticator.authenticate(bearer(f.token)), read)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)

  // a revocation made while the feed is stale is seen at once by the read-through path
  assert.ok(read.method === 'token')
  await f.inner.revokeJti(read.claims.jti, read.claims.sub, (read.claims.exp + 60) * 1000, f.clock.now())
  await f.feed.poll()
  assert.equal(f.feed.fresh(), true)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined, 'fresh again, but memory was reset')
  await assertRefused(f.runtime.authenticator.authenticate(bearer(f.token)), 'token_revoked')
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)
})

test('fromMemory: a change written behind this instance (another instance, the CLI) is honoured once the feed polls', async (t) => {
  const f = await fixture(t)
  const read = await f.runtime.authenticator.authenticate(bearer(f.token))
  assert.ok(read.method === 'token')
  // the inner store writes the change log but does not touch this instance's memory
  await f.inner.revokeJti(read.claims.jti, read.claims.sub, (read.claims.exp + 60) * 1000, f.clock.now())
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read, 'within the poll interval memory has not heard yet')
  await f.feed.poll()
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)
  await assertRefused(f.runtime.authenticator.authenticate(bearer(f.token)), 'token_revoked')
})

test('fromMemory: an expired token (past exp + leeway) → undefined, and authenticate() rejects with token_expired (RFC 7519 §4.1.4)', async (t) => {
  const f = await fixture(t)
  const read = await f.runtime.authenticator.authenticate(bearer(f.token))
  assert.ok(read.method === 'token')
  const { tokenTtl, clockLeeway } = f.runtime.config
  assert.equal(read.claims.exp, f.clock.seconds() + tokenTtl)
  f.clock.advance(tokenTtl + 1)
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read, 'past exp but within the leeway, as verify() accepts it')
  assert.deepEqual(await f.runtime.authenticator.authenticate(bearer(f.token)), read)
  f.clock.set((read.claims.exp + clockLeeway) * 1000 - 1)
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read, 'the last millisecond of the leeway')
  f.clock.set((read.claims.exp + clockLeeway) * 1000)
  assert.equal(f.runtime.tokens.peekVerified(f.token), undefined)
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)
  assert.equal(f.runtime.authenticator.fromMemory(tokenAsBasic(f.token)), undefined)
  await assertRefused(f.runtime.authenticator.authenticate(bearer(f.token)), 'token_expired')
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined, 'an expired token is never re-remembered')
})

test('peekVerified: only the exact text of a token verified before, never a token only issued', async (t) => {
  const f = await fixture(t)
  assert.equal(f.runtime.tokens.peekVerified(f.token), undefined, 'issued is not verified')
  const verified = await f.runtime.tokens.verify(f.token)
  assert.deepEqual(f.runtime.tokens.peekVerified(f.token), verified)
  assert.equal(f.runtime.tokens.peekVerified(tamperSignature(f.token)), undefined)
  await f.runtime.tokens.verify(f.token, { ignoreExpiry: true })
  f.runtime.tokens.forgetVerified()
  assert.equal(f.runtime.tokens.peekVerified(f.token), undefined, 'forgotten with the keys')
  assert.equal(f.runtime.authenticator.fromMemory(bearer(f.token)), undefined)
})

test('peekVerified: a token verified only with ignoreExpiry (revocation, introspection) is not remembered', async (t) => {
  const f = await fixture(t)
  await f.runtime.tokens.verify(f.token, { ignoreExpiry: true })
  assert.equal(f.runtime.tokens.peekVerified(f.token), undefined)
})

test('fromMemory: Basic username:password after one successful authenticate (credential cache on, rate limits off) → method "password"; wrong password → undefined', async (t) => {
  const f = await fixture(t)
  assert.equal(f.runtime.config.rateLimits, false)
  assert.equal(f.runtime.config.credentialCacheTtl, 60)
  const read = await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))
  assert.equal(read.method, 'password')
  const known = f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD))
  assert.ok(known?.method === 'password')
  assert.deepEqual(known.user, f.user)
  assert.equal(known.authTime, f.clock.seconds())
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', `${PASSWORD} `)), undefined, 'wrong password')
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', 'correct horse battery stapl')), undefined, 'wrong password')
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('bob', PASSWORD)), undefined, 'another username')
  await assertRefused(f.runtime.authenticator.authenticate(basicHeader('ada', 'wrong password here')), 'invalid_credentials')
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', 'wrong password here')), undefined, 'a failure is never remembered')
})

test('fromMemory: a remembered password lasts AUTH_CREDENTIAL_CACHE_TTL seconds, and not at all with 0', async (t) => {
  const f = await fixture(t)
  await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))
  f.clock.advance(59)
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD))?.method, 'password')
  f.clock.advance(1)
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined, 'past the TTL')

  const off = await fixture(t, { env: { AUTH_CREDENTIAL_CACHE_TTL: '0' } })
  assert.equal((await off.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))).method, 'password')
  assert.equal(off.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined, 'cache off')
  // tokens do not depend on the credential cache
  await off.runtime.authenticator.authenticate(bearer(off.token))
  assertUserToken(off.runtime.authenticator.fromMemory(bearer(off.token)), off.user)
})

/** Counts the argon2 verifications of the runtime's own hasher (the real one, wrapped). */
function countVerifications(f: Fixture): { readonly count: () => number } {
  const hasher = f.runtime.hasher
  const real = hasher.verify.bind(hasher)
  let n = 0
  hasher.verify = async (phc: string, password: string) => {
    n++
    return real(phc, password)
  }
  return { count: () => n }
}

test('authenticate: a burst with the same password (cold, or when its entry expired) verifies the hash once, and every request passes', async (t) => {
  const f = await fixture(t)
  const verifications = countVerifications(f)
  const burst = () => Promise.all(Array.from({ length: 20 }, () => f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))))
  for (const principal of await burst()) assert.equal(principal.method, 'password')
  assert.equal(verifications.count(), 1, 'one argon2 verification for twenty requests')
  f.clock.advance(60) // past AUTH_CREDENTIAL_CACHE_TTL: every connection of the client misses at once
  for (const principal of await burst()) assert.equal(principal.method, 'password')
  assert.equal(verifications.count(), 2)
})

test('authenticate: a burst with the same wrong password is not answered from the first check: each request verifies and fails for itself', async (t) => {
  const f = await fixture(t)
  const verifications = countVerifications(f)
  const attempts = Array.from({ length: 5 }, () => f.runtime.authenticator.authenticate(basicHeader('ada', 'not the password at all')))
  // the right password at the same time is checked on its own, and passes
  const right = f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))
  for (const attempt of attempts) await assertRefused(attempt, 'invalid_credentials')
  assert.equal((await right).method, 'password')
  assert.equal(verifications.count(), 6)
})

/** A password change through the caching store after the password was served from memory. */
const PASSWORD_CHANGES: ReadonlyArray<readonly [string, (f: Fixture, next: string) => Promise<unknown>]> = [
  ['replacePasswordHash', (f, next) => f.cache.replacePasswordHash(f.user.id, f.user.passwordHash, next, f.clock.now())],
  ['updateUser passwordHash', (f, next) => f.cache.updateUser(f.user.id, { passwordHash: next }, f.clock.now())],
]

for (const [how, change] of PASSWORD_CHANGES) {
  test(`fromMemory: after a password change (${how}) the old password → undefined, even once the user is cached again; the new one is remembered`, async (t) => {
    const f = await fixture(t)
    await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))
    assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD))?.method, 'password')
    await change(f, await f.runtime.hasher.hash(NEW_PASSWORD))
    assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined)
    await assertRefused(f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD)), 'invalid_credentials')
    const read = await f.runtime.authenticator.authenticate(basicHeader('ada', NEW_PASSWORD))
    assert.equal(read.method, 'password')
    assert.ok(f.cache.peekUser(f.user.id) !== undefined, 'the user is in memory again')
    assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined, 'the old password stays dead')
    assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', NEW_PASSWORD))?.method, 'password')
  })
}

test('fromMemory: a remembered password → undefined once the user is disabled, deleted or logged out everywhere', async (t) => {
  const changes: ReadonlyArray<readonly [string, (f: Fixture) => Promise<unknown>, string]> = [
    ['disabled', (f) => f.cache.updateUser(f.user.id, { status: 'disabled' }, f.clock.now()), 'account_disabled'],
    ['deleted', (f) => f.cache.deleteUser(f.user.id), 'invalid_credentials'],
    ['revoke-all', (f) => f.cache.revokeAllForUser(f.user.id, f.clock.seconds() + 1, f.clock.now()), ''],
  ]
  for (const [what, apply, code] of changes) {
    const f = await fixture(t)
    await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))
    assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD))?.method, 'password', what)
    await apply(f)
    assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined, `${what}: undefined at once`)
    if (code !== '') await assertRefused(f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD)), code)
    else assert.equal((await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD))).method, 'password', 'the password itself still works')
    // the user (or its absence) is in memory again after the read-through: still no remembered login
    assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined, `${what}: still undefined`)
  }
})

test('fromMemory: with rate limits on, Basic username:password → undefined (the login throttle must be asked), tokens still from memory', async (t) => {
  const f = await fixture(t, { env: { AUTH_RATE_LIMITS: 'on' } })
  assert.equal(f.runtime.config.rateLimits, true)
  assert.equal((await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD), '127.0.0.1')).method, 'password')
  assert.equal((await f.runtime.authenticator.authenticate(basicHeader('ada', PASSWORD), '127.0.0.1')).method, 'password', 'remembered by the async path')
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', PASSWORD)), undefined)
  const read = await f.runtime.authenticator.authenticate(bearer(f.token))
  assert.deepEqual(f.runtime.authenticator.fromMemory(bearer(f.token)), read)
  assert.deepEqual(f.runtime.authenticator.fromMemory(tokenAsBasic(f.token)), read)
})

/** Sets ada's password to `password` behind the caches, as a password change does. */
async function setPassword(f: Fixture, password: string): Promise<void> {
  const current = await f.inner.findUserById(f.user.id)
  assert.ok(current !== undefined)
  assert.ok(await f.cache.replacePasswordHash(f.user.id, current.passwordHash, await f.runtime.hasher.hash(password), f.clock.now()), 'password changed')
}

test('fromMemory: a Basic header seen again is answered as the full parse answers it, in every form (scheme case, padding, username case, ":" and UTF-8 in the password), and refused in every form after a password change', async (t) => {
  const f = await fixture(t)
  const password = 'pä:ss wörd:ü'
  await setPassword(f, password)
  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')
  const padded = b64(`ada:${password}`)
  assert.ok(padded.endsWith('='), 'a password whose base64 carries padding')
  const forms: ReadonlyArray<readonly [string, string]> = [
    ['plain', `Basic ${padded}`],
    ['lower-case scheme', `basic ${padded}`],
    ['without padding', `Basic ${padded.replace(/=+$/, '')}`],
    ['username in capitals', `Basic ${b64(`ADA:${password}`)}`],
    ['two spaces (not the plain form: always the full parse)', `Basic  ${padded}`],
    ['surrounding whitespace', ` Basic ${padded}\t`],
  ]
  assert.equal(f.runtime.authenticator.fromMemory(`Basic ${padded}`), undefined, 'nothing remembered yet')
  for (const [name, header] of forms) {
    // after the first, memory knows the credentials (keyed by the canonical username) before this form is seen
    const read = await f.runtime.authenticator.authenticate(header)
    assert.equal(read.method, 'password', name)
    for (let i = 0; i < 3; i++) {
      const known = f.runtime.authenticator.fromMemory(header)
      assert.ok(known?.method === 'password', `${name}: from memory (${i + 1})`)
      assert.equal(known.user.id, f.user.id)
    }
  }
  // texts near the remembered ones: another password, a truncated or extended base64, another user
  const near = [`Basic ${b64(`ada:${password}x`)}`, `Basic ${padded.slice(0, -4)}`, `Basic ${padded}AAAA`, `Basic ${b64(`bob:${password}`)}`, `Basic ${padded.slice(0, -1)}`]
  for (const header of near) assert.equal(f.runtime.authenticator.fromMemory(header), undefined, header)
  await setPassword(f, NEW_PASSWORD)
  for (const [name, header] of forms) {
    assert.equal(f.runtime.authenticator.fromMemory(header), undefined, `${name}: the old password is dead at once`)
    await assertRefused(f.runtime.authenticator.authenticate(header), 'invalid_credentials')
    assert.equal(f.runtime.authenticator.fromMemory(header), undefined, `${name}: and stays dead`)
  }
  assert.equal((await f.runtime.authenticator.authenticate(basicHeader('ada', NEW_PASSWORD))).method, 'password')
  assert.equal(f.runtime.authenticator.fromMemory(basicHeader('ada', NEW_PASSWORD))?.method, 'password')
})

/** Logs in with a header built here and has memory answer it twice; nothing made here outlives the call. */
async function loginTwiceFromMemory(f: Fixture, password: string): Promise<void> {
  // a flat string, as the header is when Node's parser hands it over
  const header = Buffer.from(basicHeader('ada', password), 'latin1').toString('latin1')
  assert.equal((await f.runtime.authenticator.authenticate(header)).method, 'password')
  assert.equal(f.runtime.authenticator.fromMemory(Buffer.from(header, 'latin1').toString('latin1'))?.method, 'password')
  assert.equal(f.runtime.authenticator.fromMemory(Buffer.from(header, 'latin1').toString('latin1'))?.method, 'password', 'by its base64')
}

test('fromMemory: remembering Basic credentials keeps neither the header, nor its base64, nor the password in memory', async (t) => {
  const f = await fixture(t)
  // made from random bytes: no string with this text exists but those the code makes from the header
  const password = `pw-${randomUUID()}`
  await setPassword(f, password)
  // the base64 in two flat pieces, neither of which holds the whole text; their concatenation is the needle
  const [head, tail] = splitBase64(`ada:${password}`)
  await loginTwiceFromMemory(f, password)
  assert.equal(await heapHolds(`${head}${tail}`), false, 'the base64 of the credentials')
  assert.equal(await heapHolds(`ada:${password.slice(0, 3)}${password.slice(3)}`), false, 'the decoded credentials')
  // the needle works: a flat copy of the base64 that this test keeps is found
  const kept = Buffer.from(`${head}${tail}`, 'latin1').toString('latin1')
  assert.equal(await heapHolds(`${head}${tail}`), true, 'a string that is held is found')
  assert.ok(kept.length > 0)
})

/** The base64 of `text` as two independent flat strings (no slice of one whole string that would keep it). */
function splitBase64(text: string): readonly [string, string] {
  const whole = Buffer.from(text, 'utf8').toString('base64')
  return [Buffer.from(whole.slice(0, 8), 'latin1').toString('latin1'), Buffer.from(whole.slice(8), 'latin1').toString('latin1')]
}

// ---- over HTTP: the callback-style hook of src/http/plugins/authenticate.ts ----

for (const kind of STORES) {
  test(`${kind}: a token served from memory and then revoked (DELETE /api/token) is refused by the very next request on the same instance (RFC 7009 §2.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await srv.token('miguel', PASSWORD)
    await srv.sync() // a fresh change feed, whatever the machine's load (see the client_credentials case)
    for (let i = 0; i < 5; i++) assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200)
    assert.equal((await srv.get('/api/resource', { basic: [token, 'x'] })).status, 200)
    assert.equal(srv.runtime.authenticator.fromMemory(bearer(token))?.method, 'token', 'warm: served from memory')

    assert.equal((await srv.request('DELETE', '/api/token', { bearer: token })).status, 204)
    const next = await srv.get('/api/resource', { bearer: token })
    await expectProblem(next, 401, 'token_revoked')
    assertBearerChallenge(next, 'invalid_token')
    const asBasic = await srv.get('/api/resource', { basic: [token, 'x'] })
    await expectProblem(asBasic, 401, 'token_revoked')
    assert.match(asBasic.headers.get('www-authenticate') ?? '', /^Basic realm=/)
    await expectProblem(await srv.get('/api/token', { bearer: token }), 401, 'token_revoked')
    assert.equal(srv.runtime.authenticator.fromMemory(bearer(token)), undefined)
  })

  test(`${kind}: log out everywhere (DELETE /api/tokens) refuses another warm token of the user at once; a new token works`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const first = await srv.token('miguel', PASSWORD)
    const second = await srv.token('miguel', PASSWORD)
    await srv.sync() // a fresh change feed, whatever the machine's load (see the client_credentials case)
    for (const token of [first, second]) {
      for (let i = 0; i < 3; i++) assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200)
      assert.ok(srv.runtime.authenticator.fromMemory(bearer(token)) !== undefined, 'warm')
    }
    assert.equal((await srv.request('DELETE', '/api/tokens', { bearer: first })).status, 204)
    await expectProblem(await srv.get('/api/resource', { bearer: second }), 401, 'token_revoked')
    await expectProblem(await srv.get('/api/resource', { bearer: first }), 401, 'token_revoked')
    const fresh = await srv.token('miguel', PASSWORD)
    assert.equal((await srv.get('/api/resource', { bearer: fresh })).status, 200)
  })

  test(`${kind}: a client_credentials token is refused on /api/resource with 403 insufficient_scope, also once memory knows it (RFC 6750 §3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const client = await createClient(srv, { scopes: ['read'] })
    const { access_token: token } = await expectTokenResponse(await postForm(srv, '/oauth/token', { grant_type: 'client_credentials' }, { client }))
    // Memory is trusted only while the change feed is fresh (a successful read within the last second);
    // on a loaded machine the last poll can be older than that. Read the log now, so the assertions
    // below are about the memory path, not about the machine's load.
    await srv.sync()
    const first = await srv.get('/api/resource', { bearer: token })
    await expectProblem(first, 403, 'insufficient_scope')
    assertBearerChallenge(first, 'insufficient_scope')
    assert.equal(srv.runtime.authenticator.fromMemory(bearer(token))?.method, 'client_token', 'warm: memory knows the client token')
    for (let i = 0; i < 3; i++) {
      const res = await srv.get('/api/resource', { bearer: token })
      await expectProblem(res, 403, 'insufficient_scope')
      assertBearerChallenge(res, 'insufficient_scope')
    }
    await expectProblem(await srv.get('/api/token', { bearer: token }), 403, 'insufficient_scope')
    // the client's own credentials are not a user's password either
    await expectProblem(await srv.request('GET', '/api/resource', { headers: { authorization: clientBasic(client) } }), 401, 'invalid_credentials')
  })

  test(`${kind}: duplicate Authorization headers are refused even when the first is a warm token`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerUser(srv, 'miguel')
    const token = await srv.token('miguel', PASSWORD)
    assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200)
    assert.ok(srv.runtime.authenticator.fromMemory(bearer(token)) !== undefined)
    const raw = await rawRequest(srv.url, 'GET', '/api/resource', [
      ['Authorization', bearer(token)],
      ['authorization', bearer(token)],
    ])
    assert.equal(raw.status, 400, raw.body)
    assert.equal((JSON.parse(raw.body) as { code: string }).code, 'duplicate_authorization')
  })
}
