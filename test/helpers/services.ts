/**
 * Reachability of the external services tests may use. Unreachable means a loud skip, except under
 * REQUIRE_SERVICES=1 (CI), where it is a failure.
 */
import { Socket } from 'node:net'

export const PG_URL = process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REQUIRE_SERVICES = process.env['REQUIRE_SERVICES'] === '1'

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

let pgReachable: Promise<boolean> | undefined

export async function postgresReachable(): Promise<boolean> {
  const url = new URL(PG_URL)
  pgReachable ??= reachable(url.hostname, Number(url.port || 5432))
  const ok = await pgReachable
  if (!ok && REQUIRE_SERVICES) {
    throw new Error(`REQUIRE_SERVICES=1 but PostgreSQL is unreachable at ${url.host}`)
  }
  if (!ok) process.stderr.write(`\n*** SKIPPING PostgreSQL tests: unreachable at ${url.host} ***\n\n`)
  return ok
}
