/**
 * The benchmark's wrk driver (scripts/bench/wrk.ts): the Lua it writes, the figures it reads, and real
 * wrk runs against a loopback HTTP server that records what arrived. wrk comes from Debian
 * (`apt-get install wrk`; .ci/run installs it): without it the runs are skipped loudly, and under
 * REQUIRE_SERVICES=1 (CI) they fail.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { type AddressInfo, createServer as createNetServer } from 'node:net'
import { luaString, parseWrkOutput, PIPELINED_STATUSES, runWrk, wrkScript, wrkVersion } from '../../scripts/bench/wrk.ts'
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

test('wrkScript: a pipelined fixed request is one batch of `pipeline` requests; pipelining a varying request is refused', () => {
  const spec: LoadSpec = { origin: 'http://127.0.0.1:1', method: 'GET', path: '/api/resource', connections: 1, durationS: 1, pipeline: 8 }
  const piped = wrkScript(spec, '0t')
  assert.match(piped, /function request\(\)/)
  assert.match(piped, /for i = 1, 8 do r\[i\] = wrk\.format\(\) end/)
  assert.doesNotMatch(piped, /function response\(/, 'no Lua call per answer: wrk counts them itself')
  assert.match(piped, /"false"/)
  assert.doesNotMatch(wrkScript({ ...spec, pipeline: 1 }, '0t'), /function request\(\)/, 'depth 1 is the plain fixed request')
  assert.throws(() => wrkScript({ ...spec, vary: { kind: 'random-id', pathPrefix: '/api/users/', max: 3 } }, '0t'), /fixed requests only/)
  assert.throws(() => wrkScript({ ...spec, pipeline: 0 }, '0t'), /integer >= 1/)
  assert.throws(() => wrkScript({ ...spec, pipeline: 2.5 }, '0t'), /integer >= 1/)
})

test('parseWrkOutput: figures from the result line, statuses summed over the objects, non-2xx counted', () => {
  const out = [
    'Running 1s test @ http://127.0.0.1:1/',
    'WRK_JSON {"requests":10,"durationUs":2000000,"p50":1500,"p90":2500,"p99":4000,"max":9000,"mean":1700.5,"connect":1,"read":2,"write":0,"timeout":3,"status":3,"counted":true,"statuses":[{"200":6},{"401":3},{"200":1}]}',
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

test('parseWrkOutput: a pipelined run, which counts no statuses, splits its answers at 400 by the count wrk keeps itself', () => {
  const line = (status: number) =>
    `WRK_JSON {"requests":10,"durationUs":1000000,"p50":1,"p90":1,"p99":1,"max":1,"mean":1,"connect":0,"read":0,"write":0,"timeout":0,"status":${status},"counted":false,"statuses":[{}]}`
  assert.deepEqual(parseWrkOutput(line(0)).statusCodes, { [PIPELINED_STATUSES.below400]: 10 })
  const mixed = parseWrkOutput(line(4))
  assert.deepEqual(mixed.statusCodes, { [PIPELINED_STATUSES.below400]: 6, [PIPELINED_STATUSES.from400]: 4 })
  assert.equal(mixed.non2xx, 4)
  assert.deepEqual(parseWrkOutput(line(10)).statusCodes, { [PIPELINED_STATUSES.from400]: 10 })
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

test('runWrk: pipelined, each connection writes its batch at once and every answer is counted', withWrk, async (t) => {
  // a raw server, to see how requests arrive: answers each request as soon as it has been read
  const reply = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}'
  let answered = 0
  let mostInOneRead = 0
  const sockets = new Set<import('node:net').Socket>()
  const server = createNetServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {}) // wrk resets its connections when it stops
    let pending = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      pending += chunk
      let n = 0
      let end: number
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        pending = pending.slice(end + 4)
        n++
      }
      mostInOneRead = Math.max(mostInOneRead, n)
      answered += n
      socket.write(reply.repeat(n))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const { port } = server.address() as AddressInfo
  const f = await runWrk({ origin: `http://127.0.0.1:${port}`, method: 'GET', path: '/', connections: 2, durationS: 1, pipeline: 8 }).result
  assert.ok(f.requests > 100, `wrk counted ${f.requests} answers`)
  assert.equal(f.statusCodes[PIPELINED_STATUSES.below400], f.requests)
  assert.ok(answered >= f.requests)
  assert.equal(mostInOneRead, 8, 'eight requests arrive in one read (a batch), never more')
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
