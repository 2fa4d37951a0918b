/**
 * SuffixKeyedMap (src/state/suffix-map.ts): indexed by the end of the key, it must answer exactly as a
 * map keyed by the whole string, whatever keys share a suffix.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { SuffixKeyedMap } from '../../src/state/suffix-map.ts'

const SIG = 'x'.repeat(10) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef'

test('SuffixKeyedMap: a key that shares the indexed suffix with a stored one is a miss, never the other entry', () => {
  const map = new SuffixKeyedMap<string>(10)
  map.set(`Bearer header.payload.${SIG}`, 'alice')
  assert.equal(map.get(`Bearer header.payload.${SIG}`), 'alice')
  assert.equal(map.get(`Bearer header.PAYLOAD.${SIG}`), undefined, 'same signature tail, another token')
  assert.equal(map.get(`bearer header.payload.${SIG}`), undefined, 'another header spelling')
  assert.equal(map.get(SIG.slice(-24)), undefined, 'the suffix alone')
})

test('SuffixKeyedMap: keys sharing a suffix displace each other; delete removes only the exact key', () => {
  const map = new SuffixKeyedMap<number>(10)
  map.set(`a.${SIG}`, 1)
  map.set(`b.${SIG}`, 2)
  assert.equal(map.get(`a.${SIG}`), undefined)
  assert.equal(map.get(`b.${SIG}`), 2)
  map.delete(`a.${SIG}`)
  assert.equal(map.get(`b.${SIG}`), 2, 'deleting another key with the same suffix leaves the entry')
  map.delete(`b.${SIG}`)
  assert.equal(map.get(`b.${SIG}`), undefined)
  map.set('short', 3)
  assert.equal(map.get('short'), 3, 'keys shorter than the suffix are their own index')
  map.clear()
  assert.equal(map.size, 0)
})

test('SuffixKeyedMap: bounded, the oldest set entry goes first', () => {
  const map = new SuffixKeyedMap<number>(2)
  map.set(`1${SIG}1`, 1)
  map.set(`2${SIG}2`, 2)
  map.set(`3${SIG}3`, 3)
  assert.equal(map.size, 2)
  assert.equal(map.get(`1${SIG}1`), undefined)
  assert.equal(map.get(`3${SIG}3`), 3)
})

test('SuffixKeyedMap: over random keys and operations it answers as a Map of the whole keys would (or misses after a displacement)', () => {
  const key = fc.oneof(fc.string({ maxLength: 30 }), fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.constantFrom(SIG, `${SIG}Z`)).map(([p, s]) => p + s))
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('set', 'delete', 'get'), key, fc.integer()), { maxLength: 60 }), (ops) => {
      const map = new SuffixKeyedMap<number>(1000)
      const model = new Map<string, number>()
      for (const [op, k, v] of ops) {
        if (op === 'set') {
          map.set(k, v)
          model.set(k, v)
        } else if (op === 'delete') {
          map.delete(k)
          model.delete(k)
        } else {
          const got = map.get(k)
          // never a value the whole-key map would not give
          if (got !== undefined) assert.equal(got, model.get(k))
        }
      }
    }),
  )
})

test('SuffixKeyedMap.storedKey: the stored key for an equal one, nothing for a key that only shares its suffix', () => {
  const map = new SuffixKeyedMap<number>(10)
  const stored = `a.${SIG}`
  map.set(stored, 1)
  assert.equal(map.storedKey(`a.${SIG.slice(0, 5)}${SIG.slice(5)}`), stored)
  assert.equal(map.storedKey(`b.${SIG}`), undefined)
  assert.equal(map.storedKey('a.'), undefined)
  map.delete(stored)
  assert.equal(map.storedKey(stored), undefined)
})
