/**
 * The change feed: reads the database's change log every `pollMs` and tells listeners what changed,
 * so caches on every instance (and every worker) drop what another one revoked or changed. The CLI
 * writes the same log, so `rest-auth user disable` reaches a running server too.
 *
 * Where the store can push (PostgreSQL LISTEN/NOTIFY), a commit wakes the feed at once, so a change
 * reaches every instance in milliseconds; the poll goes on regardless, as the fallback when that
 * connection is lost (and for changes the notification missed).
 *
 * `fresh()` is false until the first read and whenever no read has succeeded for `staleMs`: then
 * caches must not be trusted and reads go to the database (fail closed, never a stale "valid").
 */
import type { Clock } from '../clock.ts'
import type { StateChange, Store } from '../store/store.ts'

export type ChangeListener = (change: StateChange) => void

export interface FeedOptions {
  readonly pollMs: number
  readonly staleMs: number
  readonly onError?: (error: unknown) => void
  /** The push channel stopped (with its error) or started working again. */
  readonly onListening?: (listening: boolean, error?: unknown) => void
}

const BATCH = 1000

export class ChangeFeed {
  readonly #store: Store
  readonly #clock: Clock
  readonly #options: FeedOptions
  readonly #listeners: ChangeListener[] = []
  readonly #resetListeners: Array<() => void> = []
  #lastId = 0
  #lastOk = Number.NEGATIVE_INFINITY
  #timer: NodeJS.Timeout | undefined
  #polling: Promise<void> | undefined
  /** A wake-up came while a read was running: read again after it (the running one may miss it). */
  #again = false
  #watch: { close(): Promise<void> } | undefined
  #wasStale = true
  /** Set by stop(): no read starts after it, so none runs against a store being closed. */
  #stopped = false

  constructor(store: Store, clock: Clock, options: FeedOptions) {
    this.#store = store
    this.#clock = clock
    this.#options = options
  }

  onChange(listener: ChangeListener): void {
    this.#listeners.push(listener)
  }

  /** Called when the feed becomes fresh again after a gap: caches drop everything (changes may be missed). */
  onReset(listener: () => void): void {
    this.#resetListeners.push(listener)
  }

  fresh(now = this.#clock.now()): boolean {
    return now - this.#lastOk < this.#options.staleMs
  }

  /** The time by the feed's clock: what `fresh(now)` and the caches kept fresh by this feed measure with. */
  now(): number {
    return this.#clock.now()
  }

  async start(): Promise<void> {
    this.#lastId = await this.#store.latestChangeId()
    this.#markOk()
    this.#timer = setInterval(() => void this.poll(), this.#options.pollMs)
    this.#timer.unref()
    this.#watch = this.#store.watchChanges?.(() => this.#wake(), this.#options.onListening)
  }

  /** Stops polling and listening, and waits for a read in flight, so the store can be closed next. */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    const watch = this.#watch
    this.#watch = undefined
    await watch?.close()
    await this.#polling
  }

  #wake(): void {
    if (this.#stopped) return
    if (this.#polling !== undefined) this.#again = true
    else void this.poll()
  }

  /** One read of the log (also called by tests to be deterministic). */
  poll(): Promise<void> {
    if (this.#stopped) return Promise.resolve()
    this.#polling ??= this.#poll().finally(() => {
      this.#polling = undefined
      if (this.#again && !this.#stopped) {
        this.#again = false
        void this.poll()
      }
    })
    return this.#polling
  }

  async #poll(): Promise<void> {
    try {
      for (;;) {
        const changes = await this.#store.changesSince(this.#lastId, BATCH)
        for (const change of changes) {
          this.#lastId = change.id
          for (const l of this.#listeners) l(change)
        }
        if (changes.length < BATCH) break
      }
      this.#markOk()
    } catch (error) {
      this.#options.onError?.(error)
    }
  }

  #markOk(): void {
    const wasStale = this.#wasStale || !this.fresh()
    this.#lastOk = this.#clock.now()
    this.#wasStale = false
    if (wasStale) for (const l of this.#resetListeners) l()
  }
}
