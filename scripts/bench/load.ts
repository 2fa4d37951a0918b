/**
 * Load runs (stoppable, so Ctrl-C and errors end them) with either load generator, and the figures the
 * report needs. wrk when installed: it costs the shared cores far less per request than autocannon.
 */
import autocannon from 'autocannon'
import { type RssSummary, sampleRss } from './processes.ts'
import { basicHeader, type LoadSpec, pipelineDepth } from './spec.ts'
import { runWrk } from './wrk.ts'

export type LoadClient = 'wrk' | 'autocannon'

export interface Figures {
  readonly requestsPerSecond: number
  readonly requests: number
  readonly durationS: number
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number }
  /** Socket errors (connect, read, write). */
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly statusCodes: Record<string, number>
}

export interface Load {
  readonly result: Promise<Figures>
  stop(): void
}

const active = new Set<Load>()

export function stopAllLoad(): void {
  for (const load of active) load.stop()
}

let autocannonRuns = 0

/** The autocannon form of a spec; unique names carry this run's number, as wrk's do. */
export function autocannonOptions(spec: LoadSpec): autocannon.Options {
  const run = autocannonRuns++
  let n = 0
  const unique = () => `${run}a${n++}`
  const base = { url: spec.origin, connections: spec.connections, duration: spec.durationS, pipelining: pipelineDepth(spec), timeout: 10 }
  const request: autocannon.Request = { method: spec.method, path: spec.path, ...(spec.headers === undefined ? {} : { headers: { ...spec.headers } }) }
  const vary = spec.vary
  if (vary?.kind === 'register') {
    const password = vary.password
    const headers = { ...spec.headers, 'content-type': 'application/json' }
    return { ...base, requests: [{ ...request, headers, setupRequest: (req) => ({ ...req, body: JSON.stringify({ username: `${vary.prefix}${unique()}`, password }) }) }] }
  }
  if (vary?.kind === 'random-id') {
    return { ...base, requests: [{ ...request, setupRequest: (req) => ({ ...req, path: `${vary.pathPrefix}${1 + Math.floor(Math.random() * vary.max)}` }) }] }
  }
  if (vary?.kind === 'wrong-password') {
    const user = vary.seeded !== undefined && vary.seeded > 0 ? () => `seed${1 + Math.floor(Math.random() * (vary.seeded ?? 1))}` : () => `${vary.prefix}${unique()}`
    return {
      ...base,
      requests: [{ ...request, setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: basicHeader(user(), `wrong password ${unique()}`) } }) }],
    }
  }
  return { ...base, requests: [request] }
}

function startAutocannon(spec: LoadSpec): Load {
  let instance: autocannon.Instance | undefined
  const result = new Promise<Figures>((resolve, reject) => {
    instance = autocannon(autocannonOptions(spec), (err, res) => {
      if (err !== null) reject(err)
      else resolve(figures(res))
    })
  })
  return { result, stop: () => instance?.stop() }
}

/** Starts one run; `result` settles when it finishes or is stopped. */
export function startLoad(client: LoadClient, spec: LoadSpec): Load {
  const load = client === 'wrk' ? runWrk(spec) : startAutocannon(spec)
  active.add(load)
  void load.result.finally(() => active.delete(load)).catch(() => {})
  return load
}

export async function runLoad(client: LoadClient, spec: LoadSpec): Promise<Figures> {
  return startLoad(client, spec).result
}

export function figures(result: autocannon.Result): Figures {
  const statusCodes: Record<string, number> = {}
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = Number(count)
  const requests = result.requests.total
  return {
    requestsPerSecond: result.duration > 0 ? requests / result.duration : 0,
    requests,
    durationS: result.duration,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      mean: result.latency.mean,
    },
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
  }
}

export interface Measured {
  readonly figures: Figures
  readonly rss: RssSummary
}

/**
 * A warm-up run (discarded), then the measured run with the server's RSS sampled every `rssIntervalMs`.
 * Each phase sets its own duration.
 */
export async function warmAndMeasure(
  client: LoadClient,
  spec: Omit<LoadSpec, 'durationS'>,
  warmupS: number,
  durationS: number,
  serverPid: number,
  rssIntervalMs: number,
): Promise<Measured> {
  if (warmupS > 0) await runLoad(client, { ...spec, durationS: warmupS })
  const sampler = sampleRss(serverPid, rssIntervalMs)
  try {
    const result = await runLoad(client, { ...spec, durationS })
    return { figures: result, rss: sampler.stop() }
  } catch (error) {
    sampler.stop()
    throw error
  }
}
