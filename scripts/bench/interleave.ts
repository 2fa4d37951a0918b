/**
 * Interleaved measurement: a scenario measured in slices that alternate with slices of the bare
 * baseline (B0 S1 B1 S2 B2 ...), so the machine's speed, which on a shared VM moves by almost 2x
 * within seconds, is nearly the same for a scenario slice and the baseline slices on either side of it.
 * Pure: merging the slices' figures and computing the ratios; the runs are the caller's.
 */
import type { Figures, Measured } from './load.ts'
import type { CpuShares, RssSummary } from './processes.ts'

/** The figures of consecutive runs of one load as one: sums, and request-weighted latency percentiles. */
export function mergeFigures(parts: readonly Figures[]): Figures {
  if (parts.length === 0) throw new Error('mergeFigures: no runs')
  if (parts.length === 1) return parts[0] as Figures
  const requests = parts.reduce((a, f) => a + f.requests, 0)
  const durationS = parts.reduce((a, f) => a + f.durationS, 0)
  const weighted = (pick: (f: Figures) => number) => (requests === 0 ? 0 : parts.reduce((a, f) => a + pick(f) * f.requests, 0) / requests)
  const statusCodes: Record<string, number> = {}
  for (const f of parts) for (const [code, n] of Object.entries(f.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n
  return {
    requestsPerSecond: durationS > 0 ? requests / durationS : 0,
    requests,
    durationS,
    latencyMs: {
      p50: weighted((f) => f.latencyMs.p50),
      p90: weighted((f) => f.latencyMs.p90),
      p99: weighted((f) => f.latencyMs.p99),
      max: Math.max(...parts.map((f) => f.latencyMs.max)),
      mean: weighted((f) => f.latencyMs.mean),
    },
    errors: parts.reduce((a, f) => a + f.errors, 0),
    timeouts: parts.reduce((a, f) => a + f.timeouts, 0),
    non2xx: parts.reduce((a, f) => a + f.non2xx, 0),
    statusCodes,
  }
}

/** RSS summaries of consecutive windows as one: maxima, all pids and samples, CPU shares weighted by time. */
export function mergeRss(parts: readonly { readonly rss: RssSummary; readonly durationS: number }[]): RssSummary {
  if (parts.length === 0) throw new Error('mergeRss: no windows')
  if (parts.length === 1) return (parts[0] as { rss: RssSummary }).rss
  const time = parts.reduce((a, p) => a + p.durationS, 0)
  const share = (pick: (c: CpuShares) => number) => (time === 0 ? 0 : parts.reduce((a, p) => a + pick(p.rss.cpu) * p.durationS, 0) / time)
  return {
    maxTotalBytes: Math.max(...parts.map((p) => p.rss.maxTotalBytes)),
    maxProcessBytes: Math.max(...parts.map((p) => p.rss.maxProcessBytes)),
    maxProcesses: Math.max(...parts.map((p) => p.rss.maxProcesses)),
    pids: [...new Set(parts.flatMap((p) => p.rss.pids))],
    samples: parts.flatMap((p) => p.rss.samples),
    cpu: {
      machineBusyPct: share((c) => c.machineBusyPct),
      serverPct: share((c) => c.serverPct),
      benchPct: share((c) => c.benchPct),
      otherPct: share((c) => c.otherPct),
      serverCpuSeconds: parts.reduce((a, p) => a + p.rss.cpu.serverCpuSeconds, 0),
    },
  }
}

/** One measurement of the bare route: its rate and the server CPU it took per request. */
export interface BaselineSlice {
  readonly requestsPerSecond: number
  readonly cpuPerRequestUs: number | undefined
}

export function sliceOf(m: Measured): BaselineSlice {
  const f = m.figures
  return { requestsPerSecond: f.requestsPerSecond, cpuPerRequestUs: f.requests === 0 ? undefined : (m.rss.cpu.serverCpuSeconds * 1e6) / f.requests }
}

/**
 * The baseline a scenario measured in slices S1..Sn compares with, given the baseline slices B0..Bn
 * (B0 before S1, Bi after Si): for each Si the mean of Bi-1 and Bi, weighted by Si's duration, so a
 * slow stretch of the machine lowers a scenario slice and the baseline it is compared with alike.
 */
export function pairedReference(scenario: readonly Figures[], baseline: readonly BaselineSlice[]): BaselineSlice {
  if (scenario.length === 0 || baseline.length !== scenario.length + 1) {
    throw new Error(`pairedReference: ${scenario.length} scenario slices need ${scenario.length + 1} baseline slices, got ${baseline.length}`)
  }
  const time = scenario.reduce((a, f) => a + f.durationS, 0)
  let rps = 0
  let cpu: number | undefined = 0
  scenario.forEach((f, i) => {
    const before = baseline[i] as BaselineSlice
    const after = baseline[i + 1] as BaselineSlice
    const w = time === 0 ? 1 / scenario.length : f.durationS / time
    rps += ((before.requestsPerSecond + after.requestsPerSecond) / 2) * w
    cpu = cpu === undefined || before.cpuPerRequestUs === undefined || after.cpuPerRequestUs === undefined ? undefined : cpu + ((before.cpuPerRequestUs + after.cpuPerRequestUs) / 2) * w
  })
  return { requestsPerSecond: rps, cpuPerRequestUs: cpu }
}
