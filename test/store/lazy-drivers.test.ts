/**
 * The PostgreSQL and Redis drivers are loaded only by a server that uses them: a server on SQLite
 * without REDIS_URL never loads `pg` or `ioredis` (about 35 MB of RSS between them). Each case runs
 * the real app in a child process of its own and reads which driver modules it loaded.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { REDIS_URL, redisReachable } from '../helpers/redis.ts'
import { REPO_ROOT, childEnv } from '../helpers/cli.ts'
import { freshDatabaseUrl } from '../helpers/stores.ts'

const SCRIPT = `
import { createRequire } from 'node:module'
const { loadConfig } = await import('./src/config/load.ts')
const { buildApp, createLogger } = await import('./src/http/app.ts')
const { createStore } = await import('./src/store/kysely-store.ts')
const redis = process.env.TEST_REDIS
const { config } = loadConfig({ env: {}, overrides: {
  PORT: '0', LOG_LEVEL: 'warn', DATABASE_URL: process.env.TEST_DATABASE_URL, AUTH_ARGON2_MEMORY: '256', AUTH_ARGON2_ITERATIONS: '1',
  ...(redis ? { REDIS_URL: redis, AUTH_RATE_LIMITS: 'on' } : { AUTH_RATE_LIMITS: 'off' }),
} })
const store = createStore(config.databaseUrl)
await store.migrate()
const { app } = await buildApp({ config, store, logger: createLogger('warn') })
const reply = await app.inject({ method: 'POST', url: '/api/users', payload: { username: 'lazy', password: 'correct horse battery staple' } })
const loaded = new Set(Object.keys(createRequire(import.meta.url).cache).flatMap((path) => /node_modules\\/(pg|ioredis)\\//.exec(path)?.[1] ?? []))
await app.close()
await store.close()
process.stdout.write('\\nRESULT ' + JSON.stringify({ status: reply.statusCode, loaded: [...loaded].sort() }) + '\\n')
`

async function driversLoaded(env: Readonly<Record<string, string>>): Promise<{ status: number; loaded: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: REPO_ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  assert.equal(code, 0, stderr)
  // the app's log lines share stdout: the result is the line marked RESULT
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '))
  assert.ok(line !== undefined, `no RESULT line in the child's output:\n${stdout}\n${stderr}`)
  return JSON.parse(line.slice('RESULT '.length)) as { status: number; loaded: string[] }
}

test('a server on SQLite without REDIS_URL loads neither pg nor ioredis', async (t) => {
  const url = await freshDatabaseUrl(t, 'sqlite')
  assert.ok(url !== undefined)
  assert.deepEqual(await driversLoaded({ TEST_DATABASE_URL: url }), { status: 201, loaded: [] })
})

test('a server on PostgreSQL loads pg (and not ioredis)', async (t) => {
  const url = await freshDatabaseUrl(t, 'postgres')
  if (url === undefined) return
  assert.deepEqual(await driversLoaded({ TEST_DATABASE_URL: url }), { status: 201, loaded: ['pg'] })
})

test('a server on SQLite with REDIS_URL loads ioredis (and not pg)', async (t) => {
  if (!(await redisReachable())) {
    t.skip('Redis unreachable')
    return
  }
  const url = await freshDatabaseUrl(t, 'sqlite')
  assert.ok(url !== undefined)
  assert.deepEqual(await driversLoaded({ TEST_DATABASE_URL: url, TEST_REDIS: REDIS_URL }), { status: 201, loaded: ['ioredis'] })
})
