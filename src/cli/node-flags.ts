/**
 * V8 flags and malloc settings the server's processes run with. V8 fixes its heap layout and glibc its
 * malloc settings when the process starts, so most are given at start: `npm start` passes them to
 * node, and the cluster primary to every worker. The old generation's growing factor is the exception:
 * V8 reads it at every full GC, so the process sets it itself.
 */
import { setFlagsFromString } from 'node:v8'

/**
 * `--max-semi-space-size=4`: V8 lets the young generation grow to 16 MB per semi-space (up to 48 MB of
 * RSS) under a steady request load. Request garbage dies young, so 4 MB per semi-space scavenges more
 * often at no cost we could measure (`npm run bench`: req/s and CPU per request within the run-to-run
 * noise) and keeps about 25 MB of RSS off every process (bearer load: 134 → 110 MB; registrations,
 * with argon2's 19 MiB per hash: 173 → 149 MB).
 */
export const SEMI_SPACE_FLAG = '--max-semi-space-size'
export const SEMI_SPACE_MB = 4

/** True when the arguments (execArgv, or NODE_OPTIONS split on spaces) already set the semi-space size. */
function setsSemiSpace(args: readonly string[]): boolean {
  return args.some((arg) => arg === SEMI_SPACE_FLAG || arg.startsWith(`${SEMI_SPACE_FLAG}=`) || arg === '--max_semi_space_size' || arg.startsWith('--max_semi_space_size='))
}

/**
 * The execArgv for a worker: the primary's own, plus our semi-space size unless the operator chose one
 * (in the primary's execArgv or in NODE_OPTIONS, which workers inherit).
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const fromEnv = (nodeOptions ?? '').split(/\s+/).filter((arg) => arg !== '')
  if (setsSemiSpace(execArgv) || setsSemiSpace(fromEnv)) return [...execArgv]
  return [...execArgv, `${SEMI_SPACE_FLAG}=${SEMI_SPACE_MB}`]
}

/**
 * glibc malloc: a fixed mmap threshold of 4 MiB. By default glibc raises the threshold to the size of
 * every large block freed, so after the first argon2id hash (19 MiB, on a libuv pool thread) later
 * hashes come from that thread's arena, and each pool thread keeps its 19 MiB resident after the hash
 * is done. Fixed, blocks of 4 MiB and more are mapped and unmapped each time. In the benchmark a single
 * process registering users (after the token scenarios) peaked at 132–165 MB RSS in three runs with it
 * (one at 128 KiB) and at 163–182 MB in four without; CPU per request stayed within the noise. glibc
 * reads it once at process start, so `npm start` sets it for node, and the cluster primary for every
 * worker. Elsewhere (musl, macOS) the variable means nothing.
 */
export const MMAP_THRESHOLD_ENV = 'MALLOC_MMAP_THRESHOLD_'
export const MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024

/** Environment additions for a worker: the mmap threshold, unless the operator set one (or any glibc malloc tunable). */
export function workerEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  if (env[MMAP_THRESHOLD_ENV] !== undefined || /glibc\.malloc\./.test(env['GLIBC_TUNABLES'] ?? '')) return {}
  return { [MMAP_THRESHOLD_ENV]: String(MMAP_THRESHOLD_BYTES) }
}

/**
 * V8's old-generation growing factor, fixed at 1.5 (`--heap-growing-percent=50`). Left to itself, V8
 * lets the old generation grow to up to 4x what the last full GC left alive before it collects again
 * (on a machine with memory to spare). Under a steady load of token issuance, a process with 24 MB
 * alive grew its heap to 97–105 MB between full GCs (the garbage of in-flight requests, promoted by the
 * scavenger), and its RSS with it. With 1.5 the full GCs (3–10 ms each, mostly incremental) come more
 * often and the heap peaks near 37 MB. Bench, one process, two A/B runs: token issuance 111–112 MB
 * max RSS against 141–142 MB, registrations 128–130 against 137–163 MB, CPU per request within the
 * noise. Unlike the semi-space size, V8 reads this flag at every full GC, so the process sets it itself
 * (`v8.setFlagsFromString`) and it holds however the server is started (`npm start`, `npx rest-auth
 * serve`, a cluster worker). Node refuses it in NODE_OPTIONS; an operator can still pass their own on
 * node's command line.
 */
export const HEAP_GROWING_FLAG = '--heap-growing-percent'
export const HEAP_GROWING_PERCENT = 50

/** The flag to set in this process, unless the operator chose a growing factor on node's command line. */
export function heapGrowingFlag(execArgv: readonly string[]): string | undefined {
  const chosen = execArgv.some((arg) => arg === HEAP_GROWING_FLAG || arg.startsWith(`${HEAP_GROWING_FLAG}=`) || arg === '--heap_growing_percent' || arg.startsWith('--heap_growing_percent='))
  return chosen ? undefined : `${HEAP_GROWING_FLAG}=${HEAP_GROWING_PERCENT}`
}

/** Sets the growing factor in this process (serve calls it first thing); the flag set, or undefined. */
export function applyHeapGrowing(execArgv: readonly string[] = process.execArgv): string | undefined {
  const flag = heapGrowingFlag(execArgv)
  if (flag !== undefined) setFlagsFromString(flag)
  return flag
}
