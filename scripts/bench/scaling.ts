/**
 * `--workers N` against one process, on the token path: two servers on the same database, measured in
 * slices that alternate (O M O M O: one process, many workers, ...), each "many" slice compared with the
 * "one" slices on either side of it, as the scenarios are with the bare route (interleave.ts). Pure:
 * the runs are the caller's.
 *
 * Two shapes of load. One request at a time per connection is what the other scenarios use; on a
 * machine whose cores the load generator shares with the server, it caps what more workers can show
 * (wrk spends nearly as much CPU per request as the server). Pipelined, each connection writes a batch
 * of requests at once, so the load generator makes one write per batch and leaves the server more of
 * the machine; the server still answers each request on its own, in order.
 */
import type { Figures, Measured } from './load.ts'
import { type BaselineSlice, mergeFigures, mergeRss, pairedReference, sliceOf } from './interleave.ts'
import type { CpuShares } from './processes.ts'

export interface ScalingShape {
  /** Requests per connection at a time (1: not pipelined). */
  readonly pipeline: number
  /** The one-process server: its slices merged. */
  readonly one: Figures
  /** The N-worker server: its slices merged. */
  readonly many: Figures
  /** The one-process rate next to the many-worker slices (mean of the slices on either side). */
  readonly oneReference: number
  /** many.requestsPerSecond / oneReference. */
  readonly ratio: number
  /** Every one-process slice in order (req/s), to show the machine's drift. */
  readonly oneSlices: readonly number[]
  /** CPU shares of the machine while the many-worker server was measured. */
  readonly manyCpu: CpuShares
  readonly oneCpu: CpuShares
}

/**
 * The comparison of one shape: `one` holds n + 1 measurements of the one-process server, `many` the n of
 * the N-worker server taken between them.
 */
export function compareScaling(pipeline: number, one: readonly Measured[], many: readonly Measured[]): ScalingShape {
  if (many.length === 0 || one.length !== many.length + 1) {
    throw new Error(`compareScaling: ${many.length} many-worker slices need ${many.length + 1} one-process slices, got ${one.length}`)
  }
  const oneSlices: BaselineSlice[] = one.map(sliceOf)
  const manyFigures = many.map((m) => m.figures)
  const reference = pairedReference(manyFigures, oneSlices)
  const merged = mergeFigures(manyFigures)
  return {
    pipeline,
    one: mergeFigures(one.map((m) => m.figures)),
    many: merged,
    oneReference: reference.requestsPerSecond,
    ratio: reference.requestsPerSecond > 0 ? merged.requestsPerSecond / reference.requestsPerSecond : 0,
    oneSlices: oneSlices.map((s) => s.requestsPerSecond),
    manyCpu: mergeRss(many.map((m) => ({ rss: m.rss, durationS: m.figures.durationS }))).cpu,
    oneCpu: mergeRss(one.map((m) => ({ rss: m.rss, durationS: m.figures.durationS }))).cpu,
  }
}
