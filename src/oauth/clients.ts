/**
 * OAuth 2 clients (RFC 6749 §2): service clients with a secret, created with the CLI. The secret is
 * 256 bits from the CSPRNG, shown once, and stored as SHA-256 (a random 256-bit secret needs no slow
 * hash); comparison is constant-time over equal-length digests.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { RestAuthError } from '../errors.ts'
import type { OAuthClient } from '../store/store.ts'

export const CLIENT_GRANT_TYPES = ['client_credentials', 'password', 'refresh_token'] as const
export type ClientGrantType = (typeof CLIENT_GRANT_TYPES)[number]

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/

export function parseScope(raw: string | undefined): string[] {
  if (raw === undefined) return []
  const tokens = raw.split(' ').filter((t) => t !== '')
  for (const t of tokens) {
    if (!SCOPE_TOKEN.test(t)) throw new RestAuthError('invalid_scope', 'A scope holds a character RFC 6749 §3.3 does not allow.')
  }
  return [...new Set(tokens)]
}

export function newClientId(): string {
  return `ra_${randomBytes(12).toString('base64url')}`
}

export function newClientSecret(): string {
  return randomBytes(32).toString('base64url')
}

export function hashClientSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}

/** Constant-time: both sides are 32-byte digests. */
export function clientSecretMatches(client: OAuthClient, presented: string): boolean {
  const expected = Buffer.from(client.secretHash, 'hex')
  const actual = createHash('sha256').update(presented, 'utf8').digest()
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}

export interface ClientSpec {
  readonly name: string
  readonly scopes: readonly string[]
  readonly grantTypes: readonly string[]
}

/** Validates a client definition (CLI input). Throws TypeError with a message for the operator. */
export function checkClientSpec(spec: ClientSpec): void {
  if (spec.name.trim() === '' || spec.name.length > 100) throw new TypeError('client name must be 1 to 100 characters')
  for (const g of spec.grantTypes) {
    if (!(CLIENT_GRANT_TYPES as readonly string[]).includes(g)) {
      throw new TypeError(`unknown grant type "${g}" (use ${CLIENT_GRANT_TYPES.join(', ')})`)
    }
  }
  if (spec.grantTypes.length === 0) throw new TypeError('a client needs at least one grant type')
  for (const s of spec.scopes) if (!SCOPE_TOKEN.test(s)) throw new TypeError(`invalid scope "${s}"`)
}

/** RFC 6749 §3.3: the granted scope is the requested one, which must be a subset of the client's. */
export function grantScopes(client: OAuthClient, requested: readonly string[]): string[] {
  if (requested.length === 0) return [...client.scopes]
  const allowed = new Set(client.scopes)
  const refused = requested.filter((s) => !allowed.has(s))
  if (refused.length > 0) throw new RestAuthError('invalid_scope', 'The client may not request some of these scopes.')
  return [...requested]
}
