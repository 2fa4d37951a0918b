/**
 * Keeps the hidden classes of `process.nextTick`'s queue entries alive for the life of the process.
 *
 * Node 20 makes each queue entry with an object literal that has two computed symbol keys
 * (lib/internal/process/task_queues.js). V8 holds the hidden classes (maps) of those entries only
 * weakly: when a full GC runs at a moment no entry is alive (an idle second is enough), the maps are
 * collected and the next entries get new ones. The literal's inline cache then misses, and optimized
 * code that inlined `nextTick` falls back to a runtime call per computed key (V8's
 * `Runtime_DefineKeyedOwnPropertyInLiteral`, a transition lookup each time). It never recovers: a
 * `nextTick` measured 31-37 ns before such a GC and 430-470 ns after, for good.
 *
 * An HTTP request runs about seven `nextTick`s inside Node's streams and http code (write done, end of
 * the request stream, its destroy, the response's close, ...). `perf` on the server found 2.5-3 µs of
 * a ~37 µs Bearer request in that runtime call in processes that had fallen into this state, none in
 * processes that had not; which state a process ends up in was down to when its first idle full GCs
 * happened. One entry kept alive keeps its map and the maps it was made through, so every later entry
 * gets the same maps and the cache stays valid.
 *
 * The entry is caught with an async hook enabled for a single `nextTick` and disabled straight after:
 * no hook stays installed, and nothing is added to the work of any later `nextTick`. The entry holds
 * a no-op callback and two numbers. Where async hooks are unavailable nothing is done.
 */
import { createHook } from 'node:async_hooks'

let pinned: object | undefined

function noop(): void {}

/**
 * Catches one `nextTick` queue entry and keeps it. Returns whether one is kept (true on every later
 * call once one is). Call it first thing in a long-running process, before the module graph is loaded.
 */
export function pinTickObjectMaps(): boolean {
  if (pinned !== undefined) return true
  try {
    const hook = createHook({
      init(_asyncId, type, _triggerAsyncId, resource) {
        if (type === 'TickObject' && pinned === undefined) pinned = resource
      },
    })
    hook.enable()
    try {
      process.nextTick(noop)
    } finally {
      hook.disable()
    }
  } catch {
    // async_hooks missing or refusing: the process runs as it would have without this
  }
  return pinned !== undefined
}
