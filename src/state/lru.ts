/**
 * A bounded map (pure apart from reading the time): forgets the least recently set entries first,
 * and with `maxAgeMs` treats entries older than that as absent.
 */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, { readonly value: V; readonly at: number }>()
  readonly #max: number
  readonly #maxAgeMs: number

  constructor(max: number, maxAgeMs = Number.POSITIVE_INFINITY) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError('max must be a positive integer')
    this.#max = max
    this.#maxAgeMs = maxAgeMs
  }

  get(key: K): V | undefined {
    const entry = this.#map.get(key)
    if (entry === undefined) return undefined
    if (this.#maxAgeMs !== Number.POSITIVE_INFINITY && Date.now() - entry.at >= this.#maxAgeMs) {
      this.#map.delete(key)
      return undefined
    }
    return entry.value
  }

  set(key: K, value: V): void {
    this.#map.delete(key)
    this.#map.set(key, { value, at: this.#maxAgeMs === Number.POSITIVE_INFINITY ? 0 : Date.now() })
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
