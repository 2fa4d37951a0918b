/**
 * Rate limiting applied: the login throttle (policy.ts) and fixed-window limits, over a CounterStore.
 * Keys hold a digest of the username, never the name itself (Redis keys are visible to operators).
 */
import { createHash } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { RestAuthError } from '../errors.ts'
import type { CounterStore } from './counters.ts'
import { judgeLogin, LOGIN_LIMITS, type LoginLimits, retryAfterSeconds, type WindowLimit } from './policy.ts'

function digest(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64url').slice(0, 22)
}

export interface RateLimiter {
  /**
   * Admits a password attempt for `canonical` from `ip`, or throws 429 `too_many_attempts`. An
   * admitted attempt is counted against the pair and address limits at once (atomically), so a burst
   * of parallel attempts cannot all pass the check before any is counted; it must then be settled with
   * `loginFailed` or `loginSucceeded`.
   */
  checkLogin(canonical: string, ip: string): Promise<void>
  loginFailed(canonical: string, ip: string): Promise<void>
  loginSucceeded(canonical: string, ip: string): Promise<void>
  /** Counts one request against `limit` for `subject` (an address or a client id); throws 429 `rate_limited` past it. */
  consume(limit: WindowLimit, subject: string): Promise<void>
}

/** `AUTH_RATE_LIMITS=off`. */
export const NO_RATE_LIMITS: RateLimiter = {
  async checkLogin() {},
  async loginFailed() {},
  async loginSucceeded() {},
  async consume() {},
}

export class CountingRateLimiter implements RateLimiter {
  readonly #counters: CounterStore
  readonly #clock: Clock
  readonly #limits: LoginLimits

  constructor(counters: CounterStore, clock: Clock, limits: LoginLimits = LOGIN_LIMITS) {
    this.#counters = counters
    this.#clock = clock
    this.#limits = limits
  }

  #keys(canonical: string, ip: string) {
    const user = digest(canonical)
    return { pair: `login:pair:${user}:${ip}`, user: `login:user:${user}`, ip: `login:ip:${ip}` }
  }

  async checkLogin(canonical: string, ip: string): Promise<void> {
    const now = this.#clock.now()
    const k = this.#keys(canonical, ip)
    const l = this.#limits
    const [pair, user, addr] = await Promise.all([this.#counters.get(k.pair, now), this.#counters.get(k.user, now), this.#counters.get(k.ip, now)])
    const verdict = judgeLogin({ pair, user, ip: addr }, now, l)
    if (!verdict.allowed) throw this.#throttled(verdict.retryAt, now, verdict.reason)
    // Count the attempt up front on the hard limits: of N parallel attempts only the first few get a
    // count within the limit; the others are refused and taken back (refused attempts do not count).
    const [pairNow, addrNow] = await Promise.all([this.#counters.hit(k.pair, l.pairWindowMs, now), this.#counters.hit(k.ip, l.ipWindowMs, now)])
    if (pairNow.count > l.pairMax || addrNow.count > l.ipMax) {
      await Promise.all([this.#counters.unhit(k.pair), this.#counters.unhit(k.ip)])
      const retryAt = pairNow.count > l.pairMax ? pairNow.resetAt : addrNow.resetAt
      throw this.#throttled(retryAt, now, pairNow.count > l.pairMax ? 'pair' : 'address')
    }
  }

  #throttled(retryAt: number, now: number, reason: string): RestAuthError {
    const seconds = retryAfterSeconds(retryAt, now)
    throw new RestAuthError('too_many_attempts', `Too many failed password attempts; retry in ${seconds} s.`, {
      headers: { 'Retry-After': String(seconds) },
      internal: `login throttled: ${reason}`,
    })
  }

  /** The pair and address were counted by checkLogin; the username's run of failures grows here. */
  async loginFailed(canonical: string, ip: string): Promise<void> {
    const now = this.#clock.now()
    const k = this.#keys(canonical, ip)
    await this.#counters.hit(k.user, this.#limits.userResetMs, now, true)
  }

  /** A success resets its pair and the username's run, and takes back its count on the address. */
  async loginSucceeded(canonical: string, ip: string): Promise<void> {
    const k = this.#keys(canonical, ip)
    await Promise.all([this.#counters.reset(k.pair), this.#counters.reset(k.user), this.#counters.unhit(k.ip)])
  }

  async consume(limit: WindowLimit, subject: string): Promise<void> {
    const now = this.#clock.now()
    const c = await this.#counters.hit(`${limit.name}:${subject}`, limit.windowMs, now)
    if (c.count <= limit.max) return
    const seconds = retryAfterSeconds(c.resetAt, now)
    throw new RestAuthError('rate_limited', `Too many requests; retry in ${seconds} s.`, {
      headers: { 'Retry-After': String(seconds) },
      internal: `rate limit ${limit.name}`,
    })
  }
}
