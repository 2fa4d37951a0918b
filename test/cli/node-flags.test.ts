/** The V8 flags and malloc settings the server's processes run with (src/cli/node-flags.ts): added once, never over the operator's. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { MMAP_THRESHOLD_BYTES, workerEnv, workerExecArgv } from '../../src/cli/node-flags.ts'

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
