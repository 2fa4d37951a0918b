/**
 * The keyring over every store: the signing key lives in the database, is generated on first start,
 * and is shared by every instance on that database (contract §1: no hard-coded secret).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { generateKeyPair, SignJWT } from 'jose'
import type { Clock } from '../../src/clock.ts'
import { systemClock } from '../../src/clock.ts'
import { RestAuthError } from '../../src/errors.ts'
import type { Store } from '../../src/store/store.ts'
import { ACCESS_TOKEN_TYP } from '../../src/tokens/claims.ts'
import { Keyring, TOKEN_ALG } from '../../src/tokens/keyring.ts'
import { type TokenSettings, TokenService } from '../../src/tokens/tokens.ts'
import { freshStore } from '../helpers/fresh-store.ts'
import { STORES } from '../helpers/stores.ts'

const SETTINGS: TokenSettings = {
  issuer: 'http://127.0.0.1:5000',
  audience: 'http://127.0.0.1:5000',
  ttl: 600,
  renewalLimit: 86_400,
  clockLeeway: 30,
}
const VERIFY_WINDOW_MS = (SETTINGS.ttl + SETTINGS.clockLeeway) * 1000

function keyring(store: Store, clock: Clock = systemClock): Keyring {
  return new Keyring(store, clock, VERIFY_WINDOW_MS)
}

function service(ring: Keyring, clock: Clock = systemClock): TokenService {
  return new TokenService(ring, clock, SETTINGS)
}

async function assertRefused(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RestAuthError, `expected RestAuthError, got ${String(error)}`)
    assert.equal(error.code, code)
    return true
  })
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

for (const kind of STORES) {
  test(`${kind}: Keyring.init generates one ES256 key on an empty database and persists it (no hard-coded secret)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    assert.deepEqual(await fresh.store.listSigningKeys(), [])
    const ring = keyring(fresh.store)
    await ring.init()
    const keys = await fresh.store.listSigningKeys()
    assert.equal(keys.length, 1)
    const [key] = keys
    assert.equal(key?.alg, TOKEN_ALG)
    assert.equal(key?.retiresAt, null)
    const publicJwk = JSON.parse(key?.publicJwk ?? '{}') as Record<string, unknown>
    assert.equal(publicJwk['kty'], 'EC')
    assert.equal(publicJwk['crv'], 'P-256')
    assert.equal(publicJwk['d'], undefined, 'public_jwk holds no private member')
    assert.equal(typeof (JSON.parse(key?.privateJwk ?? '{}') as Record<string, unknown>)['d'], 'string')
    assert.deepEqual(ring.jwks().keys.map((k) => k.kid), [key?.kid])
    // init again: nothing new.
    await ring.init()
    assert.equal((await fresh.store.listSigningKeys()).length, 1)
  })

  test(`${kind}: a second Keyring on the same database loads the same kid and generates nothing (restart, second instance)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const first = keyring(fresh.store)
    await first.init()
    const token = await service(first).issue(1, nowSeconds())

    const second = keyring(fresh.openAnother())
    await second.init()
    assert.deepEqual(second.jwks(), first.jwks())
    assert.equal((await fresh.store.listSigningKeys()).length, 1)
    const verified = await service(second).verify(token.token)
    assert.equal(verified.kind, 'user')
    assert.equal(verified.kind === 'user' ? verified.userId : undefined, 1)
    // And the other way round.
    const back = await service(second).issue(2, nowSeconds())
    assert.equal((await service(first).verify(back.token)).claims.sub, '2')
  })

  test(`${kind}: two Keyrings initialising concurrently on a fresh database verify each other's tokens`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const a = keyring(fresh.store)
    const b = keyring(fresh.openAnother())
    await Promise.all([a.init(), b.init()])
    const [ta, tb] = [service(a), service(b)]
    const fromA = await ta.issue(1, nowSeconds())
    const fromB = await tb.issue(2, nowSeconds())
    assert.equal((await tb.verify(fromA.token)).claims.sub, '1')
    assert.equal((await ta.verify(fromB.token)).claims.sub, '2')
    assert.ok((await fresh.store.listSigningKeys()).length >= 1)
  })

  test(
    `${kind}: concurrent first start, worst interleaving: a key inserted after the other instance loaded still verifies there`,
    async (t) => {
      const fresh = await freshStore(t, kind)
      if (fresh === undefined) return
      // Instance clocks one second apart, frozen so the ordering is deterministic.
      let nowB = 1_795_000_000_000
      const clockB: Clock = { now: () => nowB }
      const clockA: Clock = { now: () => nowB + 1_000 }
      // A's insert waits until B has finished its whole init: A loaded (empty) before B inserted,
      // and B loaded before A inserted.
      let releaseA!: () => void
      const gate = new Promise<void>((r) => (releaseA = r))
      let aInserting!: () => void
      const aReachedInsert = new Promise<void>((r) => (aInserting = r))
      const storeA = fresh.store
      const gatedA = new Proxy(storeA, {
        get(target, prop, receiver) {
          if (prop === 'insertSigningKey') {
            return async (...args: Parameters<Store['insertSigningKey']>) => {
              aInserting()
              await gate
              return target.insertSigningKey(...args)
            }
          }
          const value: unknown = Reflect.get(target, prop, receiver)
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
        },
      })
      const a = keyring(gatedA, clockA)
      const b = keyring(fresh.openAnother(), clockB)
      const initA = a.init()
      await aReachedInsert
      await b.init()
      releaseA()
      await initA
      assert.equal((await storeA.listSigningKeys()).length, 2, 'both instances generated a key')

      const fromA = await service(a, clockA).issue(1, Math.floor(clockA.now() / 1000))
      const fromB = await service(b, clockB).issue(2, Math.floor(clockB.now() / 1000))
      assert.equal((await service(a, clockA).verify(fromB.token)).claims.sub, '2')
      // The property that matters: B verifies A's token right away.
      let immediate: unknown
      try {
        immediate = (await service(b, clockB).verify(fromA.token)).claims.sub
      } catch (error) {
        immediate = error
      }
      assert.equal(immediate, '1', `B refused A's token at first: ${String(immediate)}`)
      // And keeps doing so (the key is now loaded, no reload needed).
      nowB += 1_000
      assert.equal((await service(b, clockB).verify(fromA.token)).claims.sub, '1')
    },
  )

  test(`${kind}: unknown kids reload the keys at most once per 10 s, and init does not use up that budget (DoS bound)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    let now = 1_795_000_000_000
    const clock: Clock = { now: () => now }
    let lists = 0
    const counting = new Proxy(fresh.store, {
      get(target, prop, receiver) {
        if (prop === 'listSigningKeys') {
          return () => {
            lists++
            return target.listSigningKeys()
          }
        }
        const value: unknown = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
    const ring = keyring(counting, clock)
    await ring.init()
    const afterInit = lists
    assert.equal(await ring.verificationKey(randomUUID()), undefined)
    assert.equal(lists, afterInit + 1, 'the first unknown kid after init reloads at once')
    for (let i = 0; i < 20; i++) assert.equal(await ring.verificationKey(randomUUID()), undefined)
    now += 9_999
    assert.equal(await ring.verificationKey(randomUUID()), undefined)
    assert.equal(lists, afterInit + 1, 'no further reload within the interval')
    now += 1
    assert.equal(await ring.verificationKey(randomUUID()), undefined)
    assert.equal(lists, afterInit + 2, 'one reload once the interval has passed')
  })

  test(`${kind}: jwks() publishes public members only, never "d" (RFC 7517 §4, RFC 7518 §6.2.2.1)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const ring = keyring(fresh.store)
    await ring.init()
    const { keys } = ring.jwks()
    assert.equal(keys.length, 1)
    for (const key of keys) {
      assert.deepEqual(Object.keys(key).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
      assert.equal(key.d, undefined)
      assert.equal(key.alg, 'ES256')
      assert.equal(key.use, 'sig')
    }
    assert.doesNotMatch(JSON.stringify(ring.jwks()), /"d"/)
  })

  test(`${kind}: a token whose kid is unknown is refused with token_invalid (RFC 7515 §4.1.4, RFC 6750 §3.1)`, async (t) => {
    const fresh = await freshStore(t, kind)
    if (fresh === undefined) return
    const ring = keyring(fresh.store)
    await ring.init()
    const tokens = service(ring)
    const { privateKey } = await generateKeyPair('ES256')
    const iat = nowSeconds()
    const forge = (kid: string | undefined) =>
      new SignJWT({ sub: '1', jti: randomUUID(), auth_time: iat })
        .setProtectedHeader({ alg: 'ES256', typ: ACCESS_TOKEN_TYP, ...(kid === undefined ? {} : { kid }) })
        .setIssuer(SETTINGS.issuer)
        .setAudience(SETTINGS.audience)
        .setIssuedAt(iat)
        .setExpirationTime(iat + 600)
        .sign(privateKey)
    await assertRefused(tokens.verify(await forge(randomUUID())), 'token_invalid')
    await assertRefused(tokens.verify(await forge(undefined)), 'token_invalid')
    // The right kid with the wrong key: the signature does not verify.
    const kid = ring.jwks().keys[0]?.kid
    assert.ok(kid !== undefined)
    await assertRefused(tokens.verify(await forge(kid)), 'token_invalid')
    // A genuine token still verifies.
    const genuine = await tokens.issue(1, iat)
    assert.equal((await tokens.verify(genuine.token)).claims.sub, '1')
  })
}

test('sqlite: issue() reports the lifetime against the same instant as iat: a clock crossing a second while the token is signed still gives expiresIn = ttl', async (t) => {
  const fresh = await freshStore(t, 'sqlite')
  if (fresh === undefined) return
  const ring = keyring(fresh.store)
  await ring.init()
  // every reading is 999 ms after the last, so any second reading of it lands in another second
  let ms = Math.floor(Date.now() / 1000) * 1000
  const ticking: Clock = { now: () => (ms += 999) }
  for (let i = 0; i < 3; i++) {
    const issued = await service(ring, ticking).issue(1, nowSeconds())
    assert.equal(issued.expiresIn, SETTINGS.ttl)
    assert.equal(issued.claims.exp - issued.claims.iat, SETTINGS.ttl)
  }
})
