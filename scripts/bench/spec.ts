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
}

/** The seeded users' names (scripts/bench/seed.ts writes them). */
export function seedUsername(i: number): string {
  return `seed${i}`
}

export const basicHeader = (user: string, password: string): string =>
  `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`
