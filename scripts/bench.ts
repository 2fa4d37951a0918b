/**
 * `npm run bench [-- options]`: load-tests the REAL server (`dist/cli/main.js serve`, built first, a child process on a
 * fresh database) against a bare Fastify hello-world measured in the same run, with wrk (or autocannon).
 * Run `npm run bench -- --help` for the options; results go to stdout (markdown) and
 * bench-results/<timestamp>.json (git-ignored). Only 127.0.0.1 is ever contacted.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type Figures, type LoadClient, type Measured, startLoad, stopAllLoad, warmAndMeasure } from './bench/load.ts'
import { basicHeader, type LoadSpec } from './bench/spec.ts'
import { PIPELINED_STATUSES, wrkVersion } from './bench/wrk.ts'
import { workerEnv, workerExecArgv } from '../src/cli/node-flags.ts'
import { type Child, type CpuShares, freePort, killAllNow, type RssSample, sampleRss, spawnChild, stopAll, stopChild, treeRss, waitReady } from './bench/processes.ts'
import { type BaselineSlice, mergeFigures, mergeRss, pairedReference, sliceOf } from './bench/interleave.ts'
import { dropPostgresSchema, seedUsers, type SeedResult } from './bench/seed.ts'
import { compareScaling, type ScalingShape } from './bench/scaling.ts'

const HELP = `Usage: npm run bench -- [options]

Builds dist/ (tsc) and starts the real server (node dist/cli/main.js serve) on a fresh SQLite file in a temporary
directory, and a bare Fastify hello-world (scripts/bench/bare-server.mjs) as the baseline, then measures
(one request per connection at a time): GET /api/resource with a Bearer token, with the token as the Basic
username, with Basic username:password (credential cache warm); GET /api/token (Basic password);
GET /api/users/<id>; POST /api/users (a new user per request); and the Bearer path while a second
load keeps the password-hashing pool busy with wrong passwords for ever new usernames
(each one a real argon2id verification). The load generator is wrk (one thread) when it is installed
(apt-get install wrk), else autocannon, which takes more of the shared cores per request.
Every scenario reports req/s, p50/p99 latency, the server's max RSS (/proc VmRSS; with workers the sum over the primary and its workers), errors, non-2xx and the
ratio to the baseline's req/s. Server settings: AUTH_RATE_LIMITS=off, AUTH_PASSWORD_POLICY=standard,
LOG_LEVEL=warn, default argon2id parameters (m=19456 KiB, t=2, p=1), everything else at its default.

Options:
  --full                 30 s per scenario after a 2 s warm-up, plus a 5-minute soak of the Bearer
                         path with the server's RSS sampled every 10 s (is memory flat?). ~12 minutes.
                         Default (short mode): 4 s per scenario after a 1 s warm-up, under a minute.
  --postgres             DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?schema=bench_<random>;
                         the schema is dropped at the end
  --workers N|auto       passed through as \`serve --workers N\` (node:cluster workers). The baseline
                         always runs as many processes as the server turned out to run (counted in
                         /proc), so "× baseline" compares like with like; without the flag the server
                         runs its own default.
  --seed N               before the server starts, insert N users (seed1 ... seedN) straight into the
                         migrated database, one precomputed argon2id hash for all, 10,000 per
                         transaction; adds "GET /api/users/<id>" over random ids of all users, and the
                         hash-pool load then uses existing usernames. Compare --seed 1000000 with none.
  --client wrk|autocannon the load generator (default: wrk if installed, else autocannon)
  --connections N        connections per scenario (default 50)
  --attack-connections N connections of the hash-pool load (default 64 = AUTH_HASH_QUEUE's default)
  --duration S           seconds per measured scenario (overrides the mode's)
  --warmup S             warm-up seconds before each scenario (overrides the mode's)
  --soak S               soak seconds in --full mode (default 300)
  --rounds N             the four token-path scenarios (Bearer, token as username, Basic password, user
                         by id) run in N slices that alternate with slices of the bare baseline
                         (B S B S B); each "× baseline" is against the baseline slices on either side of
                         its slices, so the machine's drift cancels (default 2, --full 5)
  --bracket S            seconds of bare baseline per scenario, split over its rounds (default 2,
                         --full 10; 0 = off: every ratio against the one baseline measured first)
  --scaling              also measure the token path (Bearer) on one process against one worker per core
                         (at least 2), two servers on the same database measured in alternating
                         slices, with one request at a time per connection and pipelined (--pipeline);
                         on by default with --full, or with --only scaling
  --pipeline N           requests per connection at a time in --scaling's pipelined load (default 8)
  --env KEY=VALUE        a server setting over the ones above (repeatable), e.g. --env AUTH_HASH_CONCURRENCY=1
  --only a,b             run only these scenarios (names as in the table; the baseline always runs)
  -h, --help             this text
`

// ---- options ----

interface Options {
  readonly full: boolean
  readonly postgres: boolean
  readonly workers: number | 'auto' | undefined
  readonly seed: number
  readonly client: LoadClient | undefined
  readonly connections: number
  readonly attackConnections: number
  readonly durationS: number
  readonly warmupS: number
  readonly soakS: number
  /** Seconds of each baseline slice after a bracketed scenario; 0 = one baseline for the whole run. */
  readonly bracketS: number
  /** Slices each bracketed scenario is measured in, alternating with baseline slices. */
  readonly rounds: number
  readonly only: ReadonlySet<string> | undefined
  /** Extra server settings (--env KEY=VALUE), applied over the bench's own. */
  readonly env: Readonly<Record<string, string>>
  /** One process against one worker per core on the token path (--scaling). */
  readonly scaling: boolean
  /** Depth of --scaling's pipelined load. */
  readonly pipeline: number
}

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  const n = Number(value.replaceAll('_', ''))
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${value}`)
  return n
}

function parseOptions(argv: readonly string[]): Options | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      full: { type: 'boolean' },
      postgres: { type: 'boolean' },
      client: { type: 'string' },
      workers: { type: 'string' },
      seed: { type: 'string' },
      connections: { type: 'string' },
      'attack-connections': { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      soak: { type: 'string' },
      bracket: { type: 'string' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      scaling: { type: 'boolean' },
      pipeline: { type: 'string' },
      env: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help === true) return undefined
  const full = values.full === true
  const env: Record<string, string> = {}
  for (const pair of values.env ?? []) {
    const eq = pair.indexOf('=')
    if (eq < 1) throw new Error(`--env needs KEY=VALUE, got ${pair}`)
    env[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  const only = values.only === undefined ? undefined : new Set(values.only.split(',').map((s) => s.trim()).filter((s) => s !== ''))
  const client = values.client?.trim().toLowerCase()
  if (client !== undefined && client !== 'wrk' && client !== 'autocannon') throw new Error(`--client must be wrk or autocannon, got ${values.client ?? ''}`)
  return {
    env,
    full,
    client,
    postgres: values.postgres === true,
    workers: values.workers === undefined ? undefined : values.workers.trim().toLowerCase() === 'auto' ? 'auto' : positiveInt('workers', values.workers, 1),
    seed: positiveInt('seed', values.seed, 0, 0),
    connections: positiveInt('connections', values.connections, 50),
    attackConnections: positiveInt('attack-connections', values['attack-connections'], 64),
    durationS: positiveInt('duration', values.duration, full ? 30 : 4),
    warmupS: positiveInt('warmup', values.warmup, full ? 2 : 1, 0),
    soakS: positiveInt('soak', values.soak, 300),
    bracketS: positiveInt('bracket', values.bracket, full ? 10 : 2, 0),
    rounds: positiveInt('rounds', values.rounds, full ? 5 : 2),
    only,
    scaling: values.scaling === true || full || only?.has('scaling') === true,
    pipeline: positiveInt('pipeline', values.pipeline, 8, 2),
  }
}

// ---- small helpers ----

const PASSWORD = 'correct horse battery staple'
const HOST = '127.0.0.1'
const POSTGRES_BASE = 'postgres://postgres@127.0.0.1:5432/test'
/** Settings the bench controls; inherited values of these are dropped so the shell cannot skew a run. */
const CONTROLLED_ENV = /^(AUTH_.*|DATABASE_URL|REDIS_URL|PUBLIC_URL|HOST|PORT|WORKERS|LOG_LEVEL|NODE_ENV|TLS_CERT_FILE|TLS_KEY_FILE|TRUST_PROXY|CORS_ORIGINS)$/

const benchStart = performance.now()
const log = (line: string) => process.stderr.write(`bench [${((performance.now() - benchStart) / 1000).toFixed(1).padStart(5)} s]: ${line}\n`)
const mb = (bytes: number) => bytes / 1024 / 1024
const basic = basicHeader

async function request(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}) {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: init.headers ?? {},
    ...(init.body === undefined ? {} : { body: init.body }),
    signal: AbortSignal.timeout(init.timeoutMs ?? 15_000),
  })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, json, text }
}

function expectStatus(what: string, got: { status: number; text: string }, want: number): void {
  if (got.status !== want) throw new Error(`${what}: expected ${want}, got ${got.status}: ${got.text.slice(0, 300)}`)
}

// ---- results ----

interface ScenarioResult {
  readonly name: string
  readonly description: string
  readonly target: 'bare' | 'rest-auth'
  readonly method: string
  readonly path: string
  readonly connections: number
  readonly warmupS: number
  readonly expectedStatus: number
  readonly figures: Figures
  readonly ratioToBaseline: number
  /**
   * The baseline that `ratioToBaseline` and `cpuRatioToBaseline` compare with: the mean of the bare
   * route measured just before and just after this scenario (bracketed scenarios), else the last one.
   */
  readonly reference?: BaselineReference
  readonly maxRssMb: number
  readonly maxProcessRssMb: number
  readonly processes: number
  /** Distinct server pids seen while measuring: more than `processes` means a worker died and was replaced. */
  readonly pidsSeen: number
  /** CPU shares of the whole machine while measuring; `otherPct` is what other processes took (noise). */
  readonly cpu: CpuShares
  /**
   * Server CPU time per answered request (µs): unlike req/s it hardly depends on how much of the machine
   * other processes took. Undefined when the window mixes two loads.
   */
  readonly cpuPerRequestUs: number | undefined
  /** Baseline's CPU per request / this one's: the noise-resistant counterpart of `ratioToBaseline`. */
  readonly cpuRatioToBaseline: number | undefined
  /** Responses with another status than the expected one, plus connection errors. */
  readonly unexpected: number
  readonly note?: string
}

/** The baseline measurements next to a scenario, and what its ratios divide by. */
interface BaselineReference extends BaselineSlice {
  readonly slices: readonly BaselineSlice[]
}

/** A scenario measured in one piece compares with the baseline measured last (the nearest in time). */
function referenceOf(last: BaselineSlice): BaselineReference {
  return { ...last, slices: [last] }
}

interface SoakResult {
  readonly durationS: number
  readonly intervalS: number
  readonly figures: Figures
  readonly samples: readonly { readonly atS: number; readonly rssMb: number; readonly processes: number }[]
  readonly firstMb: number
  readonly lastMb: number
  readonly maxMb: number
  /** Least-squares slope of RSS after the first minute, MB per minute. */
  readonly slopeMbPerMin: number
  readonly flat: boolean
}

function toResult(
  base: Omit<ScenarioResult, 'figures' | 'ratioToBaseline' | 'maxRssMb' | 'maxProcessRssMb' | 'processes' | 'pidsSeen' | 'cpu' | 'cpuPerRequestUs' | 'cpuRatioToBaseline' | 'unexpected'>,
  measured: Measured,
  reference: BaselineReference | undefined,
  mixedWindow = false,
): ScenarioResult {
  const f = measured.figures
  const expected = f.statusCodes[String(base.expectedStatus)] ?? 0
  const cpuPerRequestUs = mixedWindow || f.requests === 0 ? undefined : (measured.rss.cpu.serverCpuSeconds * 1e6) / f.requests
  const baselineRps = reference?.requestsPerSecond ?? 0
  const baselineCpuUs = reference?.cpuPerRequestUs
  return {
    cpuPerRequestUs,
    cpuRatioToBaseline: cpuPerRequestUs === undefined || baselineCpuUs === undefined || cpuPerRequestUs === 0 ? undefined : baselineCpuUs / cpuPerRequestUs,
    ...base,
    figures: f,
    ratioToBaseline: baselineRps > 0 ? f.requestsPerSecond / baselineRps : 0,
    ...(reference === undefined ? {} : { reference }),
    maxRssMb: mb(measured.rss.maxTotalBytes),
    maxProcessRssMb: mb(measured.rss.maxProcessBytes),
    processes: measured.rss.maxProcesses,
    pidsSeen: measured.rss.pids.length,
    cpu: measured.rss.cpu,
    unexpected: f.requests - expected + f.errors,
  }
}

// ---- the run ----

async function main(): Promise<number> {
  let opts: Options | undefined
  try {
    opts = parseOptions(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n\n${HELP}`)
    return 2
  }
  if (opts === undefined) {
    process.stdout.write(HELP)
    return 0
  }
  const o = opts
  const root = fileURLToPath(new URL('..', import.meta.url))
  const wrk = wrkVersion()
  if (o.client === 'wrk' && wrk === undefined) {
    process.stderr.write('bench: --client wrk, but wrk is not installed (apt-get install wrk)\n')
    return 2
  }
  const client: LoadClient = o.client ?? (wrk === undefined ? 'autocannon' : 'wrk')
  const clientVersion =
    client === 'wrk' ? (wrk ?? 'wrk') : `autocannon ${(JSON.parse(readFileSync(join(root, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version}`
  if (client === 'autocannon' && o.client === undefined) {
    log('wrk is not installed (apt-get install wrk): using autocannon, whose own CPU per request is several times wrk\'s; where it shares the cores with the server, the ratios show the load generator as much as the server')
  }
  const startedAt = new Date()
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-')
  const runId = randomBytes(3).toString('hex')
  const tmp = mkdtempSync(join(tmpdir(), 'rest-auth-bench-'))
  const resultsDir = join(root, 'bench-results')
  const schema = `bench_${randomBytes(5).toString('hex')}`
  const sqliteFile = join(tmp, 'bench.db')
  const databaseUrl = o.postgres ? `${POSTGRES_BASE}?schema=${schema}` : `sqlite:${sqliteFile}`
  const serverLog = join(tmp, 'server.log')
  const bareLog = join(tmp, 'bare.log')
  const rssIntervalMs = 250
  const wanted = (name: string) => o.only === undefined || o.only.has(name)

  // ---- cleanup: children, load, the PostgreSQL schema, the temp dir; once, bounded ----
  let server: Child | undefined
  let schemaCreated = false
  let cleaned: Promise<void> | undefined
  const cleanup = () =>
    (cleaned ??= (async () => {
      stopAllLoad()
      await stopAll()
      if (o.postgres && schemaCreated) {
        try {
          await Promise.race([dropPostgresSchema(POSTGRES_BASE, schema), sleep(15_000).then(() => Promise.reject(new Error('timed out')))])
        } catch (error) {
          log(`could not drop schema ${schema}: ${error instanceof Error ? error.message : String(error)} (drop it by hand)`)
        }
      }
      try {
        const lines = readFileSync(serverLog, 'utf8').split('\n').filter((l) => l.trim() !== '')
        if (lines.length > 0) {
          mkdirSync(resultsDir, { recursive: true })
          copyFileSync(serverLog, join(resultsDir, `${stamp}.server.log`))
          log(`the server wrote ${lines.length} log line(s) at warn or above: bench-results/${stamp}.server.log`)
        }
      } catch {
        // no log
      }
      rmSync(tmp, { recursive: true, force: true })
    })())
  process.on('exit', killAllNow)
  let interrupted = false
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      interrupted = true
      log(`${signal}: stopping`)
      const code = signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 129
      const force = setTimeout(() => process.exit(code), 20_000)
      force.unref()
      void cleanup().finally(() => process.exit(code))
    })
  }
  // bounded in time whatever happens: the planned measuring time, generously, plus seeding
  const scenarioCount = 9
  const plannedS = scenarioCount * (o.warmupS + o.durationS) + 4 * o.bracketS + (o.full ? o.soakS : 0) + (o.scaling ? 2 * (4 * o.warmupS + 3 * o.durationS) + 60 : 0)
  const budgetS = Math.ceil(plannedS * 1.5 + 180 + (o.seed > 0 ? 60 + o.seed / 2_000 : 0))
  const watchdog = setTimeout(() => {
    log(`still running after ${budgetS} s: giving up`)
    void cleanup().finally(() => process.exit(1))
  }, budgetS * 1000)
  watchdog.unref()

  const serverEnv: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!CONTROLLED_ENV.test(k)) serverEnv[k] = v
  Object.assign(serverEnv, {
    HOST,
    DATABASE_URL: databaseUrl,
    AUTH_RATE_LIMITS: 'off',
    AUTH_PASSWORD_POLICY: 'standard',
    LOG_LEVEL: 'warn',
    ...o.env,
  })
  // as `npm start` sets it (and the baseline gets it too): glibc's mmap threshold, unless --env chose one
  Object.assign(serverEnv, workerEnv(serverEnv))
  // As `npm start` runs it: with the server's V8 flags, unless --env NODE_OPTIONS=... chose others
  const serveArgs = (workers: number | 'auto' | undefined) => [
    ...workerExecArgv([], serverEnv['NODE_OPTIONS']),
    'dist/cli/main.js',
    'serve',
    ...(workers === undefined ? [] : ['--workers', String(workers)]),
  ]
  const serverArgs = serveArgs(o.workers)
  const load1 = loadavg()
  const results: ScenarioResult[] = []
  let seedResult: (SeedResult & { readonly migrateMs: number }) | undefined
  let saturation: Record<string, unknown> | undefined
  let soak: SoakResult | undefined
  let scaling: ScalingResult | undefined
  let baseline: ScenarioResult | undefined
  /** Every measurement of the bare route, in order: the first (the baseline row) and the brackets. */
  const baselineSlices: { readonly after: string; readonly durationS: number; readonly requestsPerSecond: number; readonly cpuPerRequestUs: number | undefined }[] = []
  let serverWorkers = 1
  let serverStartMs = 0
  let failure: string | undefined
  let failureStack: string | undefined
  const t0 = performance.now()

  try {
    log(`${o.full ? 'full' : 'short'} mode, ${o.postgres ? `PostgreSQL schema ${schema}` : `SQLite ${sqliteFile}`}, load average ${load1.map((l) => l.toFixed(2)).join(' ')}`)
    // The server runs as operators run it: compiled (npm start), with no TypeScript loader in its CPU or RSS.
    const tb = performance.now()
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
    log(`built dist/ in ${((performance.now() - tb) / 1000).toFixed(1)} s`)
    if (o.postgres) schemaCreated = true // from here on the server or the seeder may create it

    // ---- seed (before the server starts: the migrate command creates the schema) ----
    if (o.seed > 0) {
      const tm = performance.now()
      const migrate = spawnChild('migrate', ['dist/cli/main.js', 'migrate'], serverEnv, root, join(tmp, 'migrate.log'))
      const code = await Promise.race([migrate.exited, sleep(120_000).then(() => 'timeout')])
      if (code !== 0) throw new Error(`migrate failed (${code}): ${migrate.tail().trim()}`)
      const migrateMs = performance.now() - tm
      log(`seeding ${o.seed.toLocaleString('en')} users ...`)
      let lastReport = performance.now()
      const seeded = await seedUsers(
        o.postgres ? { kind: 'postgres', url: POSTGRES_BASE, schema } : { kind: 'sqlite', path: sqliteFile },
        o.seed,
        PASSWORD,
        (done) => {
          if (performance.now() - lastReport > 5_000) {
            lastReport = performance.now()
            log(`  ${done.toLocaleString('en')} users`)
          }
        },
      )
      seedResult = { ...seeded, migrateMs }
      const size = o.postgres ? '' : `, database ${mb(statSync(sqliteFile).size).toFixed(0)} MB`
      log(
        `seeded ${o.seed.toLocaleString('en')} users in ${(seeded.insertMs / 1000).toFixed(1)} s (${Math.round(seeded.usersPerSecond).toLocaleString('en')}/s; ` +
          `one argon2id hash ${seeded.hashMs.toFixed(0)} ms, migrate ${(migrateMs / 1000).toFixed(1)} s${size})`,
      )
    }

    // ---- servers ----
    const serverPort = await freePort()
    serverEnv['PORT'] = String(serverPort)
    const base = `http://${HOST}:${serverPort}`
    // the token issuer and audience; fixed, so a second server on the same database (--scaling) accepts the same tokens
    serverEnv['PUBLIC_URL'] = base
    server = spawnChild('server', serverArgs, serverEnv, root, serverLog)
    // The baseline starts alongside, with the number of processes the server is expected to run (its
    // --workers, else serve's default of one); restarted below with the number the server really runs.
    const barePort = await freePort()
    const startBare = (workers: number) =>
      spawnChild(
        'bare-server',
        ['scripts/bench/bare-server.mjs'],
        { ...serverEnv, PORT: String(barePort), BARE_WORKERS: String(workers) },
        root,
        bareLog,
      )
    let bareWorkers = o.workers === 'auto' ? availableParallelism() : (o.workers ?? 1)
    let bare = startBare(bareWorkers)
    const bareReady = waitReady(bare, `http://${HOST}:${barePort}/`, 60_000)
    bareReady.catch(() => {}) // awaited below
    serverStartMs = await waitReady(server, `${base}/healthz`, 90_000).catch((error: unknown) => {
      const text = error instanceof Error ? error.message : String(error)
      if (o.workers !== undefined && /unknown option '--workers'/i.test(text)) {
        throw new Error(`this version of serve has no --workers flag yet; run without --workers.\n${text}`)
      }
      throw error
    })
    const srv = server
    // primary + N workers, or one process
    const nodeProcs = [...treeRss(srv.pid).keys()].filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node'
      } catch {
        return false
      }
    }).length
    serverWorkers = nodeProcs > 1 ? nodeProcs - 1 : 1
    log(`server ready in ${(serverStartMs / 1000).toFixed(1)} s (${serverWorkers === 1 ? 'one process' : `primary + ${serverWorkers} workers`}) at ${base}`)
    await bareReady
    if (bareWorkers !== serverWorkers) {
      await stopChild(bare)
      bareWorkers = serverWorkers
      bare = startBare(bareWorkers)
      await waitReady(bare, `http://${HOST}:${barePort}/`, 60_000)
    }

    const common = { connections: o.connections }
    const bareSpec: Omit<LoadSpec, 'durationS'> = { ...common, origin: `http://${HOST}:${barePort}`, method: 'GET', path: '/' }
    const serverAlive = () => {
      if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
        throw new Error(`the server exited (${srv.proc.exitCode ?? srv.proc.signalCode}) during the run:\n${srv.tail().trim()}`)
      }
    }

    // ---- baseline ----
    log(`baseline: bare Fastify hello-world (${bareWorkers} process${bareWorkers === 1 ? '' : 'es'})`)
    const bareMeasured = await warmAndMeasure(client, bareSpec, o.warmupS, o.durationS, bare.pid, rssIntervalMs)
    const baselineDef = {
      name: 'baseline',
      description: `bare Fastify hello-world, ${bareWorkers} process${bareWorkers === 1 ? '' : 'es'}`,
      target: 'bare' as const,
      method: 'GET',
      path: '/',
      connections: o.connections,
      warmupS: o.warmupS,
      expectedStatus: 200,
    }
    baseline = toResult(baselineDef, bareMeasured, undefined)
    const first: BaselineSlice = { requestsPerSecond: baseline.figures.requestsPerSecond, cpuPerRequestUs: baseline.cpuPerRequestUs }
    baseline = { ...baseline, ratioToBaseline: 1, cpuRatioToBaseline: 1 }
    baselineSlices.push({ after: 'start', durationS: o.durationS, ...first })
    /** The baseline measured last: what a scenario without brackets compares with (the nearest in time). */
    let lastSlice = first
    /** The bare route again (already warm) for one slice, right after a slice of a bracketed scenario. */
    const baselineSlice = async (after: string, durationS: number) => {
      const slice = sliceOf(await warmAndMeasure(client, bareSpec, 0, durationS, bare.pid, rssIntervalMs))
      baselineSlices.push({ after, durationS, ...slice })
      return slice
    }
    // short mode stops the baseline once the bracketed scenarios are done; full mode measures it
    // again at the end as well (drift of the machine over ~12 minutes)
    let bareStopped = false
    const stopBare = async () => {
      if (bareStopped) return
      bareStopped = true
      await stopChild(bare)
    }
    if (!o.full && o.bracketS === 0) await stopBare()
    const bareAgain = async () => {
      log('baseline again, at the end')
      const again = await warmAndMeasure(client, bareSpec, o.warmupS, o.durationS, bare.pid, rssIntervalMs)
      results.push(toResult({ ...baselineDef, name: 'baseline (again, at the end)' }, again, referenceOf(first)))
      await stopBare()
    }

    // ---- the bench user, a token, a warm credential cache ----
    const username = `bench_${runId}`
    const created = await request(`${base}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: PASSWORD }),
    })
    expectStatus('POST /api/users (bench user)', created, 201)
    const userId = (created.json as { id: number }).id
    const passwordAuth = basic(username, PASSWORD)
    const newToken = async () => {
      const r = await request(`${base}/api/token`, { headers: { authorization: passwordAuth } })
      expectStatus('GET /api/token', r, 200)
      const token = (r.json as { token: string }).token
      // the first use verifies the signature and fills the verified-token cache
      for (let i = 0; i < 3; i++) expectStatus('GET /api/resource (Bearer)', await request(`${base}/api/resource`, { headers: { authorization: `Bearer ${token}` } }), 200)
      return token
    }
    for (let i = 0; i < 5; i++) expectStatus('GET /api/resource (Basic password)', await request(`${base}/api/resource`, { headers: { authorization: passwordAuth } }), 200)

    let probe = 0
    /** Waits until the hashing queue is empty: a fresh wrong password is answered only after the queue ahead of it. */
    const drainHashQueue = async () => {
      const started = performance.now()
      while (performance.now() - started < 30_000) {
        const r = await request(`${base}/api/resource`, { headers: { authorization: basic(`drain_${runId}_${probe++}`, 'not the password') }, timeoutMs: 30_000 })
        if (r.status === 401) return
        await sleep(200) // 503 overloaded: the queue is still full
      }
      log('warning: the hashing queue did not drain within 30 s')
    }

    const measure = async (
      def: Omit<ScenarioResult, 'figures' | 'ratioToBaseline' | 'maxRssMb' | 'maxProcessRssMb' | 'processes' | 'pidsSeen' | 'cpu' | 'cpuPerRequestUs' | 'cpuRatioToBaseline' | 'unexpected' | 'target' | 'connections' | 'warmupS'>,
      load: Pick<LoadSpec, 'headers' | 'vary'>,
      { hashBound = false, bracketed = false, prewarmed = false }: { hashBound?: boolean; bracketed?: boolean; prewarmed?: boolean } = {},
    ) => {
      if (!wanted(def.name)) return
      log(`${def.name}: ${def.description}`)
      const spec: Omit<LoadSpec, 'durationS'> = { ...common, ...load, origin: base, method: def.method === 'POST' ? 'POST' : 'GET', path: load.vary?.kind === 'random-id' ? `${load.vary.pathPrefix}1` : def.path }
      if (hashBound) {
        // the warm-up's queued hashes must not spill into the measured run
        if (o.warmupS > 0) await warmAndMeasure(client, spec, 0, o.warmupS, srv.pid, 1_000)
        await drainHashQueue()
      }
      let measured: Measured
      let reference = referenceOf(lastSlice)
      if (bracketed && o.bracketS > 0 && !bareStopped) {
        // B S B S B: each scenario slice between two baseline slices
        const sliceS = Math.max(1, Math.round(o.durationS / o.rounds))
        const bareS = Math.max(1, Math.round(o.bracketS / o.rounds))
        const parts: Measured[] = []
        const bases: BaselineSlice[] = [lastSlice]
        for (let r = 0; r < o.rounds; r++) {
          parts.push(await warmAndMeasure(client, spec, r === 0 && !prewarmed ? o.warmupS : 0, sliceS, srv.pid, rssIntervalMs))
          serverAlive()
          bases.push(await baselineSlice(o.rounds === 1 ? def.name : `${def.name} ${r + 1}/${o.rounds}`, bareS))
        }
        lastSlice = bases.at(-1) ?? lastSlice
        measured = { figures: mergeFigures(parts.map((p) => p.figures)), rss: mergeRss(parts.map((p) => ({ rss: p.rss, durationS: p.figures.durationS }))) }
        reference = { ...pairedReference(parts.map((p) => p.figures), bases), slices: bases }
      } else {
        measured = await warmAndMeasure(client, spec, hashBound ? 0 : o.warmupS, o.durationS, srv.pid, rssIntervalMs)
        serverAlive()
      }
      const result = toResult({ ...def, target: 'rest-auth', connections: spec.connections, warmupS: o.warmupS }, measured, reference)
      results.push(result)
      if (hashBound) await drainHashQueue()
      return result
    }

    // ---- the token path ----
    const bearerToken = await newToken()
    const basicToken = await newToken()
    const tokenPath: ReadonlyArray<readonly [string, string, Pick<LoadSpec, 'headers'>]> = [
      ['bearer', '/api/resource', { headers: { authorization: `Bearer ${bearerToken}` } }],
      ['basic-token', '/api/resource', { headers: { authorization: basic(basicToken, 'x') } }],
      ['basic-password', '/api/resource', { headers: { authorization: passwordAuth } }],
      ['user-by-id', `/api/users/${userId}`, {}],
    ]
    // The bare route had its warm-up and a whole measurement before its first bracket slice; the server
    // gets the same time on the four bracketed paths before the first of them is measured (JIT
    // compilation of the shared request path), instead of each path's own warm-up when its turn comes.
    const prewarmed = o.bracketS > 0 && o.warmupS > 0 && !bareStopped
    if (prewarmed) {
      const chosen = tokenPath.filter(([name]) => wanted(name))
      if (chosen.length > 0) log(`warming the server on ${chosen.map(([name]) => name).join(', ')}: ${o.warmupS} s each`)
      for (const [, path, load] of chosen) await warmAndMeasure(client, { ...common, ...load, origin: base, method: 'GET', path }, 0, o.warmupS, srv.pid, 1_000)
      serverAlive()
    }
    const bearer = await measure(
      { name: 'bearer', description: 'GET /api/resource, Authorization: Bearer <token>', method: 'GET', path: '/api/resource', expectedStatus: 200 },
      { headers: { authorization: `Bearer ${bearerToken}` } },
      { bracketed: true, prewarmed },
    )
    await measure(
      { name: 'basic-token', description: 'GET /api/resource, Basic <token>:x', method: 'GET', path: '/api/resource', expectedStatus: 200 },
      { headers: { authorization: basic(basicToken, 'x') } },
      { bracketed: true, prewarmed },
    )
    await measure(
      {
        name: 'basic-password',
        description: 'GET /api/resource, Basic username:password (credential cache warm)',
        method: 'GET',
        path: '/api/resource',
        expectedStatus: 200,
      },
      { headers: { authorization: passwordAuth } },
      { bracketed: true, prewarmed },
    )
    await measure(
      { name: 'user-by-id', description: `GET /api/users/${userId} (one user, no authentication)`, method: 'GET', path: `/api/users/${userId}`, expectedStatus: 200 },
      {},
      { bracketed: true, prewarmed },
    )
    if (!o.full) await stopBare()
    if (o.seed > 0) {
      const maxId = userId
      await measure(
        {
          name: 'user-by-random-id',
          description: `GET /api/users/<random id of 1..${maxId}> (spread over all users: mostly cache misses)`,
          method: 'GET',
          path: '/api/users/<random>',
          expectedStatus: 200,
        },
        { vary: { kind: 'random-id', pathPrefix: '/api/users/', max: maxId } },
      )
    }
    await measure(
      {
        name: 'token-issue',
        description: 'GET /api/token, Basic username:password (credential cache warm; signs a token, writes an audit row)',
        method: 'GET',
        path: '/api/token',
        expectedStatus: 200,
      },
      { headers: { authorization: passwordAuth } },
    )
    await measure(
      { name: 'register', description: 'POST /api/users, a new username per request (one argon2id hash each)', method: 'POST', path: '/api/users', expectedStatus: 201 },
      { vary: { kind: 'register', prefix: `r${runId}x`, password: PASSWORD } },
      { hashBound: true },
    )

    // ---- the token path while password checks saturate the hashing pool ----
    if (wanted('bearer-under-hash-load')) {
      log(`bearer-under-hash-load: Bearer while ${o.attackConnections} connections send wrong passwords for ever new usernames`)
      const token = await newToken()
      const attack = startLoad(client, {
        origin: base,
        method: 'GET',
        path: '/api/resource',
        connections: o.attackConnections,
        durationS: o.warmupS + o.durationS + 60, // stopped explicitly once the measured run ends
        vary: { kind: 'wrong-password', prefix: `ghost_${runId}_`, ...(o.seed > 0 ? { seeded: o.seed } : {}) },
      })
      let loaded: Measured
      try {
        await sleep(500) // let the queue fill before the warm-up
        loaded = await warmAndMeasure(
          client,
          { ...common, origin: base, method: 'GET', path: '/api/resource', headers: { authorization: `Bearer ${token}` } },
          Math.max(1, o.warmupS),
          o.durationS,
          srv.pid,
          rssIntervalMs,
        )
      } finally {
        attack.stop()
      }
      const attackFigures = await attack.result
      serverAlive()
      const under = toResult(
        {
          name: 'bearer-under-hash-load',
          description: 'GET /api/resource with Bearer while the hashing pool is saturated',
          target: 'rest-auth',
          method: 'GET',
          path: '/api/resource',
          connections: o.connections,
          warmupS: Math.max(1, o.warmupS),
          expectedStatus: 200,
        },
        loaded,
        referenceOf(lastSlice),
        true,
      )
      results.push(under)
      results.push(
        toResult(
          {
            name: 'hash-load (the attacker)',
            description: `GET /api/resource, Basic <${o.seed > 0 ? 'random seeded user' : 'new unknown user'}>:<wrong password>, ${o.attackConnections} connections, whole window`,
            target: 'rest-auth',
            method: 'GET',
            path: '/api/resource',
            connections: o.attackConnections,
            warmupS: 0,
            expectedStatus: 401,
            note: '401 expected; 503 = hashing queue full',
          },
          { figures: attackFigures, rss: { ...loaded.rss, samples: [] } },
          referenceOf(lastSlice),
          true,
        ),
      )
      const idle = bearer?.figures
      saturation = {
        attackConnections: o.attackConnections,
        idleP99Ms: idle?.latencyMs.p99,
        loadedP99Ms: under.figures.latencyMs.p99,
        p99Ratio: idle === undefined ? undefined : under.figures.latencyMs.p99 / Math.max(idle.latencyMs.p99, 1e-9),
        idleRequestsPerSecond: idle?.requestsPerSecond,
        loadedRequestsPerSecond: under.figures.requestsPerSecond,
        requestsPerSecondRatio: idle === undefined ? undefined : under.figures.requestsPerSecond / idle.requestsPerSecond,
        attackRequestsPerSecond: attackFigures.requestsPerSecond,
        attackStatusCodes: attackFigures.statusCodes,
      }
      if (o.full) await drainHashQueue() // the soak follows
    }

    // ---- --workers N against one process, on the same database ----
    if (o.scaling) {
      const many = Math.max(2, availableParallelism())
      log(`scaling: Bearer on one process against ${many} workers in alternating slices, one request at a time per connection, then ${o.pipeline} pipelined`)
      const started: Child[] = []
      type Target = { readonly origin: string; readonly pid: number }
      /** The server already running if it runs `workers`, else another on the same database and PUBLIC_URL. */
      const serverWith = async (workers: number): Promise<Target> => {
        if (workers === serverWorkers) return { origin: base, pid: srv.pid }
        const port = await freePort()
        const child = spawnChild(`server --workers ${workers}`, serveArgs(workers), { ...serverEnv, PORT: String(port) }, root, join(tmp, `server-${workers}.log`))
        started.push(child)
        await waitReady(child, `http://${HOST}:${port}/healthz`, 90_000)
        return { origin: `http://${HOST}:${port}`, pid: child.pid }
      }
      try {
        const one = await serverWith(1)
        const more = await serverWith(many)
        const headers = { authorization: `Bearer ${await newToken()}` }
        for (const target of [one, more]) expectStatus(`GET ${target.origin}/api/resource (Bearer)`, await request(`${target.origin}/api/resource`, { headers }), 200)
        const sliceS = Math.max(1, Math.round(o.durationS / o.rounds))
        const specOf = (target: Target, pipeline: number): Omit<LoadSpec, 'durationS'> => ({ ...common, origin: target.origin, method: 'GET', path: '/api/resource', headers, pipeline })
        const run = async (target: Target, pipeline: number) => {
          const m = await warmAndMeasure(client, specOf(target, pipeline), 0, sliceS, target.pid, rssIntervalMs)
          const f = m.figures
          // a pipelined run tells only answers below 400 from the rest; each server answered 200 to this header before
          const unexpected = f.requests - (f.statusCodes['200'] ?? f.statusCodes[PIPELINED_STATUSES.below400] ?? 0) + f.errors
          if (unexpected > 0) throw new Error(`scaling: ${unexpected} of ${f.requests} answers from ${target.origin} were not 200 (${statuses(f)})`)
          return m
        }
        const shapes: ScalingShape[] = []
        for (const pipeline of [1, o.pipeline]) {
          // O M O M O: the many-worker slices between one-process slices
          for (const target of [more, one]) if (o.warmupS > 0) await warmAndMeasure(client, specOf(target, pipeline), 0, o.warmupS, target.pid, 1_000)
          const ones = [await run(one, pipeline)]
          const mores: Measured[] = []
          for (let r = 0; r < o.rounds; r++) {
            mores.push(await run(more, pipeline))
            ones.push(await run(one, pipeline))
          }
          serverAlive()
          shapes.push(compareScaling(pipeline, ones, mores))
        }
        scaling = { workers: many, sliceS, rounds: o.rounds, shapes }
      } finally {
        for (const child of started) await stopChild(child)
      }
    }

    // ---- full mode: is RSS flat under a long Bearer run? ----
    if (o.full && wanted('soak')) {
      log(`soak: Bearer for ${o.soakS} s, RSS every 10 s`)
      const token = await newToken()
      const sampler = sampleRss(srv.pid, 10_000, (s: RssSample) => log(`  soak ${Math.round(s.atMs / 1000)} s: RSS ${mb(s.totalBytes).toFixed(1)} MB`))
      const run = startLoad(client, { ...common, origin: base, method: 'GET', path: '/api/resource', durationS: o.soakS, headers: { authorization: `Bearer ${token}` } })
      const f = await run.result.finally(() => sampler.stop())
      const summary = sampler.stop()
      serverAlive()
      soak = soakResult(summary.samples, f, o.soakS)
    }
    if (o.full) await bareAgain()
  } catch (error) {
    failure = interrupted ? 'interrupted' : error instanceof Error ? error.message : String(error)
    failureStack = error instanceof Error ? error.stack : undefined
  }

  await cleanup()
  clearTimeout(watchdog)
  if (interrupted) return 130
  const totalS = (performance.now() - t0) / 1000
  const load2 = loadavg()

  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    totalSeconds: totalS,
    mode: o.full ? 'full' : 'short',
    failure,
    failureStack,
    options: { ...o, only: o.only === undefined ? undefined : [...o.only] },
    machine: {
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model,
      memoryMb: Math.round(mb(totalmem())),
      node: process.version,
      loadAverageStart: load1,
      loadAverageEnd: load2,
      uvThreadpoolSize: process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)',
    },
    server: {
      command: `node ${serverArgs.join(' ')}`,
      database: o.postgres ? `postgres (schema ${schema}, dropped)` : 'sqlite (temporary file)',
      env: { AUTH_RATE_LIMITS: 'off', AUTH_PASSWORD_POLICY: 'standard', LOG_LEVEL: 'warn', HOST },
      workers: serverWorkers,
      startSeconds: serverStartMs / 1000,
    },
    load: { client, version: clientVersion, ...(client === 'wrk' ? { threads: 1 } : { pipelining: 1 }), connections: o.connections, warmupS: o.warmupS, durationS: o.durationS },
    seed: seedResult,
    baseline,
    baselineSlices,
    scenarios: results,
    saturation,
    soak,
    scaling,
  }
  mkdirSync(join(root, 'bench-results'), { recursive: true })
  const jsonFile = join('bench-results', `${stamp}.json`)
  writeFileSync(join(root, jsonFile), `${JSON.stringify(report, null, 2)}\n`)
  process.stdout.write(markdown(report, baseline, baselineSlices, results, saturation, soak, seedResult, jsonFile, scaling))
  if (failure !== undefined) process.stdout.write(`**The run failed:** ${failure.split('\n')[0]}\n\n`)
  if (failure !== undefined) {
    log(`FAILED: ${failure}`)
    return 1
  }
  return 0
}

function soakResult(samples: readonly RssSample[], f: Figures, durationS: number): SoakResult {
  const points = samples.map((s) => ({ atS: Math.round(s.atMs / 1000), rssMb: mb(s.totalBytes), processes: s.processes }))
  const steady = points.filter((p) => p.atS >= 60)
  const use = steady.length >= 3 ? steady : points
  const n = use.length
  const mx = use.reduce((a, p) => a + p.atS, 0) / n
  const my = use.reduce((a, p) => a + p.rssMb, 0) / n
  const sxy = use.reduce((a, p) => a + (p.atS - mx) * (p.rssMb - my), 0)
  const sxx = use.reduce((a, p) => a + (p.atS - mx) ** 2, 0)
  const slopeMbPerMin = sxx > 0 ? (sxy / sxx) * 60 : 0
  const firstMb = points[0]?.rssMb ?? 0
  const lastMb = points.at(-1)?.rssMb ?? 0
  const maxMb = Math.max(0, ...points.map((p) => p.rssMb))
  // flat: the steady-state trend would add less than max(5 MB, 5 %) over the soak (a falling trend is
  // the GC's sawtooth ending low, not a leak)
  const flat = slopeMbPerMin * (durationS / 60) < Math.max(5, my * 0.05)
  return { durationS, intervalS: 10, figures: f, samples: points, firstMb, lastMb, maxMb, slopeMbPerMin, flat }
}

// ---- markdown ----

const fmt = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '-' : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }))

function statuses(f: Figures): string {
  return Object.entries(f.statusCodes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, count]) => `${code}×${count}`)
    .join(' ')
}

function row(r: ScenarioResult): string {
  const flag = r.unexpected > 0 ? ' ⚠' : ''
  const rss = r.processes > 1 ? `${fmt(r.maxRssMb, 1)} (${r.processes} procs, largest ${fmt(r.maxProcessRssMb, 1)})` : fmt(r.maxRssMb, 1)
  return `| ${r.name}${flag} | ${fmt(r.figures.requestsPerSecond)} | ${fmt(r.ratioToBaseline, 2)} | ${fmt(r.figures.latencyMs.p50, 1)} | ${fmt(r.figures.latencyMs.p99, 1)} | ${rss} | ${r.figures.errors + r.figures.timeouts} | ${r.figures.non2xx} | ${statuses(r.figures)} | ${fmt(r.cpuPerRequestUs)} | ${fmt(r.cpuRatioToBaseline, 2)} | ${fmt(r.cpu.serverPct)}/${fmt(r.cpu.benchPct)}/${fmt(r.cpu.otherPct)} |`
}

function markdown(
  report: { mode: string; totalSeconds: number; machine: { cpus: number; node: string; loadAverageStart: number[]; loadAverageEnd: number[] }; server: { database: string; workers: number; startSeconds: number }; load: { client: LoadClient; version: string; connections: number; warmupS: number; durationS: number } },
  baseline: ScenarioResult | undefined,
  baselineSlices: readonly { readonly after: string; readonly durationS: number; readonly requestsPerSecond: number }[],
  results: readonly ScenarioResult[],
  saturation: Record<string, unknown> | undefined,
  soak: SoakResult | undefined,
  seed: (SeedResult & { migrateMs: number }) | undefined,
  jsonFile: string,
  scaling?: ScalingResult,
): string {
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ')
  const lines = [
    '',
    `## rest-auth benchmark (${report.mode} mode)`,
    '',
    `${report.server.database}, server ${report.server.workers === 1 ? 'one process' : `${report.server.workers} workers`} (ready in ${report.server.startSeconds.toFixed(1)} s); ` +
      `${report.machine.cpus} CPUs, Node ${report.machine.node}, load average ${la(report.machine.loadAverageStart)} → ${la(report.machine.loadAverageEnd)}; ` +
      `${report.load.version}${report.load.client === 'wrk' ? ', one thread' : ''}, ${report.load.connections} connections, one request at a time per connection, ${report.load.warmupS} s warm-up + ${report.load.durationS} s per scenario; total ${report.totalSeconds.toFixed(0)} s`,
    '',
  ]
  if (seed !== undefined) {
    lines.push(
      `Seeded ${seed.users.toLocaleString('en')} users in ${(seed.insertMs / 1000).toFixed(1)} s (${Math.round(seed.usersPerSecond).toLocaleString('en')} users/s, batches of 10,000; hash ${seed.hashMs.toFixed(0)} ms, migrate ${(seed.migrateMs / 1000).toFixed(1)} s).`,
      '',
    )
  }
  lines.push(
    '| scenario | req/s | × baseline | p50 ms | p99 ms | max RSS MB | errors | non-2xx | statuses | server CPU µs/req | × baseline by CPU | CPU % server/bench/other |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|',
  )
  if (baseline !== undefined) lines.push(row(baseline))
  for (const r of results) lines.push(row(r))
  lines.push('')
  if (baselineSlices.length > 1) {
    const rps = baselineSlices.map((b) => b.requestsPerSecond)
    lines.push(
      `"× baseline" is against the bare route measured next to each scenario: ${[...new Set(baselineSlices.slice(1).map((b) => b.after.replace(/ \d+\/\d+$/, '')))].join(', ')} ` +
        `ran in slices between slices of the bare route (${baselineSlices[1]?.durationS ?? 0} s each), each compared with the mean of the bare slices on either side; later scenarios with the last one. ` +
        `The bare route in order (req/s): ${baselineSlices.map((b) => `${fmt(b.requestsPerSecond)}${b.after === 'start' ? '' : ` (after ${b.after})`}`).join(' → ')}; ` +
        `spread ${fmt(Math.min(...rps))}–${fmt(Math.max(...rps))} (${fmt((Math.max(...rps) / Math.min(...rps) - 1) * 100)} % of the machine's drift within the run).`,
      '',
    )
  }
  if (saturation !== undefined) {
    const s = saturation as { idleP99Ms?: number; loadedP99Ms: number; p99Ratio?: number; idleRequestsPerSecond?: number; loadedRequestsPerSecond: number; requestsPerSecondRatio?: number; attackRequestsPerSecond: number; attackConnections: number }
    lines.push(
      `Token path while ${s.attackConnections} connections saturate the hashing pool: p99 ${fmt(s.loadedP99Ms, 1)} ms vs ${fmt(s.idleP99Ms, 1)} ms idle (**× ${fmt(s.p99Ratio, 2)}**), ` +
        `${fmt(s.loadedRequestsPerSecond)} vs ${fmt(s.idleRequestsPerSecond)} req/s (× ${fmt(s.requestsPerSecondRatio, 2)}); the attacker got ${fmt(s.attackRequestsPerSecond, 1)} answers/s.`,
      '',
    )
  }
  if (soak !== undefined) {
    lines.push(
      `Soak (Bearer, ${soak.durationS} s, ${fmt(soak.figures.requestsPerSecond)} req/s, p99 ${fmt(soak.figures.latencyMs.p99, 1)} ms): RSS ${fmt(soak.firstMb, 1)} → ${fmt(soak.lastMb, 1)} MB (max ${fmt(soak.maxMb, 1)}), ` +
        `trend after the first minute ${fmt(soak.slopeMbPerMin, 2)} MB/min: ${soak.flat ? 'flat' : '**growing**'}.`,
      '',
      `RSS every ${soak.intervalS} s (MB): ${soak.samples.map((p) => fmt(p.rssMb, 0)).join(' ')}`,
      '',
    )
  }
  if (scaling !== undefined) lines.push(...scalingMarkdown(scaling, report.load.client))
  for (const r of [...(baseline === undefined ? [] : [baseline]), ...results]) {
    if (r.pidsSeen > r.processes) lines.push(`**${r.name}: ${r.pidsSeen - r.processes} server process(es) died and were replaced during the run.**`, '')
  }
  lines.push(
    `CPU %: shares of the whole machine (100 = all ${report.machine.cpus} cores) while measuring: the server's processes / this benchmark (with its load generator: ${report.load.client}) / everything else (other work on the machine: the noise). ` +
      `"× baseline by CPU" = the baseline's server CPU per request / this scenario's: it moves much less with that noise than req/s does (not defined while two loads share the window).`,
    '',
  )
  const flagged = results.filter((r) => r.unexpected > 0)
  if (flagged.length > 0 || (baseline?.unexpected ?? 0) > 0) {
    lines.push('⚠ = responses other than the expected status, or connection errors (see "statuses").', '')
  }
  lines.push(`Results: ${jsonFile}`, '')
  return `${lines.join('\n')}\n`
}

interface ScalingResult {
  readonly workers: number
  readonly sliceS: number
  readonly rounds: number
  readonly shapes: readonly ScalingShape[]
}

function scalingMarkdown(s: ScalingResult, client: LoadClient): string[] {
  const cpu = (c: CpuShares) => `${fmt(c.serverPct)}/${fmt(c.benchPct)}/${fmt(c.otherPct)}`
  return [
    `### \`--workers ${s.workers}\` against one process (Bearer, \`GET /api/resource\`)`,
    '',
    `| load | one process req/s | ${s.workers} workers req/s | × one process | CPU % server/bench/other, one | CPU % server/bench/other, ${s.workers} |`,
    '|---|---:|---:|---:|---:|---:|',
    ...s.shapes.map(
      (shape) =>
        `| ${shape.pipeline === 1 ? 'one request at a time per connection' : `${shape.pipeline} requests pipelined per connection`} | ${fmt(shape.oneReference)} | ${fmt(shape.many.requestsPerSecond)} | **${fmt(shape.ratio, 2)}** | ${cpu(shape.oneCpu)} | ${cpu(shape.manyCpu)} |`,
    ),
    '',
    `Two servers on the same database, measured in alternating ${s.sliceS} s slices (one, ${s.workers}, one, ...: ${s.rounds} slices of ${s.workers} workers), each compared with the one-process slices on either side. ` +
      `One process in order (req/s): ${s.shapes.map((shape) => `${shape.pipeline === 1 ? 'unpipelined' : `pipelined ${shape.pipeline}`} ${shape.oneSlices.map((r) => fmt(r)).join(' → ')}`).join('; ')}. ` +
      `With one request at a time, ${client} takes about as much CPU per request as the server, and it runs on the same cores: what more workers can show is capped by what the load generator leaves them. ` +
      'Pipelined, it writes each batch at once and leaves the server more of the machine; the server still answers every request on its own, in order.',
    '',
  ]
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  },
)
