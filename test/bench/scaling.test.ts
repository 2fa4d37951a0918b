/**
 * The benchmark's `--scaling` comparison (scripts/bench/scaling.ts): many-worker slices against the
 * one-process slices on either side of each.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compareScaling } from '../../scripts/bench/scaling.ts'
import type { Measured } from '../../scripts/bench/load.ts'

function measured(requests: number, durationS: number, serverPct: number, benchPct: number): Measured {
  return {
    figures: {
      requestsPerSecond: requests / durationS,
      requests,
      durationS,
      latencyMs: { p50: 1, p90: 2, p99: 3, max: 4, mean: 1 },
      errors: 0,
      timeouts: 0,
      non2xx: 0,
      statusCodes: { '200': requests },
    },
    rss: {
      maxTotalBytes: 1,
      maxProcessBytes: 1,
      maxProcesses: 1,
      pids: [1],
      samples: [],
      cpu: { machineBusyPct: serverPct + benchPct, serverPct, benchPct, otherPct: 0, serverCpuSeconds: (serverPct / 100) * 2 * durationS },
    },
  }
}

test('compareScaling: each many-worker slice against the mean of the one-process slices around it; CPU shares by time', () => {
  // one: 60k, 80k, 70k req/s; many: 105k (between 60k and 80k: 1.5x) and 112.5k (between 80k and 70k: 1.5x)
  const shape = compareScaling(8, [measured(120_000, 2, 50, 20), measured(160_000, 2, 50, 20), measured(140_000, 2, 50, 20)], [measured(210_000, 2, 70, 30), measured(225_000, 2, 80, 20)])
  assert.equal(shape.pipeline, 8)
  assert.deepEqual(shape.oneSlices, [60_000, 80_000, 70_000])
  assert.equal(shape.oneReference, 72_500)
  assert.equal(shape.many.requestsPerSecond, 108_750)
  assert.equal(shape.ratio, 1.5)
  assert.equal(shape.one.requests, 420_000)
  assert.equal(shape.manyCpu.serverPct, 75)
  assert.equal(shape.manyCpu.benchPct, 25)
  assert.equal(shape.oneCpu.serverPct, 50)
})

test('compareScaling: a drifting machine moves both sides alike; the counts of slices must fit O M O', () => {
  // the machine halves its speed between the slices: the ratio still says 2x
  const shape = compareScaling(1, [measured(200_000, 2, 50, 40), measured(100_000, 2, 50, 40)], [measured(300_000, 2, 90, 10)])
  assert.equal(shape.ratio, 2)
  assert.throws(() => compareScaling(1, [measured(1, 1, 1, 1)], [measured(1, 1, 1, 1)]), /need 2 one-process slices/)
  assert.throws(() => compareScaling(1, [measured(1, 1, 1, 1)], []), /many-worker slices/)
})
