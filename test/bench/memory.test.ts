/**
 * `npm run bench:memory` (scripts/bench-memory.ts) runs end to end: the real app, each header told
 * from memory on every measured call (the script fails otherwise), and a table of the three headers.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

test('bench:memory: every call is answered from memory, and the table names the three headers', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/bench-memory.ts', '--rounds', '3', '--calls', '2000'], {
    timeout: 120_000,
  })
  const rows = stdout.split('\n').filter((line) => /^\| (bearer|basic-token|basic-password) \| \d+ \| \d+\.\d\d \|$/.test(line))
  assert.deepEqual(
    rows.map((row) => row.split(' | ')[0]),
    ['| bearer', '| basic-token', '| basic-password'],
    stdout,
  )
  assert.match(rows[0] ?? '', /\| 1\.00 \|$/)
})
