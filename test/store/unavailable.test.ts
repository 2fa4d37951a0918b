/**
 * Which database errors are "unavailable or busy" (503, retry later) rather than a bug (500). The
 * SQLite cases are real errors from better-sqlite3 on a real file, extended result codes included:
 * SQLITE_BUSY_SNAPSHOT used to fall through to 500.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import SQLite from 'better-sqlite3'
import { isDatabaseUnavailable } from '../../src/store/kysely-store.ts'

function caught(fn: () => unknown): unknown {
  try {
    fn()
  } catch (error) {
    return error
  }
  assert.fail('expected an error')
}

function twoConnections(t: import('node:test').TestContext): [SQLite.Database, SQLite.Database] {
  const dir = mkdtempSync(join(tmpdir(), 'rest-auth-unavailable-'))
  const path = join(dir, 'db.sqlite')
  const a = new SQLite(path)
  a.pragma('journal_mode = WAL')
  a.exec('CREATE TABLE t (v INTEGER)')
  a.exec('INSERT INTO t VALUES (1)')
  const b = new SQLite(path)
  b.pragma('busy_timeout = 0')
  t.after(() => {
    a.close()
    b.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return [a, b]
}

test('SQLITE_BUSY (another connection holds the write lock) is unavailable', (t) => {
  const [a, b] = twoConnections(t)
  a.exec('BEGIN IMMEDIATE')
  const error = caught(() => b.exec('BEGIN IMMEDIATE'))
  a.exec('ROLLBACK')
  assert.equal((error as { code?: string }).code, 'SQLITE_BUSY')
  assert.equal(isDatabaseUnavailable(error), true)
})

test('SQLITE_BUSY_SNAPSHOT (a read snapshot went stale before the first write) is unavailable', (t) => {
  const [a, b] = twoConnections(t)
  b.exec('BEGIN')
  b.prepare('SELECT v FROM t').all()
  a.exec('UPDATE t SET v = 2')
  const error = caught(() => b.exec('UPDATE t SET v = 3'))
  b.exec('ROLLBACK')
  assert.equal((error as { code?: string }).code, 'SQLITE_BUSY_SNAPSHOT')
  assert.equal(isDatabaseUnavailable(error), true)
  assert.equal(isDatabaseUnavailable(new Error('wrapped', { cause: error })), true, 'found through the cause chain')
})

test('bugs are not unavailable: a constraint violation, a syntax error, a code that only starts alike', (t) => {
  const [a] = twoConnections(t)
  a.exec('CREATE TABLE u (v INTEGER PRIMARY KEY)')
  a.exec('INSERT INTO u VALUES (1)')
  const constraint = caught(() => a.exec('INSERT INTO u VALUES (1)'))
  assert.match(String((constraint as { code?: string }).code), /^SQLITE_CONSTRAINT/)
  assert.equal(isDatabaseUnavailable(constraint), false)
  const syntax = caught(() => a.exec('SELEC 1'))
  assert.equal(isDatabaseUnavailable(syntax), false)
  assert.equal(isDatabaseUnavailable(Object.assign(new Error('x'), { code: 'SQLITE_BUSYNESS' })), false)
  assert.equal(isDatabaseUnavailable(Object.assign(new Error('x'), { code: 'SQLITE_IOERR_FSYNC' })), true)
  assert.equal(isDatabaseUnavailable(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), true)
  assert.equal(isDatabaseUnavailable('SQLITE_BUSY'), false, 'not an Error')
})
