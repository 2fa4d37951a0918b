/**
 * src/passwords/limiter.ts: AUTH_HASH_CONCURRENCY=auto (hashConcurrencyFor), and the bounded limiter's
 * refusal once its queue is full (503 overloaded with Retry-After, never an unbounded wait).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BoundedLimiter, hashConcurrencyFor } from '../../src/passwords/limiter.ts'
import { RestAuthError } from '../../src/errors.ts'

test('hashConcurrencyFor: the cores left after one per event loop, shared among the processes, at least 1, at most 3', () => {
  const cases: ReadonlyArray<readonly [cores: number, processes: number, expected: number]> = [
    [1, 1, 1],
    [2, 1, 1], // one core for the event loop (the token path), one for argon2
    [2, 2, 1], // two workers on two cores: two hashes at once in all, not four
    [3, 1, 2],
    [4, 1, 3], // one libuv pool thread stays free of argon2
    [4, 2, 1],
    [4, 4, 1],
    [8, 2, 3],
    [8, 3, 1],
    [8, 4, 1],
    [16, 4, 3],
    [64, 64, 1],
    [64, 1, 3],
    [2, 0, 1], // nonsense process counts count as one
  ]
  for (const [cores, processes, expected] of cases) {
    assert.equal(hashConcurrencyFor(cores, processes), expected, `${cores} cores, ${processes} processes`)
  }
})

test('BoundedLimiter: runs at most `concurrency` at once and refuses past the queue with 503 overloaded', async () => {
  const limiter = new BoundedLimiter(1, 1)
  let release: () => void = () => {}
  const first = limiter.run(() => new Promise<string>((resolve) => (release = () => resolve('first'))))
  const second = limiter.run(async () => 'second')
  await assert.rejects(limiter.run(async () => 'third'), (error: unknown) => {
    assert.ok(error instanceof RestAuthError)
    assert.equal(error.code, 'overloaded')
    return true
  })
  release()
  assert.equal(await first, 'first')
  assert.equal(await second, 'second')
})
