/**
 * Rate-limit counters in Redis (REDIS_URL), so several instances share one count. Each update is one
 * Lua script: increment, stamp, expire, read back, atomically (no lost update between instances).
 * When Redis cannot be reached the limiter falls back to this process's own counters rather than
 * failing logins or letting them through unlimited (FailoverCounterStore).
 */
import { Redis } from 'ioredis'
import type { Counter, CounterStore } from '../../ratelimit/counters.ts'

const PREFIX = 'rest-auth:rl:'

// KEYS[1] counter; ARGV[1] ttl ms, ARGV[2] now ms, ARGV[3] '1' = sliding expiry
const HIT = `
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
redis.call('HSET', KEYS[1], 'l', ARGV[2])
if c == 1 or ARGV[3] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {c, redis.call('PTTL', KEYS[1])}
`

// KEYS[1] counter: one back, never below zero
const UNHIT = `
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
if c > 0 then redis.call('HINCRBY', KEYS[1], 'c', -1) end
return 1
`

export class RedisCounterStore implements CounterStore {
  readonly #redis: Redis

  constructor(url: string) {
    this.#redis = new Redis(url, {
      lazyConnect: false,
      // fail fast: a request must not hang on an unreachable Redis; the failover answers instead
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      connectTimeout: 2_000,
      commandTimeout: 1_000,
    })
    this.#redis.defineCommand('raHit', { numberOfKeys: 1, lua: HIT })
    this.#redis.defineCommand('raUnhit', { numberOfKeys: 1, lua: UNHIT })
    // Errors surface on the commands; without a listener ioredis would print them for every retry.
    this.#redis.on('error', () => {})
  }

  async hit(key: string, ttlMs: number, now: number, sliding = false): Promise<Counter> {
    const hit = (this.#redis as unknown as { raHit: (k: string, ttl: number, now: number, sliding: string) => Promise<[number, number]> }).raHit // defined above
    const [count, pttl] = await hit.call(this.#redis, PREFIX + key, ttlMs, now, sliding ? '1' : '0')
    return { count: Number(count), resetAt: now + Math.max(0, Number(pttl)), lastAt: now }
  }

  async get(key: string, now: number): Promise<Counter | undefined> {
    const [[, fields], [, pttl]] = (await this.#redis.multi().hgetall(PREFIX + key).pttl(PREFIX + key).exec()) as [
      [Error | null, Record<string, string>],
      [Error | null, number],
    ]
    if (fields['c'] === undefined || Number(pttl) <= 0) return undefined
    return { count: Number(fields['c']), resetAt: now + Number(pttl), lastAt: Number(fields['l'] ?? now) }
  }

  async unhit(key: string): Promise<void> {
    const unhit = (this.#redis as unknown as { raUnhit: (k: string) => Promise<number> }).raUnhit // defined above
    await unhit.call(this.#redis, PREFIX + key)
  }

  async reset(key: string): Promise<void> {
    await this.#redis.del(PREFIX + key)
  }

  /** Resolves once connected (or after `timeoutMs`, when the failover takes over until it is). */
  async ready(timeoutMs = 2_000): Promise<boolean> {
    if (this.#redis.status === 'ready') return true
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer)
        this.#redis.off('ready', onReady)
        resolve(ok)
      }
      const onReady = () => done(true)
      const timer = setTimeout(() => done(false), timeoutMs)
      this.#redis.once('ready', onReady)
    })
  }

  async ping(): Promise<void> {
    await this.#redis.ping()
  }

  async close(): Promise<void> {
    try {
      await this.#redis.quit()
    } catch {
      this.#redis.disconnect()
    }
  }
}

/** Uses `primary` (Redis) and, while it fails, `fallback` (memory); reports each switch. */
export class FailoverCounterStore implements CounterStore {
  readonly #primary: CounterStore
  readonly #fallback: CounterStore
  readonly #onChange: (degraded: boolean, error?: unknown) => void
  #degraded = false

  constructor(primary: CounterStore, fallback: CounterStore, onChange: (degraded: boolean, error?: unknown) => void) {
    this.#primary = primary
    this.#fallback = fallback
    this.#onChange = onChange
  }

  async #run<T>(op: (s: CounterStore) => Promise<T>): Promise<T> {
    try {
      const result = await op(this.#primary)
      if (this.#degraded) {
        this.#degraded = false
        this.#onChange(false)
      }
      return result
    } catch (error) {
      if (!this.#degraded) {
        this.#degraded = true
        this.#onChange(true, error)
      }
      return op(this.#fallback)
    }
  }

  hit(key: string, ttlMs: number, now: number, sliding?: boolean): Promise<Counter> {
    return this.#run((s) => s.hit(key, ttlMs, now, sliding))
  }

  get(key: string, now: number): Promise<Counter | undefined> {
    return this.#run((s) => s.get(key, now))
  }

  unhit(key: string): Promise<void> {
    return this.#run((s) => s.unhit(key))
  }

  reset(key: string): Promise<void> {
    return this.#run((s) => s.reset(key))
  }

  async close(): Promise<void> {
    await Promise.all([this.#primary.close(), this.#fallback.close()])
  }
}
