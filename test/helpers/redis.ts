/**
 * Reachability of the Redis that shared rate-limit counters use in tests. Unreachable means a loud
 * skip, except under REQUIRE_SERVICES=1 (CI), where it is a failure (as for PostgreSQL, services.ts).
 */
import { Socket } from 'node:net'
import { REQUIRE_SERVICES } from './services.ts'

export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379'

function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket()
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('error', () => done(false))
    socket.connect(port, host, () => done(true))
  })
}

let redisReachableOnce: Promise<boolean> | undefined

export async function redisReachable(): Promise<boolean> {
  const url = new URL(REDIS_URL)
  redisReachableOnce ??= reachable(url.hostname, Number(url.port || 6379))
  const ok = await redisReachableOnce
  if (!ok && REQUIRE_SERVICES) {
    throw new Error(`REQUIRE_SERVICES=1 but Redis is unreachable at ${url.host}`)
  }
  if (!ok) process.stderr.write(`\n*** SKIPPING Redis tests: unreachable at ${url.host} ***\n\n`)
  return ok
}
