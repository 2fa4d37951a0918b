/**
 * The counter port of rate limiting: named counters that expire. One implementation in memory (one
 * instance) and one in Redis (several instances share the counts). Updates are atomic in both.
 */

export interface Counter {
  readonly count: number
  /** When the counter disappears (ms since the epoch). */
  readonly resetAt: number
  /** When it was last increased (ms). */
  readonly lastAt: number
}

export interface CounterStore {
  /**
   * Adds one and returns the new state. A new counter lives `ttlMs`; with `sliding`, every hit pushes
   * the end to `now + ttlMs` (the counter resets that long after the last hit).
   */
  hit(key: string, ttlMs: number, now: number, sliding?: boolean): Promise<Counter>
  get(key: string, now: number): Promise<Counter | undefined>
  /** Takes one back (an attempt counted up front that turned out not to count). Never below 0. */
  unhit(key: string): Promise<void>
  reset(key: string): Promise<void>
  close(): Promise<void>
}

/** In-process counters, bounded: the oldest entries go first when `maxKeys` is reached. */
export class MemoryCounterStore implements CounterStore {
  readonly #map = new Map<string, Counter>()
  readonly #maxKeys: number

  constructor(maxKeys = 100_000) {
    this.#maxKeys = maxKeys
  }

  async hit(key: string, ttlMs: number, now: number, sliding = false): Promise<Counter> {
    const current = this.#live(key, now)
    const next: Counter =
      current === undefined
        ? { count: 1, resetAt: now + ttlMs, lastAt: now }
        : { count: current.count + 1, resetAt: sliding ? now + ttlMs : current.resetAt, lastAt: now }
    this.#map.delete(key) // re-insert: Map order is the eviction order
    this.#map.set(key, next)
    if (this.#map.size > this.#maxKeys) this.#evict(now)
    return next
  }

  async get(key: string, now: number): Promise<Counter | undefined> {
    return this.#live(key, now)
  }

  async unhit(key: string): Promise<void> {
    const c = this.#map.get(key)
    if (c !== undefined && c.count > 0) this.#map.set(key, { ...c, count: c.count - 1 })
  }

  async reset(key: string): Promise<void> {
    this.#map.delete(key)
  }

  async close(): Promise<void> {
    this.#map.clear()
  }

  get size(): number {
    return this.#map.size
  }

  #live(key: string, now: number): Counter | undefined {
    const c = this.#map.get(key)
    if (c === undefined) return undefined
    if (now >= c.resetAt) {
      this.#map.delete(key)
      return undefined
    }
    return c
  }

  #evict(now: number): void {
    for (const [key, c] of this.#map) {
      if (this.#map.size <= this.#maxKeys * 0.9) break
      if (now >= c.resetAt || this.#map.size > this.#maxKeys) this.#map.delete(key)
    }
  }
}
