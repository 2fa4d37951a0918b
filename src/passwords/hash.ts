/**
 * argon2id password hashing (RFC 9106, OWASP Password Storage CS) as PHC strings, off the event loop
 * (libuv pool) and behind a bounded limiter. Passwords are NFKC-normalised here, the same at
 * registration and at verification (NIST SP 800-63B-4 §3.1.1.2).
 */
import { randomBytes } from 'node:crypto'
import { type Algorithm, type Options, hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2'
import { normalizePassword } from './policy.ts'
import type { BoundedLimiter } from './limiter.ts'

export interface Argon2Params {
  readonly memoryKib: number
  readonly iterations: number
  readonly parallelism: number
}

/** `Algorithm.Argon2id` is a `const enum` in the typings, which `verbatimModuleSyntax` cannot inline. */
const ARGON2ID = 2 as Algorithm

const PHC_ARGON2ID = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/

export function parseArgon2Params(phc: string): Argon2Params | undefined {
  const m = PHC_ARGON2ID.exec(phc)
  if (m === null) return undefined
  return { memoryKib: Number(m[1]), iterations: Number(m[2]), parallelism: Number(m[3]) }
}

export class PasswordHasher {
  readonly params: Argon2Params
  readonly limiter: BoundedLimiter
  readonly #options: Options
  #dummy: string | undefined

  constructor(params: Argon2Params, limiter: BoundedLimiter) {
    this.params = params
    this.limiter = limiter
    this.#options = {
      algorithm: ARGON2ID,
      memoryCost: params.memoryKib,
      timeCost: params.iterations,
      parallelism: params.parallelism,
      outputLen: 32,
    }
  }

  /** Computes the dummy hash that unknown users are verified against, so they cost the same time. */
  async init(): Promise<void> {
    this.#dummy ??= await argon2Hash(randomBytes(32).toString('base64url'), this.#options)
  }

  async hash(password: string): Promise<string> {
    const normalized = normalizePassword(password)
    return this.limiter.run(() => argon2Hash(normalized, { ...this.#options, salt: randomBytes(16) }))
  }

  /** Constant-time verification (inside argon2). A hash of an unknown format verifies as false. */
  async verify(phc: string, password: string): Promise<boolean> {
    const normalized = normalizePassword(password)
    if (parseArgon2Params(phc) === undefined) {
      await this.verifyDummy(password)
      return false
    }
    return this.limiter.run(async () => {
      try {
        return await argon2Verify(phc, normalized)
      } catch {
        return false
      }
    })
  }

  /** Spends the time of one verification and returns false: used for unknown users (no enumeration by timing). */
  async verifyDummy(password: string): Promise<false> {
    await this.init()
    const dummy = this.#dummy as string // set by init
    const normalized = normalizePassword(password)
    await this.limiter.run(async () => {
      try {
        await argon2Verify(dummy, normalized)
      } catch {
        // a verification error still costs the time, which is all that matters here
      }
    })
    return false
  }

  /** True when the stored hash is weaker than the current parameters (rehash on login). */
  needsRehash(phc: string): boolean {
    const p = parseArgon2Params(phc)
    if (p === undefined) return true
    return p.memoryKib < this.params.memoryKib || p.iterations < this.params.iterations || p.parallelism < this.params.parallelism
  }
}
