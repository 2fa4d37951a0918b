/**
 * libuv's pool threads, where argon2 runs, at a lower scheduling priority than the event loop
 * (AUTH_HASH_NICE, Linux only). When password checks and the token path want more CPU than there is,
 * the kernel then runs the event loop (and the token path on it) first, and the hashes take what is
 * left: a flood of password attempts slows password checks, not requests that carry a token. With cores
 * to spare nothing changes: a niced thread runs at full speed when nothing else wants the core.
 *
 * Node 20 names every thread `node`, so the pool's threads are found by what they do: as many CPU-bound
 * tasks (pbkdf2) as the pool has threads are queued at once, and the threads whose CPU time grew by
 * about as much as the busiest one are the pool's. Rounds repeat until exactly the pool's size of
 * threads has been seen; anything else (fewer, or a thread more) leaves every priority as it was.
 * Other pool work (async fs, dns.lookup, async crypto) runs at the same priority; this server issues
 * little of it, and none on the token path.
 */
import { pbkdf2 } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { setPriority } from 'node:os'
import { promisify } from 'node:util'

const pbkdf2Async = promisify(pbkdf2)

/** pbkdf2-sha256 iterations per probe task: about 10–30 ms of one core. */
const PROBE_ITERATIONS = 40_000
const PROBE_ROUNDS = 5
/** A thread counts as the pool's when its CPU time grew by at least this share of the busiest thread's. */
const BUSY_SHARE = 0.5

export type PoolPriority =
  | { readonly applied: true; readonly nice: number; readonly threads: readonly number[] }
  | { readonly applied: false; readonly reason: string }

/** libuv's pool size as Node reads it: UV_THREADPOOL_SIZE, else 4 (at most 1024). */
export function poolSize(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const n = Number.parseInt(env['UV_THREADPOOL_SIZE'] ?? '', 10)
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4
}

/** CPU time of each thread of this process, in ns (schedstat; the tick-based stat where it is missing). */
export function threadCpuNs(): Map<number, number> {
  const out = new Map<number, number>()
  for (const name of readdirSync('/proc/self/task')) {
    const tid = Number(name)
    try {
      out.set(tid, Number(readFileSync(`/proc/self/task/${name}/schedstat`, 'utf8').split(' ')[0]))
    } catch {
      try {
        const stat = readFileSync(`/proc/self/task/${name}/stat`, 'utf8')
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        // utime and stime (fields 14 and 15 of the whole line), in USER_HZ ticks of 10 ms
        out.set(tid, (Number(fields[11]) + Number(fields[12])) * 10_000_000)
      } catch {
        // the thread ended
      }
    }
  }
  return out
}

/**
 * The threads that grew by at least BUSY_SHARE of the busiest one's growth between two readings
 * (pure). `exclude`: threads never to count (the event loop's).
 */
export function busyThreads(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>, exclude: ReadonlySet<number>): number[] {
  const grown: [number, number][] = []
  for (const [tid, ns] of after) {
    if (exclude.has(tid)) continue
    grown.push([tid, ns - (before.get(tid) ?? ns)])
  }
  const most = Math.max(0, ...grown.map(([, d]) => d))
  if (most <= 0) return []
  return grown.filter(([, d]) => d >= most * BUSY_SHARE).map(([tid]) => tid)
}

/** Finds the pool's threads (above) and sets their nice value; `nice` 0, or not Linux: nothing is done. */
export async function lowerPoolPriority(nice: number, platform: NodeJS.Platform = process.platform): Promise<PoolPriority> {
  if (nice === 0) return { applied: false, reason: 'AUTH_HASH_NICE=0' }
  if (platform !== 'linux') return { applied: false, reason: `not on Linux (${platform})` }
  const size = poolSize()
  const eventLoop = new Set([process.pid])
  const found = new Set<number>()
  for (let round = 0; round < PROBE_ROUNDS && found.size < size; round++) {
    const before = threadCpuNs()
    await Promise.all(Array.from({ length: size }, (_, i) => pbkdf2Async(`probe ${round}`, `pool thread ${i}`, PROBE_ITERATIONS, 32, 'sha256')))
    for (const tid of busyThreads(before, threadCpuNs(), eventLoop)) found.add(tid)
  }
  if (found.size !== size) {
    return { applied: false, reason: `found ${found.size} busy threads for a pool of ${size}; priorities left as they were` }
  }
  const threads = [...found].sort((a, b) => a - b)
  for (const tid of threads) setPriority(tid, nice)
  return { applied: true, nice, threads }
}
