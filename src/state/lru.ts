/**
 * A bounded map (pure apart from reading the time): forgets the least recently set entries first,
 * and with `maxAgeMs` treats entries older than that as absent. Ages are read from `now` (the system
 * clock unless given); a caller that has just read that same clock can pass the time to `get`.
 */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, { readonly value: V; readonly at: number }>()
  readonly #max: number
  readonly #maxAgeMs: number
  readonly #now: () => number

  constructor(max: number, maxAgeMs = Number.POSITIVE_INFINITY, now: () => number = Date.now) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError('max must be a positive integer')
    this.#max = max
    this.#maxAgeMs = maxAgeMs
    this.#now = now
  }

  /** `now`: the time by this map's clock, when the caller has it already (a clock read saved). */
  get(key: K, now?: number): V | undefined {
    const entry = this.#map.get(key)
    if (entry === undefined) return undefined
    if (this.#maxAgeMs !== Number.POSITIVE_INFINITY && (now ?? this.#now()) - entry.at >= this.#maxAgeMs) {
      this.#map.delete(key)
      return undefined
    }
    return entry.value
  }

  set(key: K, value: V): void {
    this.#map.delete(key)
    this.#map.set(key, { value, at: this.#maxAgeMs === Number.POSITIVE_INFINITY ? 0 : this.#now() })
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next()
      if (!oldest.done) this.#map.delete(oldest.value)
    }
  }

  delete(key: K): void {
    this.#map.delete(key)
  }

  clear(): void {
    this.#map.clear()
  }

  get size(): number {
    return this.#map.size
  }
}
