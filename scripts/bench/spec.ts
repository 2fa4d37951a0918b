/**
 * What one load run sends, independent of the load generator that sends it (wrk or autocannon).
 * Pure data: the generators in wrk.ts and load.ts turn it into their own form.
 */

/** Requests that differ from one to the next. */
export type Vary =
  /** POST a JSON body {username: <prefix><unique>, password}: a new user per request. */
  | { readonly kind: 'register'; readonly prefix: string; readonly password: string }
  /** GET <pathPrefix><random 1..max>. */
  | { readonly kind: 'random-id'; readonly pathPrefix: string; readonly max: number }
  /**
   * Authorization: Basic <user>:<wrong password, new each time>, where user is <prefix><unique> (a new
   * unknown user per request) or, with `seeded`, seed<random 1..seeded> (an existing one).
   */
  | { readonly kind: 'wrong-password'; readonly prefix: string; readonly seeded?: number }

export interface LoadSpec {
  /** http://host:port, no path. */
  readonly origin: string
  readonly method: 'GET' | 'POST'
  readonly path: string
  readonly headers?: Readonly<Record<string, string>>
  readonly connections: number
  readonly durationS: number
  readonly vary?: Vary
  /**
   * Requests each connection sends at once before it waits for their answers (HTTP/1.1 pipelining;
   * default 1: one at a time). Only for fixed requests (no `vary`). The server handles them one after
   * the other as ever; the load generator makes one write per batch instead of one per request, so
   * on a machine whose cores it shares with the server it leaves the server more of them.
   */
  readonly pipeline?: number
}

/** The pipelining depth of a spec: an integer >= 1; refused for varying requests. */
export function pipelineDepth(spec: Pick<LoadSpec, 'pipeline' | 'vary'>): number {
  const depth = spec.pipeline ?? 1
  if (!Number.isInteger(depth) || depth < 1) throw new Error(`pipeline must be an integer >= 1, got ${depth}`)
  if (depth > 1 && spec.vary !== undefined) throw new Error('pipelining is for fixed requests only')
  return depth
}

/** The seeded users' names (scripts/bench/seed.ts writes them). */
export function seedUsername(i: number): string {
  return `seed${i}`
}

export const basicHeader = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`
