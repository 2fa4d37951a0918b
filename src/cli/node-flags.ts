/**
 * V8 flags the server's processes run with. V8 fixes its heap layout when the process starts, so these
 * are command-line flags: `npm start` passes them to node, and the cluster primary to every worker.
 *
 * `--max-semi-space-size=4`: V8 lets the young generation grow to 16 MB per semi-space (up to 48 MB of
 * RSS) under a steady request load. Request garbage dies young, so 4 MB per semi-space scavenges more
 * often at no cost we could measure (`npm run bench`: req/s and CPU per request within the run-to-run
 * noise) and keeps about 25 MB of RSS off every process (bearer load: 134 → 110 MB; registrations,
 * with argon2's 19 MiB per hash: 173 → 149 MB).
 */
export const SEMI_SPACE_FLAG = '--max-semi-space-size'
export const SEMI_SPACE_MB = 4

/** True when the arguments (execArgv, or NODE_OPTIONS split on spaces) already set the semi-space size. */
function setsSemiSpace(args: readonly string[]): boolean {
  return args.some((arg) => arg === SEMI_SPACE_FLAG || arg.startsWith(`${SEMI_SPACE_FLAG}=`) || arg === '--max_semi_space_size' || arg.startsWith('--max_semi_space_size='))
}

/**
 * The execArgv for a worker: the primary's own, plus our semi-space size unless the operator chose one
 * (in the primary's execArgv or in NODE_OPTIONS, which workers inherit).
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const fromEnv = (nodeOptions ?? '').split(/\s+/).filter((arg) => arg !== '')
  if (setsSemiSpace(execArgv) || setsSemiSpace(fromEnv)) return [...execArgv]
  return [...execArgv, `${SEMI_SPACE_FLAG}=${SEMI_SPACE_MB}`]
}
