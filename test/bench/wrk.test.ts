/**
 * The benchmark's wrk driver (scripts/bench/wrk.ts): the Lua it writes, the figures it reads, and real
 * wrk runs against a loopback HTTP server that records what arrived. wrk comes from Debian
 * (`apt-get install wrk`; .ci/run installs it): without it the runs are skipped loudly, and under
 * REQUIRE_SERVICES=1 (CI) they fail.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { luaString, parseWrkOutput, runWrk, wrkScript, wrkVersion } from '../../scripts/bench/wrk.ts'
import type { LoadSpec } from '../../scripts/bench/spec.ts'
import { REQUIRE_SERVICES } from '../helpers/services.ts'

test('luaString: printable ASCII as is, quotes and backslashes escaped, other bytes as 3-digit decimal escapes', () => {
  assert.equal(luaString('Bearer abc.DEF-_~+/='), '"Bearer abc.DEF-_~+/="')
  assert.equal(luaString('a"b\\c'), '"a\\"b\\\\c"')
  // a newline before a digit: \0101 would be read as \010 then "1" only with exactly three digits
  assert.equal(luaString('\n1'), '"\\0101"')
  assert.equal(luaString('é'), '"\\195\\169"')
})

test('wrkScript: method, path and headers as Lua literals; the result line in done; request() only for varying requests', () => {
  const fixed = wrkScript({ origin: 'http://127.0.0.1:1', method: 'GET', path: '/api/resource', headers: { authorization: 'Bearer x"y' }, connections: 1, durationS: 1 }, '0t')
  assert.match(fixed, /wrk\.method = "GET"/)
  assert.match(fixed, /wrk\.path = "\/api\/resource"/)
  assert.match(fixed, /wrk\.headers\["authorization"\] = "Bearer x\\"y"/)
  assert.match(fixed, /function done\(summary, latency, requests\)/)
  assert.doesNotMatch(fixed, /function request\(\)/, 'a fixed request is built once by wrk itself')
  const register = wrkScript({ origin: 'http://127.0.0.1:1', method: 'POST', path: '/api/users', connections: 1, durationS: 1, vary: { kind: 'register', prefix: 'r1x', password: 'pw "quoted"' } }, '3t')
  assert.match(register, /function request\(\)/)
  assert.match(register, /"\\"pw \\\\\\"quoted\\\\\\"\\""/, 'the password goes in as its JSON text')
})

test('parseWrkOutput: figures from the result line, statuses summed over the objects, non-2xx counted', () => {
  const out = [
    'Running 1s test @ http://127.0.0.1:1/',
    'WRK_JSON {"requests":10,"durationUs":2000000,"p50":1500,"p90":2500,"p99":4000,"max":9000,"mean":1700.5,"connect":1,"read":2,"write":0,"timeout":3,"statuses":[{"200":6},{"401":3},{"200":1}]}',
    '',
  ].join('\n')
  const f = parseWrkOutput(out)
  assert.equal(f.requests, 10)
  assert.equal(f.durationS, 2)
  assert.equal(f.requestsPerSecond, 5)
  assert.deepEqual(f.latencyMs, { p50: 1.5, p90: 2.5, p99: 4, max: 9, mean: 1.7005 })
  assert.equal(f.errors, 3)
  assert.equal(f.timeouts, 3)
  assert.deepEqual(f.statusCodes, { '200': 7, '401': 3 })
  assert.equal(f.non2xx, 3)
  assert.throws(() => parseWrkOutput('Running 1s test\n'), /no result line/)
})

interface Seen {
  readonly method: string
  readonly url: string
  readonly authorization: string | undefined
  readonly body: string
}

async function recordingServer(status: (req: IncomingMessage) => number): Promise<{ origin: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body })
      res.writeHead(status(req), { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

const installed = wrkVersion()
if (installed === undefined) {
  if (REQUIRE_SERVICES) throw new Error('REQUIRE_SERVICES=1 but wrk is not installed (apt-get install wrk)')
  process.stderr.write('\n*** SKIPPING wrk runs: wrk is not installed (apt-get install wrk) ***\n\n')
}
const withWrk = { skip: installed === undefined ? 'wrk is not installed' : false }

test('runWrk: a fixed GET with its header; every answer counted by status', withWrk, async (t) => {
  const srv = await recordingServer(() => 200)
  t.after(srv.close)
  const spec: LoadSpec = { origin: srv.origin, method: 'GET', path: '/api/resource', headers: { authorization: 'Bearer abc.def.ghi' }, connections: 4, durationS: 1 }
  const f = await runWrk(spec).result
  assert.ok(f.requests > 50, `wrk answered ${f.requests} requests`)
  assert.equal(f.statusCodes['200'], f.requests)
  assert.equal(f.non2xx, 0)
  assert.ok(f.latencyMs.p50 > 0 && f.latencyMs.p99 >= f.latencyMs.p50)
  assert.ok(srv.seen.length >= f.requests)
  assert.ok(srv.seen.every((s) => s.method === 'GET' && s.url === '/api/resource' && s.authorization === 'Bearer abc.def.ghi'))
})

test('runWrk: register sends a new username per request as JSON, unique across runs', withWrk, async (t) => {
  const srv = await recordingServer((req) => (req.method === 'POST' ? 201 : 405))
  t.after(srv.close)
  const spec: LoadSpec = { origin: srv.origin, method: 'POST', path: '/api/users', connections: 4, durationS: 1, vary: { kind: 'register', prefix: 'rab12x', password: 'correct horse "battery"' } }
  const first = await runWrk(spec).result
  const second = await runWrk(spec).result
  assert.equal(first.statusCodes['201'], first.requests)
  assert.equal(second.statusCodes['201'], second.requests)
  const names = srv.seen.map((s) => JSON.parse(s.body) as { username: string; password: string })
  assert.ok(names.every((b) => b.password === 'correct horse "battery"' && /^rab12x\d+t\d+x\d+$/.test(b.username) && b.username.length <= 32))
  assert.equal(new Set(names.map((b) => b.username)).size, names.length, 'no username sent twice, in either run')
})

test('runWrk: random ids stay within 1..max', withWrk, async (t) => {
  const srv = await recordingServer(() => 200)
  t.after(srv.close)
  await runWrk({ origin: srv.origin, method: 'GET', path: '/api/users/1', connections: 2, durationS: 1, vary: { kind: 'random-id', pathPrefix: '/api/users/', max: 5 } }).result
  const ids = new Set(srv.seen.map((s) => Number(s.url.slice('/api/users/'.length))))
  assert.ok([...ids].every((id) => Number.isInteger(id) && id >= 1 && id <= 5), [...ids].join(','))
  assert.ok(ids.size > 1, 'more than one id drawn')
})

test('runWrk: wrong passwords are valid Basic headers, for new users or seeded ones; stop() ends a long run with its figures', withWrk, async (t) => {
  const srv = await recordingServer(() => 401)
  t.after(srv.close)
  const decode = (s: Seen) => Buffer.from((s.authorization ?? '').replace(/^Basic /, ''), 'base64').toString('utf8')
  const ghosts = await runWrk({ origin: srv.origin, method: 'GET', path: '/api/resource', connections: 2, durationS: 1, vary: { kind: 'wrong-password', prefix: 'ghost_ab12_' } }).result
  assert.equal(ghosts.statusCodes['401'], ghosts.requests)
  assert.equal(ghosts.non2xx, ghosts.requests)
  const pairs = srv.seen.map(decode)
  assert.ok(pairs.every((p) => /^ghost_ab12_\d+t\d+x\d+:wrong password \d+t\d+x\d+$/.test(p)), pairs.slice(0, 3).join(' | '))
  assert.equal(new Set(pairs.map((p) => p.split(':')[0])).size, pairs.length, 'a new username each time')

  srv.seen.length = 0
  const run = runWrk({ origin: srv.origin, method: 'GET', path: '/api/resource', connections: 2, durationS: 60, vary: { kind: 'wrong-password', prefix: 'x', seeded: 3 } })
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  const started = performance.now()
  run.stop()
  const seeded = await run.result
  assert.ok(performance.now() - started < 10_000, 'stopped, not run for 60 s')
  assert.ok(seeded.requests > 0)
  const users = new Set(srv.seen.map((s) => decode(s).split(':')[0]))
  assert.ok([...users].every((u) => /^seed[123]$/.test(u ?? '')), [...users].join(','))
})
