/**
 * Child processes of the benchmark: spawning (each in its own process group, so a server's own
 * workers go down with it), readiness, a registry that kills everything still running on exit, errors
 * and signals, and RSS sampling from /proc.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createWriteStream, readdirSync, readFileSync, type WriteStream } from 'node:fs'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Child {
  readonly name: string
  readonly pid: number
  readonly proc: ChildProcess
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  readonly exited: Promise<number | string>
  /** The last few KiB of its stdout and stderr, for error messages. */
  tail(): string
  /** Lines it wrote so far (pino writes one JSON line per log entry). */
  lines(): number
}

const running = new Set<Child>()

/**
 * perl's own `setpgrp` then `exec`: the command in a process group of its own (so a server's workers
 * can be signalled with it) but in this session. Node's `detached` makes a new session instead, and
 * with Linux's autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`, on by default in
 * desktop and many cloud kernels) each session is one scheduling entity: the CPU is shared between
 * sessions first, then between the threads in each. A server in a session of its own was then held
 * to about half of a two-core machine whenever the load generator (in this session) was busy, however
 * many workers it ran, and its event loop shared that half with its own hashing threads. In one
 * session every thread of the server and of the load generator gets its fair share, as when the load
 * comes from elsewhere. perl is part of every Debian system (perl-base).
 */
const SAME_SESSION_GROUP = ['-e', 'setpgrp(0, 0) or die "setpgrp: $!"; exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!"']

let perl: boolean | undefined
function hasPerl(): boolean {
  return (perl ??= spawnSync('perl', ['-e', '1'], { stdio: 'ignore', timeout: 5_000 }).status === 0)
}

/**
 * Spawns `process.execPath args` in a new process group of this session (SAME_SESSION_GROUP; without
 * perl, in a new session as Node's `detached` makes it), stdout+stderr to `logFile`.
 */
export function spawnChild(name: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string, logFile: string): Child {
  const log: WriteStream = createWriteStream(logFile, { flags: 'a' })
  const stdio: ['pipe', 'pipe', 'pipe'] = ['pipe', 'pipe', 'pipe']
  const proc = hasPerl()
    ? spawn('perl', [...SAME_SESSION_GROUP, process.execPath, ...args], { cwd, env, stdio })
    : spawn(process.execPath, [...args], { cwd, env, detached: true, stdio })
  if (proc.pid === undefined) throw new Error(`${name}: could not start`)
  let tail = ''
  let lines = 0
  const onData = (chunk: Buffer) => {
    log.write(chunk)
    const text = chunk.toString('utf8')
    for (const c of text) if (c === '\n') lines++
    tail = (tail + text).slice(-4096)
  }
  proc.stdout?.on('data', onData)
  proc.stderr?.on('data', onData)
  proc.stdin?.on('error', () => {}) // the child may exit before we close its stdin
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => {
      running.delete(child)
      log.end()
      resolve(code ?? signal ?? 'unknown')
    })
  })
  const child: Child = { name, pid: proc.pid, proc, exited, tail: () => tail, lines: () => lines }
  running.add(child)
  return child
}

/** SIGTERM to the child's process group, SIGKILL after `graceMs`; resolves once it exited. */
export async function stopChild(child: Child, graceMs = 8_000): Promise<void> {
  if (!running.has(child)) return
  killGroup(child.pid, 'SIGTERM')
  const done = await Promise.race([child.exited.then(() => true), sleep(graceMs).then(() => false)])
  if (!done) {
    process.stderr.write(`bench: ${child.name} did not stop within ${graceMs} ms; killing it\n`)
    killGroup(child.pid, 'SIGKILL')
    await Promise.race([child.exited, sleep(2_000)])
  }
  // workers of a cluster may outlive their primary for a moment
  killGroup(child.pid, 'SIGKILL')
}

/** Synchronous last resort (process 'exit'): SIGKILL every process group we started that still runs. */
export function killAllNow(): void {
  for (const child of running) killGroup(child.pid, 'SIGKILL')
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => stopChild(c, 5_000)))
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // already gone
  }
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it; a tiny race is acceptable here). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))))
    })
  })
}

/** Polls `url` until it answers 200; fails early if the child exits, and after `timeoutMs`. */
export async function waitReady(child: Child, url: string, timeoutMs: number): Promise<number> {
  const started = performance.now()
  let exit: number | string | undefined
  void child.exited.then((code) => {
    exit = code
  })
  while (performance.now() - started < timeoutMs) {
    if (exit !== undefined) {
      throw new Error(`${child.name} exited (${exit}) before it was ready; its output:\n${child.tail().trim()}`)
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) })
      await res.arrayBuffer()
      if (res.status === 200) return performance.now() - started
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  throw new Error(`${child.name} was not ready after ${timeoutMs} ms; its output:\n${child.tail().trim()}`)
}

// ---- RSS ----

/** VmRSS of one process in bytes, or undefined if it is gone. */
function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/** Direct children of `pid`: /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN), else a /proc scan. */
function childrenOf(pid: number): number[] {
  try {
    const out: number[] = []
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim()
      if (text !== '') out.push(...text.split(/\s+/).map(Number))
    }
    return out
  } catch {
    const out: number[] = []
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
        // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        if (ppid === pid) out.push(Number(entry))
      } catch {
        // raced with an exit
      }
    }
    return out
  }
}

/** RSS of a process and all its descendants (a server with workers), per pid, in bytes. */
export function treeRss(root: number): Map<number, number> {
  const out = new Map<number, number>()
  const queue = [root]
  while (queue.length > 0) {
    const pid = queue.shift() as number
    if (out.has(pid)) continue
    const rss = rssOf(pid)
    if (rss === undefined) continue
    out.set(pid, rss)
    queue.push(...childrenOf(pid))
  }
  return out
}

// ---- CPU accounting (to tell how much of the machine other processes took during a scenario) ----

/** Jiffies of all CPUs since boot: total, and busy (not idle or iowait). */
function machineTicks(): { total: number; busy: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  // cpu user nice system idle iowait irq softirq steal (guest time is already counted in user)
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const total = f.reduce((a, b) => a + b, 0)
  return { total, busy: total - (f[3] ?? 0) - (f[4] ?? 0) }
}

/** utime + stime of one process in jiffies, or undefined if it is gone. */
function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // after "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based over the whole line)
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

/** CPU jiffies of this process's children that ended and were reaped (the load generator's runs). */
function reapedChildrenTicks(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // cutime and cstime: fields 16 and 17 (1-based over the whole line)
  return Number(fields[13]) + Number(fields[14])
}

/** Shares of the whole machine (100 = every core busy) during a sampling window. */
export interface CpuShares {
  readonly machineBusyPct: number
  readonly serverPct: number
  /** This process (autocannon, the sampler) and its load-generator runs (wrk) that ended in the window. */
  readonly benchPct: number
  /** Everything else on the machine: the noise. */
  readonly otherPct: number
  /** CPU time the server's processes used in the window (all threads, argon2 included). */
  readonly serverCpuSeconds: number
}

export interface RssSample {
  /** Milliseconds since the sampler started. */
  readonly atMs: number
  readonly totalBytes: number
  readonly processes: number
}

export interface RssSampler {
  stop(): RssSummary
}

export interface RssSummary {
  readonly maxTotalBytes: number
  /** Largest RSS any single process of the tree reached. */
  readonly maxProcessBytes: number
  readonly maxProcesses: number
  /** Every pid seen in the tree while sampling (a worker that restarted shows up as a new pid). */
  readonly pids: readonly number[]
  readonly samples: readonly RssSample[]
  readonly cpu: CpuShares
}

/** Samples the tree's RSS every `intervalMs` (and once at start and stop). */
export function sampleRss(root: number, intervalMs: number, onSample?: (s: RssSample) => void): RssSampler {
  const started = performance.now()
  const samples: RssSample[] = []
  let maxProcessBytes = 0
  const pids = new Set<number>()
  const firstTicks = new Map<number, number>()
  const lastTicks = new Map<number, number>()
  const machine0 = machineTicks()
  const self0 = process.cpuUsage()
  const children0 = reapedChildrenTicks()
  let sampled = 0
  const take = () => {
    const tree = treeRss(root)
    let total = 0
    for (const [pid, bytes] of tree) {
      const ticks = processTicks(pid)
      if (ticks !== undefined) {
        // a process first seen after the start was (nearly) born in the window
        if (!firstTicks.has(pid)) firstTicks.set(pid, sampled === 0 ? ticks : 0)
        lastTicks.set(pid, ticks)
      }
      pids.add(pid)
      total += bytes
      maxProcessBytes = Math.max(maxProcessBytes, bytes)
    }
    sampled++
    if (tree.size === 0) return
    const sample = { atMs: Math.round(performance.now() - started), totalBytes: total, processes: tree.size }
    samples.push(sample)
    onSample?.(sample)
  }
  take()
  const timer = setInterval(take, intervalMs)
  let summary: RssSummary | undefined
  return {
    stop() {
      if (summary !== undefined) return summary
      clearInterval(timer)
      take()
      const machine1 = machineTicks()
      const self = process.cpuUsage(self0)
      const totalTicks = Math.max(1, machine1.total - machine0.total)
      const busyTicks = machine1.busy - machine0.busy
      let serverTicks = 0
      for (const [pid, last] of lastTicks) serverTicks += last - (firstTicks.get(pid) ?? 0)
      // /proc/stat counts USER_HZ (100 per second on Linux); cpuUsage is in microseconds
      const benchTicks = (self.user + self.system) / 10_000 + (reapedChildrenTicks() - children0)
      const pct = (ticks: number) => Math.max(0, Math.min(100, (ticks / totalTicks) * 100))
      const cpu: CpuShares = {
        machineBusyPct: pct(busyTicks),
        serverPct: pct(serverTicks),
        benchPct: pct(benchTicks),
        otherPct: pct(busyTicks - serverTicks - benchTicks),
        serverCpuSeconds: serverTicks / 100,
      }
      return (summary = {
        maxTotalBytes: Math.max(0, ...samples.map((s) => s.totalBytes)),
        maxProcessBytes,
        maxProcesses: Math.max(0, ...samples.map((s) => s.processes)),
        pids: [...pids],
        samples,
        cpu,
      })
    },
  }
}
