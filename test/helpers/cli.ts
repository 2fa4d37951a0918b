/**
 * The real CLI as a child process (`node --import tsx src/cli/main.ts <args>`), for tests of the
 * process edge: exit codes, signals, stderr. The child gets a minimal environment (PATH and HOME
 * plus what the test passes), so the parent's variables never leak into its configuration.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const CLI_ARGS = ['--import', 'tsx', 'src/cli/main.ts'] as const

/** A port that was free a moment ago: listen on 0, read the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error('no port'))
        return
      }
      server.close(() => resolve(address.port))
    })
  })
}

export function childEnv(env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {}
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'SYSTEMROOT']) {
    const value = process.env[key]
    if (value !== undefined) base[key] = value
  }
  return { ...base, ...env }
}

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a CLI command to completion. */
export function runCli(args: readonly string[], env: Readonly<Record<string, string>> = {}, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI_ARGS, ...args], { cwd: REPO_ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

export interface CliServer {
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves when the process has exited (and its output is read). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Sends SIGKILL if still running and waits for the exit. */
  kill(): Promise<void>
}

export interface StartCliOptions {
  readonly env: Readonly<Record<string, string>>
  /** Extra arguments after `serve`. */
  readonly args?: readonly string[]
  /** Port to wait on; defaults to env PORT. */
  readonly port?: number
  readonly readyTimeoutMs?: number
}

/** Starts `rest-auth serve`, waits until `/healthz` answers 200, kills the child after the test. */
export async function startCliServer(t: TestContext, options: StartCliOptions): Promise<CliServer> {
  const port = options.port ?? Number(options.env['PORT'])
  if (!Number.isInteger(port) || port <= 0) throw new TypeError('startCliServer needs a port')
  const child = spawn(process.execPath, [...CLI_ARGS, 'serve', ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  )
  let done = false
  void exited.then(() => (done = true))
  const kill = async () => {
    if (!done) child.kill('SIGKILL')
    await exited
  }
  t.after(kill)

  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000)
  for (;;) {
    if (done) throw new Error(`rest-auth serve exited before it was ready\nstdout: ${stdout}\nstderr: ${stderr}`)
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      if (res.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await kill()
      throw new Error(`rest-auth serve did not answer /healthz in time\nstdout: ${stdout}\nstderr: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return { url, port, child, stdout: () => stdout, stderr: () => stderr, exited, kill }
}

export interface HttpTranscript {
  readonly statusLine: string
  readonly status: number
  /** Header names lower-cased; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** Runs the real `curl` binary with exactly these arguments and parses its `-i` output. */
export function curl(args: readonly string[]): Promise<HttpTranscript> {
  return new Promise((resolve, reject) => {
    execFile('curl', [...args], { encoding: 'utf8', timeout: 15_000 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`curl ${args.join(' ')} failed: ${error.message}\n${stderr}`))
        return
      }
      resolve(parseCurlInclude(stdout))
    })
  })
}

/** `curl -i` output: status line, headers, blank line, body (CRLF on the wire). */
export function parseCurlInclude(output: string): HttpTranscript {
  const split = output.indexOf('\r\n\r\n')
  if (split < 0) throw new Error(`no header/body separator in curl output:\n${output}`)
  const [statusLine = '', ...lines] = output.slice(0, split).split('\r\n')
  const match = /^HTTP\/[\d.]+ (\d{3})/.exec(statusLine)
  if (match === null) throw new Error(`not a status line: ${statusLine}`)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return { statusLine, status: Number(match[1]), headers, body: output.slice(split + 4) }
}
