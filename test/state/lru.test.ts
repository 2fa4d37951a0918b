/** BoundedMap (src/state/lru.ts): bounded by count, aged by its own clock, and told the time when the caller has it. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BoundedMap } from '../../src/state/lru.ts'

/** A clock that moves only when told, and counts how often it is read. */
function countingClock(startMs = 1_000_000) {
  let t = startMs
  let reads = 0
  return {
    now: () => {
      reads++
      return t
    },
    advance: (ms: number) => {
      t += ms
    },
    get reads() {
      return reads
    },
  }
}

test('forgets the least recently set entry once it holds more than max', () => {
  const map = new BoundedMap<string, number>(2)
  map.set('a', 1)
  map.set('b', 2)
  map.set('a', 3) // set again: now the most recent
  map.set('c', 4)
  assert.equal(map.get('b'), undefined)
  assert.equal(map.get('a'), 3)
  assert.equal(map.get('c'), 4)
  assert.equal(map.size, 2)
})

test('entries age by the map\'s own clock, not the system\'s', () => {
  const clock = countingClock()
  const map = new BoundedMap<string, number>(10, 100, clock.now)
  map.set('a', 1)
  clock.advance(99)
  assert.equal(map.get('a'), 1)
  clock.advance(1)
  assert.equal(map.get('a'), undefined, 'gone at maxAgeMs')
  assert.equal(map.size, 0, 'and dropped')
})

test('get(key, now) uses the time it is given and reads no clock', () => {
  const clock = countingClock()
  const map = new BoundedMap<string, number>(10, 100, clock.now)
  map.set('a', 1)
  const before = clock.reads
  assert.equal(map.get('a', 1_000_099), 1)
  assert.equal(map.get('a', 1_000_100), undefined)
  assert.equal(clock.reads, before)
})

test('without maxAgeMs the clock is never read', () => {
  const clock = countingClock()
  const map = new BoundedMap<string, number>(10, Number.POSITIVE_INFINITY, clock.now)
  map.set('a', 1)
  assert.equal(map.get('a'), 1)
  assert.equal(clock.reads, 0)
})
