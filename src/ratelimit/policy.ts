/**
 * Rate-limit policy (pure): what the counters mean. Numbers from the security baseline ("Login
 * throttling", "Other limits"): NIST SP 800-63B-4 §3.2.2, OWASP Authentication CS, Keycloak defaults.
 *
 * Password failures are counted three ways:
 * - per (canonical username, client address): 5 failures in 15 min → a hard 429 until the window ends;
 * - per username alone: no hard stop for the first 100 (an attacker must not lock the owner out), only
 *   a growing delay after 10 (60 s per further failure, at most 15 min), reset 12 h after the last
 *   failure; at 100 consecutive failures a stop until that reset;
 * - per address: 100 failures in 10 min (password spraying across many usernames).
 * A success from an address resets its pair and the username's run of failures. Attempts refused
 * while throttled are not counted. Unknown usernames are counted exactly like known ones.
 */

import type { Counter } from './counters.ts'

export interface LoginLimits {
  readonly pairMax: number
  readonly pairWindowMs: number
  readonly userDelayAfter: number
  readonly userDelayStepMs: number
  readonly userDelayMaxMs: number
  readonly userStopAt: number
  readonly userResetMs: number
  readonly ipMax: number
  readonly ipWindowMs: number
}

export const LOGIN_LIMITS: LoginLimits = {
  pairMax: 5,
  pairWindowMs: 15 * 60_000,
  userDelayAfter: 10,
  userDelayStepMs: 60_000,
  userDelayMaxMs: 15 * 60_000,
  userStopAt: 100,
  userResetMs: 12 * 3_600_000,
  ipMax: 100,
  ipWindowMs: 10 * 60_000,
}

export interface LoginCounters {
  readonly pair: Counter | undefined
  readonly user: Counter | undefined
  readonly ip: Counter | undefined
}

export type LoginVerdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'pair' | 'user_delay' | 'user_stop' | 'address'; readonly retryAt: number }

/** The delay a username's run of failures imposes after its last failure (0 below the threshold). */
export function userDelayMs(failures: number, limits: LoginLimits = LOGIN_LIMITS): number {
  if (failures < limits.userDelayAfter) return 0
  return Math.min(limits.userDelayStepMs * (failures - limits.userDelayAfter + 1), limits.userDelayMaxMs)
}

/** May a password attempt go ahead now? The latest `retryAt` of every rule that refuses it. */
export function judgeLogin(c: LoginCounters, now: number, limits: LoginLimits = LOGIN_LIMITS): LoginVerdict {
  const refusals: Array<{ reason: 'pair' | 'user_delay' | 'user_stop' | 'address'; retryAt: number }> = []
  if (c.pair !== undefined && c.pair.count >= limits.pairMax) refusals.push({ reason: 'pair', retryAt: c.pair.resetAt })
  if (c.ip !== undefined && c.ip.count >= limits.ipMax) refusals.push({ reason: 'address', retryAt: c.ip.resetAt })
  if (c.user !== undefined) {
    if (c.user.count >= limits.userStopAt) refusals.push({ reason: 'user_stop', retryAt: c.user.resetAt })
    else {
      const until = c.user.lastAt + userDelayMs(c.user.count, limits)
      if (until > now) refusals.push({ reason: 'user_delay', retryAt: until })
    }
  }
  const [first, ...rest] = refusals
  if (first === undefined) return { allowed: true }
  const latest = rest.reduce((a, b) => (b.retryAt > a.retryAt ? b : a), first)
  return { allowed: false, ...latest }
}

/** A fixed-window limit on other endpoints (registration, refresh, introspection). */
export interface WindowLimit {
  readonly name: string
  readonly max: number
  readonly windowMs: number
}

export const REGISTRATION_LIMIT: WindowLimit = { name: 'register', max: 10, windowMs: 3_600_000 }
export const REFRESH_LIMIT: WindowLimit = { name: 'refresh', max: 150, windowMs: 5 * 60_000 }
export const INTROSPECTION_LIMIT: WindowLimit = { name: 'introspect', max: 600, windowMs: 60_000 }

/** Seconds for `Retry-After` (RFC 9110 §10.2.3): whole, at least 1. */
export function retryAfterSeconds(retryAt: number, now: number): number {
  return Math.max(1, Math.ceil((retryAt - now) / 1000))
}
