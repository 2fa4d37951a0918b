/**
 * `serve --workers N`: one primary process and N workers (node:cluster) sharing the listening port.
 * The primary migrates once, restarts a worker that dies, relays each worker's cache invalidations to
 * the others at once, and holds the rate-limit counters that workers share when there is no Redis.
 * SIGTERM/SIGINT on the primary: every worker finishes its in-flight requests, then all exit.
 */
import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import { type CounterStore, MemoryCounterStore } from '../ratelimit/counters.ts'
import type { StateChange } from '../store/store.ts'
import { workerEnv, workerExecArgv } from './node-flags.ts'

type CounterOp =
  | { readonly op: 'hit'; readonly key: string; readonly ttlMs: number; readonly now: number; readonly sliding: boolean }
  | { readonly op: 'get'; readonly key: string; readonly now: number }
  | { readonly op: 'unhit' | 'reset'; readonly key: string }

interface CounterRequest {
  readonly type: 'ra:counter'
  readonly id: number
  readonly request: CounterOp
}

interface CounterReply {
  readonly type: 'ra:counter-reply'
  readonly id: number
  readonly result?: unknown
  readonly error?: string
}

interface ChangeMessage {
  readonly type: 'ra:change'
  readonly change: Pick<StateChange, 'kind' | 'ref'>
}

function isMessage(value: unknown, type: string): boolean {
  return typeof value === 'object' && value !== null && (value as { type?: unknown }).type === type
}

const RESTART_DELAY_MS = 1_000

/** Runs in the primary. Resolves when every worker has exited after a signal; the exit code to use. */
export function runPrimary(workers: number, logger: Logger): Promise<number> {
  const counters = new MemoryCounterStore()
  let shuttingDown = false
  let failed = false

  const answer = async (worker: Worker, message: CounterRequest) => {
    const r = message.request
    let reply: CounterReply
    try {
      const result =
        r.op === 'hit'
          ? await counters.hit(r.key, r.ttlMs, r.now, r.sliding)
          : r.op === 'get'
            ? await counters.get(r.key, r.now)
            : r.op === 'unhit'
              ? await counters.unhit(r.key)
              : await counters.reset(r.key)
      reply = { type: 'ra:counter-reply', id: message.id, result }
    } catch (error) {
      reply = { type: 'ra:counter-reply', id: message.id, error: String(error) }
    }
    if (worker.isConnected()) worker.send(reply)
  }

  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env['NODE_OPTIONS']) })
  const fork = () => {
    const worker = cluster.fork(workerEnv(process.env))
    worker.on('message', (message: unknown) => {
      if (isMessage(message, 'ra:counter')) void answer(worker, message as CounterRequest)
      else if (isMessage(message, 'ra:change')) {
        for (const other of Object.values(cluster.workers ?? {})) {
          if (other !== undefined && other !== worker && other.isConnected()) other.send(message as ChangeMessage)
        }
      }
    })
    return worker
  }

  for (let i = 0; i < workers; i++) fork()
  logger.info({ workers }, 'rest-auth primary started its workers')

  return new Promise((resolve) => {
    cluster.on('exit', (worker, code, signal) => {
      if (shuttingDown) {
        // Killed by our own SIGTERM (no exit code): the worker was still starting and had not installed
        // its handler, which it does before it listens, so it never served a request. A clean stop.
        const stoppedBeforeServing = code === null && signal === 'SIGTERM'
        if (code !== 0 && !stoppedBeforeServing) failed = true
        if (Object.keys(cluster.workers ?? {}).length === 0) resolve(failed ? 1 : 0)
        return
      }
      logger.error({ pid: worker.process.pid, code, signal }, 'worker died; starting another')
      setTimeout(() => {
        if (!shuttingDown) fork()
      }, RESTART_DELAY_MS).unref()
    })
    const shutdown = (signal: NodeJS.Signals) => {
      if (shuttingDown) return
      shuttingDown = true
      logger.info({ signal }, 'shutting down: workers finish in-flight requests')
      const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
      if (alive.length === 0) resolve(0)
      for (const w of alive) w.process.kill('SIGTERM')
    }
    process.once('SIGTERM', () => shutdown('SIGTERM'))
    process.once('SIGINT', () => shutdown('SIGINT'))
  })
}

/** In a worker: the primary's counters, over IPC (used when there is no Redis). */
export class IpcCounterStore implements CounterStore {
  #next = 0
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()

  constructor() {
    process.on('message', (message: unknown) => {
      if (!isMessage(message, 'ra:counter-reply')) return
      const reply = message as CounterReply
      const waiter = this.#pending.get(reply.id)
      if (waiter === undefined) return
      this.#pending.delete(reply.id)
      if (reply.error !== undefined) waiter.reject(new Error(reply.error))
      else waiter.resolve(reply.result)
    })
  }

  #ask(request: CounterOp): Promise<unknown> {
    const id = ++this.#next
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      const message: CounterRequest = { type: 'ra:counter', id, request }
      if (process.send === undefined) reject(new Error('not a cluster worker'))
      else process.send(message)
    })
  }

  async hit(key: string, ttlMs: number, now: number, sliding = false) {
    return (await this.#ask({ op: 'hit', key, ttlMs, now, sliding })) as Awaited<ReturnType<CounterStore['hit']>>
  }

  async get(key: string, now: number) {
    return ((await this.#ask({ op: 'get', key, now })) ?? undefined) as Awaited<ReturnType<CounterStore['get']>>
  }

  async unhit(key: string): Promise<void> {
    await this.#ask({ op: 'unhit', key })
  }

  async reset(key: string): Promise<void> {
    await this.#ask({ op: 'reset', key })
  }

  async close(): Promise<void> {
    for (const waiter of this.#pending.values()) waiter.reject(new Error('closed'))
    this.#pending.clear()
  }
}

/** In a worker: tell the other workers what this one changed, and apply what they changed. */
export function shareInvalidations(apply: (change: Pick<StateChange, 'kind' | 'ref'>) => void): (change: Pick<StateChange, 'kind' | 'ref'>) => void {
  process.on('message', (message: unknown) => {
    if (isMessage(message, 'ra:change')) apply((message as ChangeMessage).change)
  })
  return (change) => {
    if (process.send !== undefined && process.connected) process.send({ type: 'ra:change', change } satisfies ChangeMessage)
  }
}
