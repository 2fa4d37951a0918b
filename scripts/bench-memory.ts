/**
 * `npm run bench:memory`: what telling a request from memory costs, without the network, HTTP or the
 * machine's drift between runs: `Authenticator.fromMemory` on the three headers of the token and
 * password paths (Bearer, the token as the Basic username, Basic username:password with the credential
 * cache warm), in nanoseconds per call, each also as a ratio to Bearer measured in the same run.
 *
 * The real app over a temporary SQLite file; each header arrives as a new string per call, as from
 * Node's HTTP parser. Every round first sends one real request (app.inject), so the memory caches are
 * filled and fresh (a loop that holds the event loop for seconds would let the change feed go stale,
 * and memory would then rightly vouch for nothing); a round with any miss is measured again.
 * Options: --rounds N (7), --calls N (200000).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Writable } from 'node:stream'
import { loadConfig } from '../src/config/load.ts'
import { buildApp, createLogger } from '../src/http/app.ts'
import { createStore } from '../src/store/kysely-store.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, calls: { type: 'string', default: '200000' } } })
const rounds = Number(values.rounds)
const calls = Number(values.calls)
if (!Number.isInteger(rounds) || rounds < 3 || !Number.isInteger(calls) || calls < 1000) throw new Error('--rounds ≥ 3 and --calls ≥ 1000')

const dir = mkdtempSync(join(tmpdir(), 'rest-auth-bench-memory-'))
const { config } = loadConfig({
  env: {},
  // the credential cache on, rate limits off: the bench's own server settings (the login throttle is asked on every password attempt)
  overrides: { PORT: '0', LOG_LEVEL: 'warn', AUTH_RATE_LIMITS: 'off', DATABASE_URL: `sqlite:${join(dir, 'bench.db')}` },
})
const store = createStore(config.databaseUrl)
await store.migrate()
const quiet = new Writable({ write: (_chunk: Buffer, _enc, cb) => cb() })
const { app, runtime } = await buildApp({ config, store, logger: createLogger('warn', quiet) })
await app.ready()

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`
const password = 'python-rocks-42-bench'
const registered = await app.inject({ method: 'POST', url: '/api/users', payload: { username: 'miguel', password } })
if (registered.statusCode !== 201) throw new Error(`registration: ${registered.statusCode}`)
const issued = await app.inject({ url: '/api/token', headers: { authorization: basic('miguel', password) } })
const token = (JSON.parse(issued.body) as { token: string }).token
const headers = { bearer: `Bearer ${token}`, 'basic-token': basic(token, 'x'), 'basic-password': basic('miguel', password) }

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const authenticator = runtime.authenticator
const results: Record<string, number> = {}
for (const [name, header] of Object.entries(headers)) {
  // new string objects with the header's text: V8 caches a string's hash on the string itself
  const copies = Array.from({ length: 1024 }, () => Buffer.from(header, 'latin1').toString('latin1'))
  const perCall: number[] = []
  // A round in which a cache entry reached its age limit (users are re-read every few seconds) is
  // measured again: its misses are cheaper than hits and would flatter the figure.
  for (let attempt = 0; perCall.length < rounds; attempt++) {
    if (attempt >= rounds * 3) throw new Error(`${name}: memory kept forgetting the header`)
    await pause(20)
    const answer = await app.inject({ url: '/api/resource', headers: { authorization: header } })
    if (answer.statusCode !== 200) throw new Error(`${name}: ${answer.statusCode}`)
    if (authenticator.fromMemory(header) === undefined) throw new Error(`${name}: memory does not vouch for it`)
    let known = 0
    const start = process.hrtime.bigint()
    for (let i = 0; i < calls; i++) if (authenticator.fromMemory(copies[i & 1023] as string) !== undefined) known++
    const ns = Number(process.hrtime.bigint() - start) / calls
    if (known === calls) perCall.push(ns)
  }
  // the first rounds warm the JIT; the median of the rest
  const warm = perCall.slice(2).sort((a, b) => a - b)
  results[name] = warm[Math.floor(warm.length / 2)] as number
}
await app.close()
await store.close()
rmSync(dir, { recursive: true, force: true })

const bearer = results['bearer'] as number
console.log(`## Authenticator.fromMemory, ns per call (median of ${rounds - 2} rounds of ${calls}, after 2 warm-up rounds)\n`)
console.log('| header | ns/call | × Bearer |\n|---|---:|---:|')
for (const [name, ns] of Object.entries(results)) console.log(`| ${name} | ${ns.toFixed(0)} | ${(ns / bearer).toFixed(2)} |`)
