/**
 * The benchmark's interleaved measurement (scripts/bench/interleave.ts): merging slices of one load,
 * and the baseline each scenario is compared with.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mergeFigures, mergeRss, pairedReference, sliceOf } from '../../scripts/bench/interleave.ts'
import type { Figures } from '../../scripts/bench/load.ts'
import type { RssSummary } from '../../scripts/bench/processes.ts'

function figures(requests: number, durationS: number, p99: number, extra: Partial<Figures> = {}): Figures {
  return {
    requestsPerSecond: requests / durationS,
    requests,
    durationS,
    latencyMs: { p50: p99 / 4, p90: p99 / 2, p99, max: p99 * 2, mean: p99 / 3 },
    errors: 0,
    timeouts: 0,
    non2xx: 0,
    statusCodes: { '200': requests },
    ...extra,
  }
}

function rss(maxMb: number, serverCpuSeconds: number, serverPct: number, pids: number[]): RssSummary {
  return {
    maxTotalBytes: maxMb * 1048576,
    maxProcessBytes: maxMb * 1048576,
    maxProcesses: pids.length,
    pids,
    samples: [],
    cpu: { machineBusyPct: serverPct + 20, serverPct, benchPct: 20, otherPct: 0, serverCpuSeconds },
  }
}

test('mergeFigures: requests, time and statuses add up; rate is total requests over total time; p99 is request-weighted, max the largest', () => {
  const merged = mergeFigures([figures(30_000, 2, 4), figures(10_000, 2, 8, { non2xx: 3, statusCodes: { '200': 9_997, '503': 3 }, errors: 1 })])
  assert.equal(merged.requests, 40_000)
  assert.equal(merged.durationS, 4)
  assert.equal(merged.requestsPerSecond, 10_000)
  assert.equal(merged.latencyMs.p99, (4 * 30_000 + 8 * 10_000) / 40_000)
  assert.equal(merged.latencyMs.max, 16)
  assert.deepEqual(merged.statusCodes, { '200': 39_997, '503': 3 })
  assert.equal(merged.non2xx, 3)
  assert.equal(merged.errors, 1)
  const one = figures(5, 1, 1)
  assert.equal(mergeFigures([one]), one)
  assert.throws(() => mergeFigures([]))
})

test('mergeRss: maxima and all pids over the windows; server CPU seconds add up; shares weighted by window length', () => {
  const merged = mergeRss([
    { rss: rss(90, 1.5, 50, [10]), durationS: 3 },
    { rss: rss(110, 0.5, 30, [10, 11]), durationS: 1 },
  ])
  assert.equal(merged.maxTotalBytes, 110 * 1048576)
  assert.equal(merged.maxProcesses, 2)
  assert.deepEqual(merged.pids, [10, 11])
  assert.equal(merged.cpu.serverCpuSeconds, 2)
  assert.equal(merged.cpu.serverPct, (50 * 3 + 30 * 1) / 4)
})

test('sliceOf: the rate, and the server CPU per request in µs', () => {
  assert.deepEqual(sliceOf({ figures: figures(20_000, 2, 5), rss: rss(80, 0.6, 50, [1]) }), { requestsPerSecond: 10_000, cpuPerRequestUs: 30 })
  assert.equal(sliceOf({ figures: figures(0, 2, 5), rss: rss(80, 0, 0, [1]) }).cpuPerRequestUs, undefined)
})

test('pairedReference: each scenario slice is compared with the mean of the baseline slices on either side, weighted by its length', () => {
  // the machine halves its speed after B1: S2 and the baseline around it both see it
  const bases = [
    { requestsPerSecond: 30_000, cpuPerRequestUs: 30 },
    { requestsPerSecond: 30_000, cpuPerRequestUs: 30 },
    { requestsPerSecond: 15_000, cpuPerRequestUs: 60 },
  ]
  const ref = pairedReference([figures(42_000, 2, 5), figures(31_500, 2, 5)], bases)
  assert.equal(ref.requestsPerSecond, (30_000 + 22_500) / 2)
  assert.equal(ref.cpuPerRequestUs, (30 + 45) / 2)
  // scenario rate 18,375 req/s over the run: 0.7 of the paired baseline, where the first baseline alone would say 0.61
  assert.equal((42_000 + 31_500) / 4 / ref.requestsPerSecond, 0.7)
  const unequal = pairedReference([figures(3, 3, 1), figures(1, 1, 1)], [
    { requestsPerSecond: 10, cpuPerRequestUs: undefined },
    { requestsPerSecond: 20, cpuPerRequestUs: 1 },
    { requestsPerSecond: 40, cpuPerRequestUs: 1 },
  ])
  assert.equal(unequal.requestsPerSecond, 15 * 0.75 + 30 * 0.25)
  assert.equal(unequal.cpuPerRequestUs, undefined, 'unknown when a slice lacks it')
  assert.throws(() => pairedReference([figures(1, 1, 1)], bases), /2 baseline slices/)
})
