/**
 * `rest-auth serve --workers N` as a process (src/cli/commands/serve.ts, src/cli/cluster.ts): a
 * node:cluster primary and N workers sharing one port. The primary migrates, restarts a worker that
 * dies, relays each worker's cache invalidations to the others over IPC, and holds the rate-limit
 * counters when REDIS_URL is unset. SIGTERM to the primary: workers finish in-flight requests, all exit 0.
 *
 * Every request here goes on a connection of its own (node:http, `agent: false`, `Connection: close`):
 * on Linux the primary hands connections to the workers round-robin, so a batch of them reaches both
 * workers. The log lines say which worker served what (pino's `pid`), and the tests check that too.
 *
 * The revocation tests set AUTH_STATE_POLL_MS=10000, so the database change log (read every 250 ms by
 * default) cannot stand in for the IPC relay: a refusal on the other worker "at once" is the relay's.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { createStore } from '../../src/store/kysely-store.ts'
import { CLI_ARGS, type CliServer, childEnv, freePort, REPO_ROOT, runCli, startCliServer } from '../helpers/cli.ts'
import { FAST_ARGON2 } from '../helpers/server.ts'
import { freshDatabaseUrl } from '../helpers/stores.ts'

const STRONG = 'correct horse battery staple'
const WRONG = 'not the password at all'
/** Start-up of a primary and two workers takes ~10 s on a loaded 2-core machine. */
const READY_MS = 45_000
/** A replacement worker needs the restart delay (1 s) plus a worker's start-up. */
const REPLACE_MS = 25_000
/** Fresh connections per probe batch: round-robin gives each of two workers half. */
const BATCH = 20
/** Keeps the change log from doing the relay's job (see the header). */
const SLOW_FEED = { AUTH_STATE_POLL_MS: '10000' } as const

// ---- HTTP on fresh connections ----

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
}

interface SendOptions {
  readonly method?: string
  readonly basic?: readonly [string, string]
  readonly json?: unknown
}

interface Sent {
  /** Resolves once the whole request has left the client. */
  readonly written: Promise<void>
  readonly response: Promise<Reply>
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
}

/** One request on a connection of its own, as an independent client would send it. */
function send(url: string, options: SendOptions = {}): Sent {
  const payload = options.json === undefined ? undefined : Buffer.from(JSON.stringify(options.json))
  const headers: Record<string, string | number> = { connection: 'close' }
  if (options.basic !== undefined) headers['authorization'] = basicHeader(...options.basic)
  if (payload !== undefined) {
    headers['content-type'] = 'application/json'
    headers['content-length'] = payload.length
  }
  let onWritten!: () => void
  let onWriteError!: (e: unknown) => void
  const written = new Promise<void>((resolve, reject) => {
    onWritten = resolve
    onWriteError = reject
  })
  const response = new Promise<Reply>((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', agent: false, headers, timeout: 30_000 })
    req.on('timeout', () => req.destroy(new Error(`no answer to ${options.method ?? 'GET'} ${url} in 30 s`)))
    req.on('error', (e) => {
      onWriteError(e)
      reject(e)
    })
    req.on('finish', () => onWritten())
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
      res.on('error', reject)
    })
    req.end(payload)
  })
  // the caller may await only `written` first; a failure still surfaces through `response`
  written.catch(() => {})
  return { written, response }
}

function call(url: string, options: SendOptions = {}): Promise<Reply> {
  return send(url, options).response
}

/** "200", or "401 token_revoked" for a problem answer. */
function outcome(reply: Reply): string {
  if (reply.status < 400) return String(reply.status)
  let code = '(not JSON)'
  try {
    const body: unknown = JSON.parse(reply.body)
    if (typeof body === 'object' && body !== null && 'code' in body && typeof body.code === 'string') code = body.code
  } catch {
    // keep "(not JSON)"
  }
  return `${reply.status} ${code}`
}

function jsonObject(reply: Reply): Record<string, unknown> {
  const body: unknown = JSON.parse(reply.body)
  assert.ok(typeof body === 'object' && body !== null && !Array.isArray(body), `a JSON object: ${reply.body}`)
  return body as Record<string, unknown>
}

/** `n` requests one after another, each on a fresh connection; the outcome of each. */
async function probe(url: string, options: SendOptions, n = BATCH): Promise<string[]> {
  const seen: string[] = []
  for (let i = 0; i < n; i++) seen.push(outcome(await call(url, options)))
  return seen
}

async function register(server: CliServer, username: string): Promise<number> {
  const reply = await call(`${server.url}/api/users`, { method: 'POST', json: { username, password: STRONG } })
  assert.equal(reply.status, 201, reply.body)
  const { id } = jsonObject(reply)
  assert.equal(typeof id, 'number')
  return id as number
}

async function tokenFor(server: CliServer, username: string, password: string): Promise<string> {
  const reply = await call(`${server.url}/api/token`, { basic: [username, password] })
  assert.equal(reply.status, 200, reply.body)
  const { token } = jsonObject(reply)
  assert.equal(typeof token, 'string')
  return token as string
}

// ---- the processes ----

interface LogRecord {
  readonly msg: string
  readonly pid: number
  readonly url?: string
  readonly method?: string
}

/** The pino lines of the primary and its workers (they share stdout). */
function logRecords(stdout: string): LogRecord[] {
  const out: LogRecord[] = []
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      continue // a line still being written
    }
    if (typeof value !== 'object' || value === null) continue
    const r = value as { msg?: unknown; pid?: unknown; req?: unknown }
    if (typeof r.msg !== 'string' || typeof r.pid !== 'number') continue
    const req = typeof r.req === 'object' && r.req !== null ? (r.req as { url?: unknown; method?: unknown }) : {}
    out.push({
      msg: r.msg,
      pid: r.pid,
      ...(typeof req.url === 'string' ? { url: req.url } : {}),
      ...(typeof req.method === 'string' ? { method: req.method } : {}),
    })
  }
  return out
}

/** Worker pids in the order their "rest-auth listening" lines appeared. */
function listeningPids(server: CliServer): number[] {
  return logRecords(server.stdout())
    .filter((r) => r.msg === 'rest-auth listening')
    .map((r) => r.pid)
}

/** Pids of the workers that logged an incoming `method url` after stdout offset `from`. */
function servedBy(server: CliServer, from: number, method: string, url: string): Set<number> {
  return new Set(
    logRecords(server.stdout().slice(from))
      .filter((r) => r.msg === 'incoming request' && r.method === method && r.url === url)
      .map((r) => r.pid),
  )
}

async function waitFor(what: string, condition: () => boolean, timeoutMs: number, server?: CliServer): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) {
      const output = server === undefined ? '' : `\nstdout:\n${server.stdout()}\nstderr:\n${server.stderr()}`
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${output}`)
    }
    await delay(25)
  }
}

/** Waits until both workers of `requests` logged an incoming `method url` after `from`. */
async function expectBothWorkers(server: CliServer, workers: readonly number[], from: number, method: string, url: string): Promise<void> {
  await waitFor(
    `both workers (${workers.join(', ')}) to log ${method} ${url}`,
    () => workers.every((pid) => servedBy(server, from, method, url).has(pid)),
    5_000,
    server,
  )
}

/**
 * Linux: the direct children of a process that run the rest-auth CLI (cluster workers). Other
 * children (tsx's esbuild service on a cold cache) are not workers.
 */
function workerChildren(pid: number): number[] {
  return childPids(pid).filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').some((arg) => arg.endsWith('src/cli/main.ts'))
    } catch {
      return false // gone meanwhile
    }
  })
}

/** Linux: the direct children of a process. */
function childPids(pid: number): number[] {
  const tasks = `/proc/${pid}/task`
  if (!existsSync(tasks)) return []
  const out: number[] = []
  for (const task of readdirSync(tasks)) {
    try {
      for (const child of readFileSync(`${tasks}/${task}/children`, 'utf8').trim().split(/\s+/)) if (child !== '') out.push(Number(child))
    } catch {
      // the thread ended meanwhile
    }
  }
  return out.sort((a, b) => a - b)
}

/** Running (a zombie waiting to be reaped does not count). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // "pid (comm) S ...": the state follows the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

function primaryPid(server: CliServer): number {
  const pid = server.child.pid
  assert.ok(pid !== undefined, 'the primary has a pid')
  return pid
}

function sortedPids(pids: Iterable<number>): number[] {
  return [...pids].sort((a, b) => a - b)
}

/** `serve --workers 2` on `databaseUrl`; resolves once both workers listen. */
async function startCluster(t: TestContext, databaseUrl: string, env: Readonly<Record<string, string>> = {}): Promise<{ server: CliServer; workers: number[] }> {
  const port = await freePort()
  const server = await startCliServer(t, {
    env: { PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, LOG_LEVEL: 'info', AUTH_RATE_LIMITS: 'off', ...FAST_ARGON2, ...env },
    args: ['--workers', '2'],
    readyTimeoutMs: READY_MS,
  })
  await waitFor('two "rest-auth listening" lines', () => listeningPids(server).length >= 2, READY_MS, server)
  const workers = listeningPids(server)
  assert.equal(workers.length, 2, `exactly two workers listen:\n${server.stdout()}`)
  assert.equal(new Set(workers).size, 2, 'two distinct worker processes')
  assert.ok(!workers.includes(primaryPid(server)), 'the primary does not serve requests itself')
  assert.deepEqual(workerChildren(primaryPid(server)), sortedPids(workers), 'the workers are the children of the primary')
  for (const pid of workers) {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    assert.ok(args.includes('--max-semi-space-size=4'), `worker ${pid} runs with the server's V8 flags: ${args.join(' ')}`)
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
    assert.ok(environ.includes('MALLOC_MMAP_THRESHOLD_=4194304'), `worker ${pid} runs with glibc's mmap threshold fixed`)
  }
  return { server, workers }
}

async function sqliteUrl(t: TestContext): Promise<string> {
  const url = await freshDatabaseUrl(t, 'sqlite')
  assert.ok(url !== undefined)
  return url
}

/**
 * Warm both workers' caches with `token` (accepted on BATCH fresh connections), run `revoke`, then
 * expect the next BATCH fresh connections, with no waiting, all to be refused 401 token_revoked.
 */
async function expectRevokedEverywhere(server: CliServer, workers: readonly number[], token: string, revoke: () => Promise<Reply>, revokeStatus: number): Promise<void> {
  const resource = `${server.url}/api/resource`
  const before = server.stdout().length
  assert.deepEqual(await probe(resource, { basic: [token, 'x'] }), Array<string>(BATCH).fill('200'), 'the token is accepted by every worker')
  await expectBothWorkers(server, workers, before, 'GET', '/api/resource')

  const revoked = await revoke()
  assert.equal(revoked.status, revokeStatus, revoked.body)

  const after = server.stdout().length
  assert.deepEqual(
    await probe(resource, { basic: [token, 'x'] }),
    Array<string>(BATCH).fill('401 token_revoked'),
    'every fresh connection, on either worker, is refused at once',
  )
  await expectBothWorkers(server, workers, after, 'GET', '/api/resource')
}

// ---- tests ----

test('serve --workers 2 (SQLite): both workers listen; revoke, log out everywhere and admin disable are refused on every worker at once (cluster: invalidations relayed over IPC)', async (t) => {
  const databaseUrl = await sqliteUrl(t)
  const { server, workers } = await startCluster(t, databaseUrl, SLOW_FEED)
  const userId = await register(server, 'miguel')
  const created = await runCli(['user', 'create', 'boss', '--admin', '--generate-password', '--json'], { DATABASE_URL: databaseUrl, ...FAST_ARGON2 })
  assert.equal(created.code, 0, created.stderr)
  const { password: bossPassword } = JSON.parse(created.stdout) as { password?: unknown }
  assert.equal(typeof bossPassword, 'string', created.stdout)
  const boss = ['boss', bossPassword as string] as const

  await t.test('DELETE /api/token (logout of one token)', async () => {
    const token = await tokenFor(server, 'miguel', STRONG)
    await expectRevokedEverywhere(server, workers, token, () => call(`${server.url}/api/token`, { method: 'DELETE', basic: [token, 'x'] }), 204)
  })

  await t.test('DELETE /api/tokens (log out everywhere)', async () => {
    const token = await tokenFor(server, 'miguel', STRONG)
    await expectRevokedEverywhere(server, workers, token, () => call(`${server.url}/api/tokens`, { method: 'DELETE', basic: [token, 'x'] }), 204)
  })

  await t.test('POST /api/admin/users/:id/disable', async () => {
    const token = await tokenFor(server, 'miguel', STRONG)
    await expectRevokedEverywhere(server, workers, token, () => call(`${server.url}/api/admin/users/${userId}/disable`, { method: 'POST', basic: boss }), 200)
  })
})

test('serve --workers 2 without REDIS_URL: 5 wrong passwords spread over both workers → the 6th attempt is 429 too_many_attempts (cluster: the primary holds the rate-limit counters)', async (t) => {
  const { server, workers } = await startCluster(t, await sqliteUrl(t), { AUTH_RATE_LIMITS: 'on' })
  await register(server, 'miguel')
  const resource = `${server.url}/api/resource`
  const before = server.stdout().length
  assert.deepEqual(await probe(resource, { basic: ['miguel', WRONG] }, 5), Array<string>(5).fill('401 invalid_credentials'))
  await expectBothWorkers(server, workers, before, 'GET', '/api/resource')
  // even the right password: the pair (miguel, 127.0.0.1) is throttled on whichever worker answers
  const sixth = await call(resource, { basic: ['miguel', STRONG] })
  assert.equal(outcome(sixth), '429 too_many_attempts', sixth.body)
  assert.match(String(sixth.headers['retry-after']), /^[1-9]\d*$/)
  assert.deepEqual(await probe(resource, { basic: ['miguel', STRONG] }, 4), Array<string>(4).fill('429 too_many_attempts'), 'on the other worker too')
})

test('serve --workers 2: a worker killed with SIGKILL is replaced, requests keep succeeding meanwhile, the primary lives on (cluster: restart after 1 s)', async (t) => {
  const { server, workers } = await startCluster(t, await sqliteUrl(t))
  const primary = primaryPid(server)
  await register(server, 'miguel')
  const token = await tokenFor(server, 'miguel', STRONG)
  const [victim, survivor] = workers as [number, number]

  process.kill(victim, 'SIGKILL')
  await waitFor(
    `the primary to log the death of worker ${victim}`,
    () => server.stdout().includes('"msg":"worker died; starting another"') && !alive(victim),
    10_000,
    server,
  )
  // Until the replacement listens, the survivor answers everything.
  const seen: string[] = []
  const deadline = Date.now() + REPLACE_MS
  while (listeningPids(server).length < 3) {
    assert.ok(Date.now() < deadline, `no replacement worker within ${REPLACE_MS} ms:\n${server.stdout()}\n${server.stderr()}`)
    seen.push(outcome(await call(`${server.url}/api/resource`, { basic: [token, 'x'] })))
  }
  assert.ok(seen.length > 0, 'requests were sent while a worker was missing')
  assert.deepEqual(seen, Array<string>(seen.length).fill('200'), 'no request failed while the worker was replaced')

  const replacement = listeningPids(server)[2]
  assert.ok(replacement !== undefined && !workers.includes(replacement), 'a new worker process')
  assert.ok(alive(primary), 'the primary is still running')
  assert.equal(server.child.exitCode, null, 'the primary has not exited')
  assert.deepEqual(workerChildren(primary), sortedPids([survivor, replacement]), 'the primary has exactly two workers again')

  const before = server.stdout().length
  assert.deepEqual(await probe(`${server.url}/api/resource`, { basic: [token, 'x'] }), Array<string>(BATCH).fill('200'))
  await expectBothWorkers(server, [survivor, replacement], before, 'GET', '/api/resource')
})

test('serve --workers 2: SIGTERM to the primary lets in-flight registrations on both workers finish (201), then everything exits 0 and no worker is left (graceful shutdown)', async (t) => {
  const databaseUrl = await sqliteUrl(t)
  // Default argon2 parameters (m=19456 KiB, t=2): each registration hashes long enough to be in flight.
  const { server, workers } = await startCluster(t, databaseUrl, { AUTH_ARGON2_MEMORY: '19456', AUTH_ARGON2_ITERATIONS: '2' })
  const primary = primaryPid(server)
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']
  const before = server.stdout().length
  const sent = names.map((username) => send(`${server.url}/api/users`, { method: 'POST', json: { username, password: STRONG } }))
  let finished = 0
  for (const s of sent) void s.response.then(() => finished++, () => {})
  await Promise.all(sent.map((s) => s.written))
  const arrived = () => logRecords(server.stdout().slice(before)).filter((r) => r.msg === 'incoming request' && r.url === '/api/users').length
  await waitFor('every registration to reach a worker', () => arrived() >= names.length, 10_000, server)
  const inFlightAtSignal = names.length - finished
  // The primary waits for its workers: when its own exit is seen, none of them may still run.
  let runningAtPrimaryExit: number[] | undefined
  server.child.once('exit', () => (runningAtPrimaryExit = workers.filter(alive)))
  server.child.kill('SIGTERM')

  const replies = await Promise.all(sent.map((s) => s.response))
  const { code, signal } = await server.exited
  assert.ok(inFlightAtSignal > 0, 'the test must send SIGTERM while registrations are still running')
  assert.deepEqual(
    sortedPids(servedBy(server, before, 'POST', '/api/users')),
    sortedPids(workers),
    'the registrations were spread over both workers',
  )
  assert.deepEqual(
    replies.map((r) => r.status),
    Array<number>(names.length).fill(201),
    replies.map((r) => r.body).join('\n'),
  )
  assert.equal(signal, null, server.stderr())
  assert.equal(code, 0, server.stderr())
  assert.deepEqual(runningAtPrimaryExit, [], 'no worker outlives the primary')
  assert.ok(!alive(primary), 'the primary is gone')
  for (const pid of workers) assert.ok(!alive(pid), `worker ${pid} is gone`)
  const records = logRecords(server.stdout())
  const stopped = records.filter((r) => r.msg === 'worker stopped').map((r) => r.pid)
  assert.deepEqual(sortedPids(stopped), sortedPids(workers), 'each worker stopped gracefully')
  assert.deepEqual(records.filter((r) => r.msg === 'stopped').map((r) => r.pid), [primary], 'the primary says stopped once, after its workers')

  const store = createStore(databaseUrl)
  t.after(() => store.close())
  for (const name of names) assert.equal((await store.findUserByCanonicalName(name))?.username, name, `${name} was committed before exit`)
})

test('serve --workers 2 (PostgreSQL): a revoked token is refused on every worker at once (cluster: invalidations relayed over IPC)', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t, 'postgres') // ra_test_<uuid>, dropped after the test
  if (databaseUrl === undefined) return
  const { server, workers } = await startCluster(t, databaseUrl, SLOW_FEED)
  await register(server, 'miguel')
  const token = await tokenFor(server, 'miguel', STRONG)
  await expectRevokedEverywhere(server, workers, token, () => call(`${server.url}/api/token`, { method: 'DELETE', basic: [token, 'x'] }), 204)
  await server.kill() // before the schema is dropped
})

test('serve --workers 2: SIGTERM while the workers are still starting exits 0 and leaves no worker (a worker stopped before it served is a clean stop)', async (t) => {
  const databaseUrl = await sqliteUrl(t)
  const port = await freePort()
  for (const waitMs of [0, 150, 400]) {
    const child = spawn(process.execPath, [...CLI_ARGS, 'serve', '--workers', '2'], {
      cwd: REPO_ROOT,
      env: childEnv({ PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, LOG_LEVEL: 'info', ...FAST_ARGON2 }),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    await waitFor('the primary to fork its workers', () => stdout.includes('rest-auth primary started its workers'), READY_MS)
    const primary = child.pid
    assert.ok(primary !== undefined)
    const workers = workerChildren(primary)
    await delay(waitMs)
    child.kill('SIGTERM')
    const code = await exited
    assert.equal(code, 0, `SIGTERM ${waitMs} ms after the fork: exit 0\n${stdout}\n${stderr}`)
    for (const pid of workers) assert.ok(!alive(pid), `worker ${pid} is gone`)
  }
})

test('serve --workers 0 and --workers abc exit 2 naming WORKERS (config validated at boot)', async (t) => {
  const databaseUrl = await sqliteUrl(t)
  const port = String(await freePort())
  const results = await Promise.all(
    ['0', 'abc'].map(async (value) => ({ value, result: await runCli(['serve', '--workers', value], { PORT: port, DATABASE_URL: databaseUrl, ...FAST_ARGON2 }) })),
  )
  for (const { value, result } of results) {
    assert.equal(result.code, 2, `--workers ${value}: ${result.stderr}`)
    assert.match(result.stderr, /configuration error: WORKERS\b/, `--workers ${value}`)
    assert.doesNotMatch(result.stdout, /rest-auth listening/, `--workers ${value} starts nothing`)
  }
})
