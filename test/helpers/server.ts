/**
 * startServer: the real app on 127.0.0.1:0 over a fresh store, closed after the test, plus small
 * fetch helpers. Uses a fast argon2 profile from config (never a stub).
 */
import type { TestContext } from 'node:test'
import { Writable } from 'node:stream'
import type { Clock } from '../../src/clock.ts'
import { loadConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/schema.ts'
import { buildApp, createLogger } from '../../src/http/app.ts'
import type { Runtime } from '../../src/runtime.ts'
import { createStore } from '../../src/store/kysely-store.ts'
import type { Store } from '../../src/store/store.ts'
import { freshDatabase, type StoreKind } from './stores.ts'

export const FAST_ARGON2 = { AUTH_ARGON2_MEMORY: '256', AUTH_ARGON2_ITERATIONS: '1' } as const

export interface StartOptions {
  readonly store?: StoreKind
  /** Environment-style settings, e.g. { AUTH_PASSWORD_POLICY: 'legacy' }. */
  readonly env?: Readonly<Record<string, string>>
  readonly clock?: Clock
  /** Reuse a database (e.g. to prove state survives a restart). */
  readonly databaseUrl?: string
}

export interface RequestOptions {
  readonly basic?: readonly [string, string]
  readonly bearer?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly json?: unknown
  readonly body?: string | Buffer
}

export interface TestServer {
  readonly url: string
  readonly config: Config
  readonly store: Store
  readonly runtime: Runtime
  readonly databaseUrl: string
  /** Applies what other processes changed (the CLI, another server) now instead of within the poll interval. */
  sync(): Promise<void>
  /** Everything the server logged, as raw text. */
  logs(): string
  request(method: string, path: string, options?: RequestOptions): Promise<Response>
  get(path: string, options?: RequestOptions): Promise<Response>
  post(path: string, options?: RequestOptions): Promise<Response>
  register(username: string, password: string): Promise<Response>
  token(username: string, password: string): Promise<string>
}

export function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
}

/** Returns undefined when the store kind is unavailable and the test was skipped. */
export async function startServer(t: TestContext, options: StartOptions = {}): Promise<TestServer | undefined> {
  // A fresh database is removed after the server has closed (see freshDatabase), in the same hook.
  const fresh = options.databaseUrl === undefined ? await freshDatabase(t, options.store ?? 'sqlite') : undefined
  if (options.databaseUrl === undefined && fresh === undefined) return undefined
  const databaseUrl = options.databaseUrl ?? (fresh as { url: string }).url
  const drop = fresh?.drop
  const { config } = loadConfig({
    env: {},
    // Rate limits are off unless a test turns them on: the suite sends far more than 10 registrations
    // an hour from 127.0.0.1. Tests of the limits themselves pass AUTH_RATE_LIMITS: 'on'.
    overrides: { PORT: '0', LOG_LEVEL: 'info', AUTH_RATE_LIMITS: 'off', ...FAST_ARGON2, ...options.env, DATABASE_URL: databaseUrl },
  })
  const store = createStore(config.databaseUrl)
  try {
    await store.migrate()
  } catch (error) {
    await store.close()
    await drop?.()
    throw error
  }
  const chunks: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'))
      cb()
    },
  })
  const logger = createLogger(config.logLevel, sink)
  let built
  try {
    built = await buildApp({ config, store, logger, ...(options.clock ? { clock: options.clock } : {}) })
  } catch (error) {
    await store.close()
    await drop?.()
    throw error
  }
  const { app, runtime, sync } = built
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  t.after(async () => {
    // Bounded: a close that does not finish in 15 s is reported and forced, so one stuck teardown
    // fails loudly instead of holding the whole test run open.
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      app.close().then(
        () => false,
        (error: unknown) => {
          process.stderr.write(`\n*** startServer: app.close() failed: ${String(error)} ***\n`)
          return false
        },
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), 15_000)
      }),
    ])
    clearTimeout(timer)
    if (timedOut) {
      process.stderr.write(`\n*** startServer: app.close() did not finish in 15 s; forcing the server closed ***\n`)
      app.server.closeAllConnections()
      app.server.close()
    }
    try {
      await store.close()
    } finally {
      await drop?.()
    }
  })

  const request = async (method: string, path: string, o: RequestOptions = {}) => {
    const headers: Record<string, string> = { ...o.headers }
    if (o.basic) headers['authorization'] = basicHeader(o.basic[0], o.basic[1])
    if (o.bearer !== undefined) headers['authorization'] = `Bearer ${o.bearer}`
    let body: string | Buffer | undefined = o.body
    if (o.json !== undefined) {
      body = JSON.stringify(o.json)
      headers['content-type'] ??= 'application/json'
    }
    return fetch(address + path, { method, headers, ...(body === undefined ? {} : { body }) })
  }
  const server: TestServer = {
    url: address,
    config,
    store,
    runtime,
    databaseUrl,
    sync,
    logs: () => chunks.join(''),
    request,
    get: (path, o) => request('GET', path, o),
    post: (path, o) => request('POST', path, o),
    register: (username, password) => request('POST', '/api/users', { json: { username, password } }),
    async token(username, password) {
      const res = await request('GET', '/api/token', { basic: [username, password] })
      if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${await res.text()}`)
      return ((await res.json()) as { token: string }).token
    },
  }
  return server
}
