/**
 * Signing keys, kept in the database so every instance on one database shares them and tokens
 * survive restarts. Generated on first start; there is no hard-coded secret (contract part 1).
 * One algorithm, pinned: ES256 (verify is cheaper than Ed25519 on our hardware, see performance notes).
 */
import { type CryptoKey, importJWK, type JWK } from 'jose'
import type { Clock } from '../clock.ts'
import type { SigningKey, Store } from '../store/store.ts'
import { generateSigningKey, keyState, TOKEN_ALG } from './rotation.ts'

export { TOKEN_ALG } from './rotation.ts'

interface LoadedKey {
  readonly kid: string
  readonly record: SigningKey
  readonly publicKey: CryptoKey
  readonly publicJwk: JWK
  /** Imported lazily: only the signing key's private half is ever needed. */
  privateKey: CryptoKey | undefined
}

/** A reload on an unknown `kid` happens at most this often (an attacker can send random kids). */
const RELOAD_INTERVAL_MS = 10_000
/** Keys are re-read this often in the background, so a key staged elsewhere is seen before it signs. */
const REFRESH_INTERVAL_MS = 60_000

export class Keyring {
  readonly #store: Store
  readonly #clock: Clock
  #keys = new Map<string, LoadedKey>()
  #lastLoad = 0
  /**
   * When an unknown `kid` last caused a reload. Separate from `#lastLoad` so that init and background
   * refreshes do not use up the budget: a key another instance inserted just after our init (two
   * instances starting on a fresh database) is then found at the first token signed with it.
   */
  #lastKidReload = Number.NEGATIVE_INFINITY
  #loading: Promise<void> | undefined

  readonly #verifyWindowMs: number

  /** `verifyWindowMs`: how long a retired key still verifies (token TTL + leeway). */
  constructor(store: Store, clock: Clock, verifyWindowMs: number) {
    this.#store = store
    this.#clock = clock
    this.#verifyWindowMs = verifyWindowMs
  }

  #state(key: LoadedKey): ReturnType<typeof keyState> {
    return keyState(key.record, this.#clock.now(), this.#verifyWindowMs)
  }

  /** Re-reads the keys in the background when the last read is older than the refresh interval. */
  #refreshIfStale(): void {
    if (this.#clock.now() - this.#lastLoad < REFRESH_INTERVAL_MS || this.#loading !== undefined) return
    // A failed refresh keeps the keys we have; the next call tries again.
    this.#load().catch(() => {})
  }

  /** Loads the keys, generating the first one when the database has none that can sign. */
  async init(): Promise<void> {
    await this.#load()
    if (this.#current() === undefined) {
      await this.#generate()
      await this.#load()
    }
  }

  /** The newest active key: activated, not retired. */
  #current(): LoadedKey | undefined {
    let best: LoadedKey | undefined
    for (const key of this.#keys.values()) {
      const r = key.record
      if (this.#state(key) !== 'active') continue
      if (best === undefined || r.activatesAt > best.record.activatesAt || (r.activatesAt === best.record.activatesAt && r.kid < best.kid)) {
        best = key
      }
    }
    return best
  }

  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    this.#refreshIfStale()
    let current = this.#current()
    if (current === undefined) {
      await this.init()
      current = this.#current()
      if (current === undefined) throw new Error('no signing key available after init')
    }
    current.privateKey ??= (await importJWK(JSON.parse(current.record.privateJwk) as JWK, TOKEN_ALG)) as CryptoKey
    return { kid: current.kid, key: current.privateKey }
  }

  /** The public key for `kid`; reloads from the database (rate-limited) when another instance added one. */
  async verificationKey(kid: string): Promise<CryptoKey | undefined> {
    this.#refreshIfStale()
    let found = this.#keys.get(kid)
    if (found === undefined && this.#clock.now() - this.#lastKidReload >= RELOAD_INTERVAL_MS) {
      this.#lastKidReload = this.#clock.now()
      await this.#load()
      found = this.#keys.get(kid)
    }
    return found === undefined || this.#state(found) === 'expired' ? undefined : found.publicKey
  }

  /** Re-reads the keys now (another instance or the CLI staged, retired or removed one). */
  async reload(): Promise<void> {
    // a load already running may have read the keys before the change: wait for it, then read again
    await this.#loading?.catch(() => {})
    await this.#load()
  }

  /** RFC 7517 JWK Set of every key that may still verify a token. Public halves only. */
  jwks(): { keys: JWK[] } {
    this.#refreshIfStale()
    return {
      keys: [...this.#keys.values()]
        .filter((k) => this.#state(k) !== 'expired')
        .map((k) => ({ kty: k.publicJwk.kty, crv: k.publicJwk.crv, x: k.publicJwk.x, y: k.publicJwk.y, kid: k.kid, alg: k.record.alg, use: 'sig' })),
    }
  }

  async #load(): Promise<void> {
    this.#loading ??= (async () => {
      try {
        const records = await this.#store.listSigningKeys()
        const next = new Map<string, LoadedKey>()
        for (const record of records) {
          if (record.alg !== TOKEN_ALG) continue
          const existing = this.#keys.get(record.kid)
          if (existing !== undefined) {
            next.set(record.kid, { ...existing, record })
            continue
          }
          const publicJwk = JSON.parse(record.publicJwk) as JWK
          const publicKey = (await importJWK(publicJwk, TOKEN_ALG)) as CryptoKey
          next.set(record.kid, { kid: record.kid, record, publicKey, publicJwk, privateKey: undefined })
        }
        this.#keys = next
        this.#lastLoad = this.#clock.now()
      } finally {
        this.#loading = undefined
      }
    })()
    return this.#loading
  }

  async #generate(): Promise<void> {
    const now = this.#clock.now()
    await this.#store.insertSigningKey(await generateSigningKey(now, now))
  }
}
