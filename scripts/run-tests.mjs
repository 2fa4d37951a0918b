// node:test on Node 20 does not discover .ts files: list them and run them through tsx.
// A test that runs past 4 minutes fails instead of holding the run (and CI) open.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'

const filter = process.argv.slice(2)
const files = readdirSync('test', { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => `test/${f}`)
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort()
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=240000', ...files], {
  stdio: 'inherit',
})
process.exit(result.status ?? 1)
