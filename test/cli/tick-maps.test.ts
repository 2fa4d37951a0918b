/**
 * The nextTick queue entries keep their hidden class (src/cli/tick-maps.ts). Checked in child processes
 * through heap snapshots, not by timing: the map of an entry made after full GCs with no entry alive is
 * the map of one made before them only when an entry is pinned.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { pinTickObjectMaps } from '../../src/cli/tick-maps.ts'
import { REPO_ROOT } from '../helpers/cli.ts'

const CHILD = fileURLToPath(new URL('./fixtures/tick-map-ids.mjs', import.meta.url))
const MODULE = fileURLToPath(new URL('../../src/cli/tick-maps.ts', import.meta.url))

interface MapIds {
  readonly before: number
  readonly after: number
  readonly caught: boolean
}

function mapIds(pin: boolean): MapIds {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--expose-gc', CHILD, ...(pin ? ['pin', MODULE] : [])], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  })
  return JSON.parse(out) as MapIds
}

test('pinTickObjectMaps keeps one entry, and says so on every call', () => {
  assert.equal(pinTickObjectMaps(), true)
  assert.equal(pinTickObjectMaps(), true)
})

test('pinned: a nextTick entry made after idle full GCs has the map the entries had before them', () => {
  const ids = mapIds(true)
  assert.equal(ids.caught, true)
  assert.equal(ids.after, ids.before)
})

// The control that shows the test above can fail: without the pin, Node 20's V8 collects the map.
// Other Node versions may keep it (then the pin is harmless), so the control asserts on 20 only.
test('not pinned (Node 20): the same GCs take the map, and later entries get a new one', (t) => {
  const ids = mapIds(false)
  assert.equal(ids.caught, true)
  if (process.versions.node.split('.')[0] !== '20') {
    t.diagnostic(`Node ${process.versions.node}: map ${ids.after === ids.before ? 'kept' : 'replaced'} without the pin`)
    return
  }
  assert.notEqual(ids.after, ids.before)
})

test('the CLI pins before it loads any command', () => {
  const main = readFileSync(new URL('../../src/cli/main.ts', import.meta.url), 'utf8')
  const call = main.indexOf('\npinTickObjectMaps()')
  assert.ok(call > 0, 'src/cli/main.ts calls pinTickObjectMaps() at top level')
  assert.ok(call < main.indexOf('async function main('), 'before main() runs')
  assert.ok(call < main.indexOf('await import('), 'before any command is imported')
})
