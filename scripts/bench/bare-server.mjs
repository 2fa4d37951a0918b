/**
 * The benchmark's baseline: a bare Fastify hello-world, the ceiling any Fastify route reaches on this
 * machine. `PORT` (required), `HOST` (127.0.0.1), `BARE_WORKERS` (1: one process; N > 1: a node:cluster
 * of N workers on the one port, to compare with `serve --workers N`). Exits on SIGTERM/SIGINT and when
 * its stdin closes (the benchmark died). Plain JavaScript, run by node itself: no loader (and no esbuild
 * process) in the baseline's CPU and RSS, as in the server's, which runs from dist/.
 */
import cluster from 'node:cluster'
// As every rest-auth process does first (src/cli/tick-maps.ts): keep process.nextTick's queue-entry maps
// alive. Without it a bare process falls, at random, into Node 20's slow nextTick path (~1 µs more
// per request: seen in a profile of this baseline), and a slower baseline flatters every ratio.
// The module is plain ESM with no dependencies; the benchmark builds dist/ before it starts this.
import { pinTickObjectMaps } from '../../dist/cli/tick-maps.js'
import Fastify from 'fastify'

pinTickObjectMaps()

const port = Number(process.env['PORT'])
const host = process.env['HOST'] ?? '127.0.0.1'
const workers = Number(process.env['BARE_WORKERS'] ?? '1')
if (!Number.isInteger(port) || port <= 0) throw new Error('PORT must be set')

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork()
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM')
    setTimeout(() => process.exit(0), 2_000).unref()
  }
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0)
  })
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  process.stdin.on('end', stop).resume()
} else {
  const app = Fastify({ logger: false })
  app.get('/', async () => ({ hello: 'world' }))
  await app.listen({ host, port })
  const stop = () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  if (cluster.isPrimary) process.stdin.on('end', stop).resume()
}
