/** The V8 flags and malloc settings the server's processes run with (src/cli/node-flags.ts): added once, never over the operator's. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { HEAP_GROWING_PERCENT, heapGrowingFlag, MMAP_THRESHOLD_BYTES, workerEnv, workerExecArgv } from '../../src/cli/node-flags.ts'
import { REPO_ROOT } from '../helpers/cli.ts'

test('workerExecArgv adds --max-semi-space-size=4 after the primary\'s own arguments', () => {
  assert.deepEqual(workerExecArgv([], undefined), ['--max-semi-space-size=4'])
  assert.deepEqual(workerExecArgv(['--import', 'tsx'], ''), ['--import', 'tsx', '--max-semi-space-size=4'])
})

test('workerExecArgv keeps an operator\'s semi-space size, from execArgv or NODE_OPTIONS, in either spelling', () => {
  for (const execArgv of [['--max-semi-space-size=32'], ['--max-semi-space-size', '32'], ['--max_semi_space_size=32']]) {
    assert.deepEqual(workerExecArgv(execArgv, undefined), execArgv)
  }
  assert.deepEqual(workerExecArgv(['--import', 'tsx'], '--enable-source-maps  --max-semi-space-size=64'), ['--import', 'tsx'])
  assert.deepEqual(workerExecArgv([], '--max_semi_space_size=64'), [])
})

test('workerExecArgv returns a copy: the primary\'s execArgv is never changed', () => {
  const execArgv = ['--import', 'tsx']
  const out = workerExecArgv(execArgv, undefined)
  out.push('--x')
  assert.deepEqual(execArgv, ['--import', 'tsx'])
})

test('npm start runs the server with the same semi-space size as the workers', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
  assert.match(pkg.scripts['start'] ?? '', /node --max-semi-space-size=4 dist\/cli\/main\.js serve/)
})

test('workerEnv sets glibc\'s mmap threshold to 4 MiB, unless the operator set it or a glibc malloc tunable', () => {
  assert.equal(MMAP_THRESHOLD_BYTES, 4_194_304)
  assert.deepEqual(workerEnv({}), { MALLOC_MMAP_THRESHOLD_: '4194304' })
  assert.deepEqual(workerEnv({ PATH: '/usr/bin', GLIBC_TUNABLES: 'glibc.pthread.rseq=0' }), { MALLOC_MMAP_THRESHOLD_: '4194304' })
  assert.deepEqual(workerEnv({ MALLOC_MMAP_THRESHOLD_: '131072' }), {})
  assert.deepEqual(workerEnv({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' }), {})
  assert.deepEqual(workerEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }), {})
})

test('npm start sets the same mmap threshold, and keeps an operator\'s', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
  assert.match(pkg.scripts['start'] ?? '', /MALLOC_MMAP_THRESHOLD_=\$\{MALLOC_MMAP_THRESHOLD_:-4194304\} node /)
})

test('heapGrowingFlag sets a growing factor of 1.5, unless node\'s command line chose one (either spelling)', () => {
  assert.equal(HEAP_GROWING_PERCENT, 50)
  assert.equal(heapGrowingFlag([]), '--heap-growing-percent=50')
  assert.equal(heapGrowingFlag(['--import', 'tsx', '--max-semi-space-size=4']), '--heap-growing-percent=50')
  for (const execArgv of [['--heap-growing-percent=20'], ['--heap-growing-percent', '20'], ['--heap_growing_percent=0']]) {
    assert.equal(heapGrowingFlag(execArgv), undefined)
  }
})

/**
 * A child keeps ~55 MB alive and then churns objects that live long enough to be promoted, sampling
 * the old space: V8's own factor lets it reach ~4.6x the live size here, applyHeapGrowing's ~1.7x.
 */
test('applyHeapGrowing bounds the old generation at runtime: the peak stays under 2.5x what is alive', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heap-growing-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const script = join(dir, 'churn.mjs')
  writeFileSync(
    script,
    `import { getHeapSpaceStatistics } from 'node:v8'
import { applyHeapGrowing } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src/cli/node-flags.ts')).href)}
const applied = process.argv[2] === 'apply' ? applyHeapGrowing([]) : undefined
const oldUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size
const live = []
for (let i = 0; i < 400_000; i++) live.push({ i, s: 'x' + i, a: [i, i + 1] })
const alive = oldUsed()
let peak = 0
const fifo = new Array(20_000)
for (let i = 0; i < 3_000_000; i++) {
  fifo[i % fifo.length] = { i, s: 'y' + i, a: [i, i] }
  if (i % 1000 === 0) peak = Math.max(peak, oldUsed())
}
console.log(JSON.stringify({ applied, ratio: peak / alive, live: live.length }))
`,
  )
  const run = (mode: string) => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--max-semi-space-size=4', script, mode], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 })
    return JSON.parse(out.trim().split('\n').pop() ?? '{}') as { applied?: string; ratio: number }
  }
  const own = run('none')
  const bounded = run('apply')
  t.diagnostic(`old-space peak / alive: V8's own factor ${own.ratio.toFixed(2)}x, applyHeapGrowing ${bounded.ratio.toFixed(2)}x`)
  assert.equal(bounded.applied, '--heap-growing-percent=50')
  assert.ok(bounded.ratio < 2.5, `peak ${bounded.ratio.toFixed(2)}x the live size with the flag`)
  assert.ok(own.ratio > bounded.ratio, 'the control run (no flag) lets the heap grow further: the flag is what bounds it')
})
