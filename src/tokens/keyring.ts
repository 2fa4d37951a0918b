/**
 * Signing keys, kept in the database so every instance on one database shares them and tokens
 * survive restarts. Generated on first start; there is no hard-coded secret (contract part 1).
 * One algorithm, pinned: ES256 (verify is cheaper than Ed25519 on our hardware, see performance notes).
 */
import { randomUUID } from 'node:crypto'
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose'
import type { Clock } from '../clock.ts'
import type { SigningKey, Store } from '../store/store.ts'

export const TOKEN_ALG = 'ES256'

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

export class Keyring {
  readonly #store: Store
  readonly #clock: Clock
  #keys = new Map<string, LoadedKey>()
  #lastLoad = 0
  #loading: Promise<void> | undefined

  constructor(store: Store, clock: Clock) {
    this.#store = store
    this.#clock = clock
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
    const now = this.#clock.now()
    let best: LoadedKey | undefined
    for (const key of this.#keys.values()) {
      const r = key.record
      if (r.activatesAt > now || (r.retiresAt !== null && r.retiresAt <= now)) continue
      if (best === undefined || r.activatesAt > best.record.activatesAt || (r.activatesAt === best.record.activatesAt && r.kid < best.kid)) {
        best = key
      }
    }
    return best
  }

  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
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
    const found = this.#keys.get(kid)
    if (found !== undefined) return found.publicKey
    if (this.#clock.now() - this.#lastLoad >= RELOAD_INTERVAL_MS) {
      await this.#load()
      return this.#keys.get(kid)?.publicKey
    }
    return undefined
  }

  /** RFC 7517 JWK Set of every key that may still verify a token. Public halves only. */
  jwks(): { keys: JWK[] } {
    return {
      keys: [...this.#keys.values()].map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.record.alg, use: 'sig' })),
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
    const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true })
    const now = this.#clock.now()
    const publicJwk = await exportJWK(publicKey)
    const privateJwk = await exportJWK(privateKey)
    await this.#store.insertSigningKey({
      kid: randomUUID(),
      alg: TOKEN_ALG,
      publicJwk: JSON.stringify(publicJwk),
      privateJwk: JSON.stringify(privateJwk),
      createdAt: now,
      activatesAt: now,
      retiresAt: null,
    })
  }
}
