/**
 * The libuv pool's threads, where argon2 runs, below the event loop (src/cli/pool-priority.ts). The
 * probe runs in child processes (nice values only go up for an unprivileged process, and the test
 * runner's own threads stay as they are); the thread-finding rule is pure and tested here.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { busyThreads, lowerPoolPriority, poolSize, type PoolPriority } from '../../src/cli/pool-priority.ts'
import { REPO_ROOT } from '../helpers/cli.ts'

const CHILD = fileURLToPath(new URL('./fixtures/pool-priority-child.ts', import.meta.url))
const linux = { skip: process.platform === 'linux' ? false : 'thread priorities are set on Linux only' }

interface ChildReport {
  readonly result: PoolPriority
  readonly nices: Record<string, number>
  readonly pid: number
  readonly ranOn: readonly number[]
}

function child(nice: number, env: Record<string, string> = {}): ChildReport {
  const { UV_THREADPOOL_SIZE: _, ...inherited } = process.env
  const out = execFileSync(process.execPath, ['--import', 'tsx', CHILD, String(nice)], {
    cwd: REPO_ROOT,
    env: { ...inherited, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return JSON.parse(out) as ChildReport
}

test('busyThreads: the threads that grew by at least half of the busiest one, never an excluded one', () => {
  const before = new Map([[1, 0], [2, 100], [3, 100], [4, 0], [5, 50]])
  const after = new Map([[1, 900], [2, 1_100], [3, 550], [4, 600], [5, 60], [6, 10]])
  // growth: 2 → 1000, 3 → 450, 4 → 600, 5 → 10, 6 → 0 (new: no earlier reading)
  assert.deepEqual(busyThreads(before, after, new Set([1])), [2, 4])
  assert.deepEqual(busyThreads(before, before, new Set()), [], 'nothing grew')
})

test('poolSize: UV_THREADPOOL_SIZE as libuv reads it, else 4', () => {
  assert.equal(poolSize({}), 4)
  assert.equal(poolSize({ UV_THREADPOOL_SIZE: '2' }), 2)
  assert.equal(poolSize({ UV_THREADPOOL_SIZE: '0' }), 4)
  assert.equal(poolSize({ UV_THREADPOOL_SIZE: 'x' }), 4)
  assert.equal(poolSize({ UV_THREADPOOL_SIZE: '5000' }), 1024)
})

test('lowerPoolPriority: nice 0, or another platform, changes nothing', async () => {
  assert.deepEqual(await lowerPoolPriority(0), { applied: false, reason: 'AUTH_HASH_NICE=0' })
  assert.deepEqual(await lowerPoolPriority(10, 'darwin'), { applied: false, reason: 'not on Linux (darwin)' })
})

for (const size of [4, 2]) {
  test(`lowerPoolPriority: the ${size} pool threads at nice 10, the event loop and every other thread as they were; the next pool task runs on one of them`, linux, () => {
    const report = child(10, size === 4 ? {} : { UV_THREADPOOL_SIZE: String(size) })
    assert.ok(report.result.applied, `applied: ${JSON.stringify(report.result)}`)
    const niced = Object.entries(report.nices).filter(([, n]) => n === 10).map(([tid]) => Number(tid)).sort((a, b) => a - b)
    assert.deepEqual(niced, [...report.result.threads])
    assert.equal(niced.length, size)
    assert.equal(report.nices[String(report.pid)], 0, 'the event loop keeps its priority')
    assert.ok(Object.values(report.nices).every((n) => n === 0 || n === 10))
    assert.ok(report.ranOn.length > 0 && report.ranOn.every((tid) => niced.includes(tid)), `a later pool task ran on ${report.ranOn.join(',')}, niced: ${niced.join(',')}`)
  })
}

test('lowerPoolPriority: AUTH_HASH_NICE=0 leaves every thread at nice 0', linux, () => {
  const report = child(0)
  assert.equal(report.result.applied, false)
  assert.ok(Object.values(report.nices).every((n) => n === 0), JSON.stringify(report.nices))
})
