import { RestAuthError } from '../errors.ts'

/**
 * AUTH_HASH_CONCURRENCY=auto: the cores left once every process's event loop has one, shared among the
 * processes; at least 1, at most 3 (libuv has 4 pool threads, and one stays free of argon2). One process
 * on two cores hashes one password at a time, so a flood of password checks cannot take the core the
 * token path runs on (measured: token-path p99 under that flood 3.1x idle with two hashes at once, 0.8x
 * with one); two workers on two cores hash one each.
 */
export function hashConcurrencyFor(cores: number, processes: number): number {
  const p = Math.max(1, processes)
  return Math.min(3, Math.max(1, Math.floor((cores - p) / p)))
}

/**
 * Bounded concurrency for expensive work (password hashing) with a bounded wait queue.
 * When the queue is full the caller gets 503 `overloaded` with `Retry-After` at once, so a flood of
 * password attempts cannot grow memory or latency without bound (OWASP Password Storage CS: a work
 * factor is also a DoS lever).
 */
export class BoundedLimiter {
  #active = 0
  readonly #waiting: Array<() => void> = []

  readonly concurrency: number
  readonly maxQueue: number
  readonly retryAfterSeconds: number

  constructor(concurrency: number, maxQueue: number, retryAfterSeconds = 1) {
    this.concurrency = concurrency
    this.maxQueue = maxQueue
    this.retryAfterSeconds = retryAfterSeconds
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError('concurrency must be a positive integer')
    if (!Number.isInteger(maxQueue) || maxQueue < 0) throw new TypeError('maxQueue must be a non-negative integer')
  }

  get active(): number {
    return this.#active
  }

  get queued(): number {
    return this.#waiting.length
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active >= this.concurrency) {
      if (this.#waiting.length >= this.maxQueue) {
        throw new RestAuthError('overloaded', 'Too many password checks are in progress; retry shortly.', {
          headers: { 'Retry-After': String(this.retryAfterSeconds) },
        })
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve))
    } else {
      this.#active++
    }
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next !== undefined) next() // hand the slot over: #active stays the same
      else this.#active--
    }
  }
}
