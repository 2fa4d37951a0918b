/** autocannon runs (stoppable, so Ctrl-C and errors end them) and the figures the report needs. */
import autocannon from 'autocannon'
import { type RssSummary, sampleRss } from './processes.ts'

const active = new Set<autocannon.Instance>()

export function stopAllLoad(): void {
  for (const instance of active) instance.stop()
}

export interface Load {
  readonly result: Promise<autocannon.Result>
  stop(): void
}

/** Starts one autocannon instance; `result` settles when it finishes or is stopped. */
export function startLoad(opts: autocannon.Options): Load {
  let instance: autocannon.Instance | undefined
  const result = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon({ pipelining: 1, timeout: 10, ...opts }, (err, res) => {
      if (instance !== undefined) active.delete(instance)
      if (err !== null) reject(err)
      else resolve(res)
    })
    active.add(instance)
  })
  return { result, stop: () => instance?.stop() }
}

export async function runLoad(opts: autocannon.Options): Promise<autocannon.Result> {
  return startLoad(opts).result
}

export interface Figures {
  readonly requestsPerSecond: number
  readonly requests: number
  readonly durationS: number
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number }
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly statusCodes: Record<string, number>
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
 * `opts` must not carry a duration; each phase sets its own.
 */
export async function warmAndMeasure(
  opts: autocannon.Options,
  warmupS: number,
  durationS: number,
  serverPid: number,
  rssIntervalMs: number,
): Promise<Measured> {
  if (warmupS > 0) await runLoad({ ...opts, duration: warmupS })
  const sampler = sampleRss(serverPid, rssIntervalMs)
  try {
    const result = await runLoad({ ...opts, duration: durationS })
    return { figures: figures(result), rss: sampler.stop() }
  } catch (error) {
    sampler.stop()
    throw error
  }
}
