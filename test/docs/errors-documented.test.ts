/**
 * The error catalogue and the configuration table are documented, and the documents are in sync with
 * the code (house style §2.4 and §2.13; fastify test/internals/errors.test.js).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SETTINGS } from '../../src/config/schema.ts'
import { configurationMarkdown, errorsMarkdown } from '../../src/docs/generate.ts'
import { ERROR_CATALOGUE, type ErrorCode, RestAuthError } from '../../src/errors.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8')
const STALE = 'is out of date: run `npm run docs` and commit the result'
const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[]

/** The `Code` column of docs/errors.md. */
function documentedCodes(markdown: string): string[] {
  const codes: string[] = []
  for (const line of markdown.split('\n')) {
    const m = /^\| `([a-z0-9_]+)` \| (\d{3}) \|/.exec(line)
    if (m !== null) codes.push(m[1] as string)
  }
  return codes
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, dir, f))
}

test('docs/errors.md is generated from src/errors.ts and up to date', () => {
  assert.equal(read('docs/errors.md'), errorsMarkdown(), `docs/errors.md ${STALE}`)
})

test('docs/configuration.md is generated from src/config/schema.ts and up to date', () => {
  assert.equal(read('docs/configuration.md'), configurationMarkdown(), `docs/configuration.md ${STALE}`)
})

test('every ErrorCode is documented in docs/errors.md with its status (catalogue → docs)', () => {
  const markdown = read('docs/errors.md')
  for (const code of CODES) {
    const row = markdown.split('\n').find((line) => line.startsWith(`| \`${code}\` |`))
    assert.ok(row !== undefined, `${code} is missing from docs/errors.md (${STALE})`)
    assert.ok(row.startsWith(`| \`${code}\` | ${ERROR_CATALOGUE[code].status} |`), `${code}: status differs in docs/errors.md`)
  }
})

test('every code in docs/errors.md is in ERROR_CATALOGUE, once (docs → catalogue)', () => {
  const documented = documentedCodes(read('docs/errors.md'))
  assert.ok(documented.length > 0, 'the table was found')
  for (const code of documented) assert.ok(code in ERROR_CATALOGUE, `docs/errors.md lists ${code}, which the catalogue does not have`)
  assert.equal(new Set(documented).size, documented.length, 'no code is listed twice')
  assert.deepEqual([...documented].sort(), [...CODES].sort())
})

test('catalogue entries are complete: snake_case code, 4xx/5xx status, title, meaning and fix', () => {
  for (const code of CODES) {
    const entry = ERROR_CATALOGUE[code]
    assert.match(code, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/, code)
    assert.ok(entry.status >= 400 && entry.status <= 599, code)
    for (const field of ['title', 'meaning', 'fix'] as const) assert.ok(entry[field].trim().length > 0, `${code}.${field}`)
    const error = new RestAuthError(code)
    assert.equal(error.status, entry.status)
    assert.equal(error.message, entry.meaning, 'the default public message is the documented meaning')
  }
})

test('RestAuthError refuses a code that is not in the catalogue (misuse → TypeError, jose style)', () => {
  assert.throws(() => new RestAuthError('no_such_code' as ErrorCode), TypeError)
})

test("every `new RestAuthError('<code>'` in src/ uses a catalogue code", () => {
  const unknown: string[] = []
  let uses = 0
  for (const file of sourceFiles('src')) {
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/new RestAuthError\(\s*(['"`])([^'"`]*)\1/g)) {
      uses++
      const code = m[2] as string
      if (!(code in ERROR_CATALOGUE)) unknown.push(`${relative(ROOT, file)}: ${code}`)
    }
  }
  assert.ok(uses > 10, `found the constructor calls (${uses})`)
  assert.deepEqual(unknown, [], 'codes used in src/ but missing from ERROR_CATALOGUE')
})

test('every setting is documented in docs/configuration.md under its variable and flag', () => {
  const markdown = read('docs/configuration.md')
  for (const s of SETTINGS) {
    assert.ok(markdown.includes(`| \`${s.env}\` | \`--${s.env.toLowerCase().replace(/_/g, '-')}\` |`), `${s.env} (${STALE})`)
  }
})

test('contract §2 variables all exist as settings', () => {
  const names = new Set(SETTINGS.map((s) => s.env))
  for (const env of ['HOST', 'PORT', 'DATABASE_URL', 'REDIS_URL', 'PUBLIC_URL', 'AUTH_TOKEN_TTL', 'AUTH_CLOCK_LEEWAY', 'AUTH_PASSWORD_POLICY', 'AUTH_REGISTRATION', 'AUTH_RATE_LIMITS', 'TRUST_PROXY', 'LOG_LEVEL']) {
    assert.ok(names.has(env), env)
  }
})
