/**
 * A bounded map for long string keys that arrive as new string objects on every request (a token, an
 * Authorization header). V8 hashes a string over all of its characters the first time it is used as
 * a key, about 12 instructions per character: ~4,800 for a 400-character Bearer header, on every
 * request (callgrind), a fifth of what authentication from memory cost. This map indexes entries by
 * the key's last SUFFIX characters (for a JWS, the end of its signature) and compares the whole key
 * before it answers, so it answers exactly as a map keyed by the whole string would. Two keys with the
 * same suffix displace each other (the later one stays): a miss, never a wrong answer.
 */
import { BoundedMap } from './lru.ts'

/**
 * 12 base64url characters of a signature are ~70 bits: with 10,000 tokens remembered, the chance that
 * any two genuine ones share them is below 1e-13, and one that did would only be a miss. Not more: V8 copies
 * a slice of fewer than 13 characters into a flat string, which its Map hashes and compares in
 * generated code; a longer slice is a view into the key (a SlicedString), and each hash and each
 * comparison of one is a call into V8's runtime. 24 characters cost ~130 ns more per Bearer request
 * from memory (`npm run bench:memory`: 373-520 against 255-268 ns).
 */
const SUFFIX = 12

function indexOf(key: string): string {
  return key.length <= SUFFIX ? key : key.slice(key.length - SUFFIX)
}

export class SuffixKeyedMap<V> {
  readonly #map: BoundedMap<string, { readonly key: string; readonly value: V }>

  constructor(max: number) {
    this.#map = new BoundedMap(max)
  }

  get(key: string): V | undefined {
    return this.#entry(key)?.value
  }

  /**
   * The map's own string for this key, if it holds it: the same text, as the object the map compares
   * with. JavaScript cannot tell the two apart, but V8 can: a later `get` with this very object is
   * answered by comparing pointers, not the key's ~400 characters (a call into V8's runtime).
   */
  storedKey(key: string): string | undefined {
    return this.#entry(key)?.key
  }

  /** The entry of exactly this key: the one at its suffix, if its whole key is this one. */
  #entry(key: string): { readonly key: string; readonly value: V } | undefined {
    const entry = this.#map.get(indexOf(key))
    return entry !== undefined && entry.key === key ? entry : undefined
  }

  set(key: string, value: V): void {
    this.#map.set(indexOf(key), { key, value })
  }

  /** Removes the entry of exactly this key (not another key that shares its suffix). */
  delete(key: string): void {
    const index = indexOf(key)
    if (this.#map.get(index)?.key === key) this.#map.delete(index)
  }

  clear(): void {
    this.#map.clear()
  }

  get size(): number {
    return this.#map.size
  }
}
