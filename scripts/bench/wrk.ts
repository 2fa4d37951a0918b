/**
 * wrk (C, epoll) as the load generator: it costs the machine a fraction of what autocannon (Node) does per
 * request, so on a machine where the load generator shares the cores with the server, the figures
 * measure the server rather than the client. A LoadSpec becomes a Lua script (pure: `wrkScript`); the
 * script's `done` prints one JSON line (`WRK_JSON {...}`) that `parseWrkOutput` turns into Figures.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Figures } from './load.ts'
import { type LoadSpec, pipelineDepth } from './spec.ts'

/** wrk's version line, or undefined when it is not installed (`apt-get install wrk`). */
export function wrkVersion(command = 'wrk'): string | undefined {
  const run = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 5_000 })
  if (run.error !== undefined) return undefined
  // wrk prints its version and usage and exits 1
  const line = `${run.stdout}${run.stderr}`.split('\n').find((l) => /^wrk\b/.test(l))
  // "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer": the name and version
  return line?.split(' [')[0]?.trim()
}

/** A Lua string literal holding exactly the UTF-8 bytes of `s`; others than printable ASCII as 3-digit \ddd escapes. */
export function luaString(s: string): string {
  let out = '"'
  for (const byte of Buffer.from(s, 'utf8')) {
    if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte)
    else out += `\\${String(byte).padStart(3, '0')}`
  }
  return `${out}"`
}

const LUA_BASE64 = `
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end
`

/**
 * The Lua script for one run. `runTag` makes this run's unique names differ from the other runs' of the
 * same benchmark (each wrk process counts from zero; the Vary's prefix tells benchmarks apart). Statuses are counted per thread and summed in `done`.
 */
export function wrkScript(spec: LoadSpec, runTag: string): string {
  const headerLines = Object.entries(spec.headers ?? {}).map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
  const lines = [
    `wrk.method = ${luaString(spec.method)}`,
    `wrk.path = ${luaString(spec.path)}`,
    ...headerLines,
    'counts = {}',
    'n = 0',
    'tid = 0',
    'local threads = {}',
    'function setup(thread)',
    '  thread:set("tid", #threads)',
    '  table.insert(threads, thread)',
    'end',
    'function init(args)',
    '  math.randomseed(os.time() + tid * 7919)',
    'end',
  ]
  const depth = pipelineDepth(spec)
  // A response() callback makes wrk build a Lua table of every answer's headers and call into Lua:
  // more CPU per request than the pipelining saves. Pipelined runs count from wrk's own summary
  // instead, which tells only answers below 400 from the rest (`PIPELINED_STATUSES`).
  if (depth === 1) lines.push('function response(status, headers, body)', '  counts[status] = (counts[status] or 0) + 1', 'end')
  const unique = `${luaString(runTag)} .. tid .. "x" .. n`
  const vary = spec.vary
  if (depth > 1) {
    // wrk counts the requests in the first string request() returns and writes the whole string at
    // once each time all of its answers are in: the same `depth` requests every time
    lines.push(
      'local batch = nil',
      'function request()',
      '  if batch == nil then',
      '    local r = {}',
      `    for i = 1, ${depth} do r[i] = wrk.format() end`,
      '    batch = table.concat(r)',
      '  end',
      '  return batch',
      'end',
    )
  } else if (vary?.kind === 'register') {
    lines.push(
      'wrk.headers["Content-Type"] = "application/json"',
      'function request()',
      '  n = n + 1',
      `  local body = "{\\"username\\":\\"" .. ${luaString(vary.prefix)} .. ${unique} .. "\\",\\"password\\":" .. ${luaString(JSON.stringify(vary.password))} .. "}"`,
      '  return wrk.format(nil, nil, nil, body)',
      'end',
    )
  } else if (vary?.kind === 'random-id') {
    lines.push('function request()', `  return wrk.format(nil, ${luaString(vary.pathPrefix)} .. math.random(1, ${Math.max(1, Math.floor(vary.max))}))`, 'end')
  } else if (vary?.kind === 'wrong-password') {
    const user = vary.seeded !== undefined && vary.seeded > 0 ? `"seed" .. math.random(1, ${Math.floor(vary.seeded)})` : `${luaString(vary.prefix)} .. ${unique}`
    lines.push(
      LUA_BASE64,
      'function request()',
      '  n = n + 1',
      `  local credentials = ${user} .. ":wrong password " .. ${unique}`,
      '  wrk.headers["Authorization"] = "Basic " .. base64(credentials)',
      '  return wrk.format()',
      'end',
    )
  }
  lines.push(
    'function done(summary, latency, requests)',
    '  local parts = {}',
    '  for _, t in ipairs(threads) do',
    '    local c = t:get("counts") or {}',
    '    for status, count in pairs(c) do parts[#parts + 1] = string.format("\\"%d\\":%d", status, count) end',
    '  end',
    '  local e = summary.errors',
    '  io.write(string.format("WRK_JSON {\\"requests\\":%d,\\"durationUs\\":%d,\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,\\"max\\":%d,\\"mean\\":%f,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"timeout\\":%d,\\"status\\":%d,\\"counted\\":%s,\\"statuses\\":[{%s}]}\\n",',
    '    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,',
    `    e.connect, e.read, e.write, e.timeout, e.status, "${depth === 1 ? 'true' : 'false'}", table.concat(parts, "},{")))`,
    'end',
  )
  return `${lines.join('\n')}\n`
}

interface WrkJson {
  readonly requests: number
  readonly durationUs: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly max: number
  readonly mean: number
  readonly connect: number
  readonly read: number
  readonly write: number
  readonly timeout: number
  /** Answers with a status of 400 or above (wrk's own count). */
  readonly status: number
  /** Whether the script counted every status (`statuses`); pipelined runs do not. */
  readonly counted: boolean
  /** Objects of status → count (one per thread and status), summed. */
  readonly statuses: readonly Record<string, number>[]
}

/** The status "codes" of a pipelined run, which wrk counts only as below 400 or not. */
export const PIPELINED_STATUSES = { below400: '2xx/3xx', from400: '4xx/5xx' } as const

/** The figures in wrk's output (the script's JSON line); throws if the line is missing. */
export function parseWrkOutput(stdout: string): Figures {
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '))
  if (line === undefined) throw new Error(`wrk printed no result line:\n${stdout.slice(-1000)}`)
  const j = JSON.parse(line.slice('WRK_JSON '.length)) as WrkJson
  const statusCodes: Record<string, number> = {}
  if (j.counted) {
    for (const perThread of j.statuses) for (const [code, count] of Object.entries(perThread)) statusCodes[code] = (statusCodes[code] ?? 0) + count
  } else {
    if (j.requests > j.status) statusCodes[PIPELINED_STATUSES.below400] = j.requests - j.status
    if (j.status > 0) statusCodes[PIPELINED_STATUSES.from400] = j.status
  }
  const durationS = j.durationUs / 1e6
  const non2xx = Object.entries(statusCodes).reduce((sum, [code, count]) => (code.startsWith('2') ? sum : sum + count), 0)
  return {
    requestsPerSecond: durationS > 0 ? j.requests / durationS : 0,
    requests: j.requests,
    durationS,
    latencyMs: { p50: j.p50 / 1000, p90: j.p90 / 1000, p99: j.p99 / 1000, max: j.max / 1000, mean: j.mean / 1000 },
    // socket errors; a timed-out request is counted in `timeouts` only
    errors: j.connect + j.read + j.write,
    timeouts: j.timeout,
    non2xx,
    statusCodes,
  }
}

export interface WrkRun {
  readonly result: Promise<Figures>
  /** Ends the run early (SIGINT: wrk stops and still reports what it measured). */
  stop(): void
}

let runs = 0

/** Runs wrk with one thread (the cores are the server's too), `--timeout 10s`, until `durationS` or stop(). */
export function runWrk(spec: LoadSpec, command = 'wrk'): WrkRun {
  const dir = mkdtempSync(join(tmpdir(), 'rest-auth-wrk-'))
  const script = join(dir, 'load.lua')
  writeFileSync(script, wrkScript(spec, `${runs++}t`))
  const connections = Math.max(1, spec.connections)
  const args = ['-t1', `-c${connections}`, `-d${Math.max(1, Math.ceil(spec.durationS))}s`, '--timeout', '10s', '-s', script, `${spec.origin}${spec.path}`]
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const result = new Promise<Figures>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      rmSync(dir, { recursive: true, force: true })
      try {
        resolve(parseWrkOutput(stdout))
      } catch (error) {
        reject(new Error(`wrk ${args.join(' ')} ended (${code ?? signal}) without a result: ${stderr.trim() || (error as Error).message}`))
      }
    })
  })
  return { result, stop: () => child.exitCode === null && child.kill('SIGINT') }
}
