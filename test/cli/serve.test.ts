/**
 * `rest-auth serve` as a process: graceful shutdown, exit codes, configuration errors, flags.
 * Exit codes (src/cli/main.ts): 0 ok, 1 failure, 2 usage or configuration error.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SETTINGS, flagName } from '../../src/config/schema.ts'
import { createStore } from '../../src/store/kysely-store.ts'
import { freePort, runCli, startCliServer } from '../helpers/cli.ts'
import { FAST_ARGON2 } from '../helpers/server.ts'

function tempSqlite(t: { after: (fn: () => void) => void }): { url: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rest-auth-cli-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'rest-auth.db')
  return { url: `sqlite:${path}`, path }
}

/** No V8 stack frame ("    at fn (file:line)") in the text. */
function assertNoStack(text: string): void {
  assert.doesNotMatch(text, /^\s+at .+\(?.*:\d+:\d+\)?$/m, `unexpected stack trace:\n${text}`)
}

interface Sent {
  readonly written: Promise<void>
  readonly response: Promise<{ status: number; body: string }>
}

/** POST a JSON body with node:http, so we know when the request has left the client. */
function postJson(url: string, body: unknown): Sent {
  const payload = Buffer.from(JSON.stringify(body))
  let onWritten!: () => void
  let onWriteError!: (e: unknown) => void
  const written = new Promise<void>((resolve, reject) => {
    onWritten = resolve
    onWriteError = reject
  })
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      agent: false, // one connection per request, as independent clients would
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
    })
    req.on('error', (e) => {
      onWriteError(e)
      reject(e)
    })
    req.on('finish', () => onWritten())
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      res.on('error', reject)
    })
    req.end(payload)
  })
  return { written, response }
}

function countLogLines(stdout: string, msg: string): number {
  let n = 0
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue
    try {
      if ((JSON.parse(line) as { msg?: unknown }).msg === msg) n++
    } catch {
      // not a log line
    }
  }
  return n
}

test('serve: starts, answers and stops without one line on stderr (no deprecation or runtime warnings shipped)', async (t) => {
  const db = tempSqlite(t)
  const port = await freePort()
  // WORKERS unset: the default (one worker per core) runs the primary and its workers.
  const server = await startCliServer(t, { env: { PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: db.url, LOG_LEVEL: 'info' } })
  const created = await postJson(`${server.url}/api/users`, { username: 'quiet', password: 'correct horse battery staple' }).response
  assert.equal(created.status, 201, created.body)
  const resource = await fetch(`${server.url}/api/resource`, {
    headers: { authorization: `Basic ${Buffer.from('quiet:correct horse battery staple').toString('base64')}` },
  })
  assert.equal(resource.status, 200)
  server.child.kill('SIGTERM')
  const { code } = await server.exited
  assert.equal(code, 0)
  assert.equal(server.stderr(), '', 'stderr must stay empty: logs go to stdout, and warnings are fixed, not shipped')
})

test('serve: SIGTERM lets in-flight registrations finish, then exits 0 (graceful shutdown)', async (t) => {
  const db = tempSqlite(t)
  const port = await freePort()
  // Default argon2 parameters (m=19456 KiB, t=2): each registration hashes for tens of ms.
  const server = await startCliServer(t, {
    env: { PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: db.url, LOG_LEVEL: 'info' },
  })
  const names = ['alice', 'bob', 'carol', 'dave', 'erin']
  const sent = names.map((username) =>
    postJson(`${server.url}/api/users`, { username, password: 'correct horse battery staple' }),
  )
  let finished = 0
  for (const s of sent) void s.response.then(() => finished++, () => {})
  await Promise.all(sent.map((s) => s.written))
  // Wait until the server has accepted all five (Fastify logs "incoming request" per request).
  const deadline = Date.now() + 5_000
  while (countLogLines(server.stdout(), 'incoming request') < names.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1))
  }
  await new Promise((r) => setTimeout(r, 5))
  const inFlightAtSignal = names.length - finished
  server.child.kill('SIGTERM')

  const responses = await Promise.all(sent.map((s) => s.response))
  const { code, signal } = await server.exited
  assert.ok(inFlightAtSignal > 0, 'the test must send SIGTERM while registrations are still running')
  assert.deepEqual(
    responses.map((r) => r.status),
    [201, 201, 201, 201, 201],
    responses.map((r) => r.body).join('\n'),
  )
  assert.equal(signal, null)
  assert.equal(code, 0, server.stderr())
  assert.equal(countLogLines(server.stdout(), 'stopped'), 1)

  const store = createStore(db.url)
  t.after(() => store.close())
  for (const name of names) {
    const user = await store.findUserByCanonicalName(name)
    assert.equal(user?.username, name, `${name} was committed before exit`)
  }
})

for (const [variable, value] of [
  ['AUTH_TOKEN_TTL', 'abc'],
  ['AUTH_PASSWORD_POLICY', 'weird'],
  ['TRUST_PROXY', '*'],
] as const) {
  test(`serve: ${variable}=${value} exits 2 naming the variable, without a stack trace (config validated at boot)`, async (t) => {
    const db = tempSqlite(t)
    const result = await runCli(['serve'], { PORT: String(await freePort()), DATABASE_URL: db.url, ...FAST_ARGON2, [variable]: value })
    assert.equal(result.code, 2, result.stderr)
    assert.match(result.stderr, new RegExp(`configuration error: ${variable}\\b`))
    assertNoStack(result.stderr)
    assert.equal(result.stderr.trim().split('\n').length, 1, 'one line')
  })
}

test('serve: NODE_ENV=production refuses AUTH_PASSWORD_POLICY=legacy with exit 2 (config: unsafe combinations fail at boot)', async (t) => {
  const db = tempSqlite(t)
  const result = await runCli(['serve'], {
    NODE_ENV: 'production',
    AUTH_PASSWORD_POLICY: 'legacy',
    PORT: String(await freePort()),
    DATABASE_URL: db.url,
  })
  assert.equal(result.code, 2, result.stderr)
  assert.match(result.stderr, /AUTH_PASSWORD_POLICY/)
  assert.match(result.stderr, /AUTH_ALLOW_LEGACY_PASSWORDS=on/)
  assertNoStack(result.stderr)
})

test('serve: NODE_ENV=production with legacy starts when AUTH_ALLOW_LEGACY_PASSWORDS=on (explicit override)', async (t) => {
  const db = tempSqlite(t)
  const port = await freePort()
  const server = await startCliServer(t, {
    env: {
      NODE_ENV: 'production',
      AUTH_PASSWORD_POLICY: 'legacy',
      AUTH_ALLOW_LEGACY_PASSWORDS: 'on',
      PORT: String(port),
      DATABASE_URL: db.url,
      LOG_LEVEL: 'warn',
    },
  })
  // legacy: any non-empty password is accepted
  const res = await fetch(`${server.url}/api/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'miguel', password: 'python' }),
  })
  assert.equal(res.status, 201)
  assert.match(server.stdout(), /AUTH_PASSWORD_POLICY=legacy/, 'the unsafe setting is announced')
  server.child.kill('SIGTERM')
  assert.equal((await server.exited).code, 0)
})

test('serve: a flag overrides its environment variable (--port N wins over PORT)', async (t) => {
  const db = tempSqlite(t)
  const envPort = await freePort()
  const flagPort = await freePort()
  assert.notEqual(envPort, flagPort)
  const server = await startCliServer(t, {
    env: { PORT: String(envPort), DATABASE_URL: db.url, ...FAST_ARGON2, LOG_LEVEL: 'warn', AUTH_PASSWORD_POLICY: 'legacy' },
    args: ['--port', String(flagPort)],
    port: flagPort,
  })
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200)
  await assert.rejects(fetch(`http://127.0.0.1:${envPort}/healthz`), 'nothing listens on the PORT from the environment')
  // PUBLIC_URL is derived from the effective port.
  const res = await fetch(`${server.url}/api/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'miguel', password: 'python' }),
  })
  assert.equal(res.headers.get('location'), `http://127.0.0.1:${flagPort}/api/users/1`)
})

test('serve: an unreachable database exits 1 with one clear line (start-up failure)', async () => {
  const result = await runCli(['serve'], {
    DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x',
    PORT: String(await freePort()),
    ...FAST_ARGON2,
    LOG_LEVEL: 'warn',
  })
  assert.equal(result.code, 1, result.stderr)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, result.stderr)
  assert.match(lines[0] ?? '', /^rest-auth: .*ECONNREFUSED/)
  assertNoStack(result.stderr)
})

test('cli: --help exits 0 and lists every flag (docs/configuration.md flags)', async () => {
  const result = await runCli(['--help'])
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stdout, /^Usage: rest-auth <command>/)
  assert.match(result.stdout, /\bserve\b/)
  assert.match(result.stdout, /\bmigrate\b/)
  for (const s of SETTINGS) assert.ok(result.stdout.includes(`--${flagName(s)}`), `--${flagName(s)} listed`)
  assert.match(result.stdout, /--json/)
  assert.equal((await runCli(['serve', '-h'])).code, 0)
})

test('cli: an unknown command exits 2 and names it (usage error)', async () => {
  const result = await runCli(['frobnicate'])
  assert.equal(result.code, 2)
  assert.match(result.stderr, /unknown command "frobnicate"/)
  assert.match(result.stderr, /Usage: rest-auth/)
  assertNoStack(result.stderr)
})

test('cli: an unknown flag or no command exits 2 (usage error)', async () => {
  const unknownFlag = await runCli(['serve', '--no-such-flag'])
  assert.equal(unknownFlag.code, 2)
  assert.match(unknownFlag.stderr, /no-such-flag/)
  assertNoStack(unknownFlag.stderr)
  assert.equal((await runCli([])).code, 2)
})
