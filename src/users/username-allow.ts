/**
 * `AUTH_USERNAME_ALLOW` (pure): glob patterns (`*` any run, `?` one character) that a self-registered
 * username must match, compared in the RFC 8265 canonical form (so case and width do not matter).
 */
import { canonicalizeUsername } from '../auth/username.ts'

export type UsernameAllowList = (canonical: string) => boolean

function globToRegExp(pattern: string): RegExp {
  const canonical = canonicalizeUsername(pattern)
  let source = ''
  for (const ch of canonical) {
    if (ch === '*') source += '.*'
    else if (ch === '?') source += '.'
    // '-' and '/' are not escaped: the `u` flag refuses needless escapes, and neither is special here
    else source += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${source}$`, 'su')
}

/** An empty list allows every username. */
export function compileAllowList(patterns: readonly string[]): UsernameAllowList {
  if (patterns.length === 0) return () => true
  const regexps = patterns.map(globToRegExp)
  return (canonical) => regexps.some((r) => r.test(canonical))
}
