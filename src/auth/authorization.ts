/**
 * Parsing of the `Authorization` request header (pure: no I/O, no store, no crypto).
 *
 * Accepts the two schemes rest-auth speaks, `Basic` (RFC 7617) and `Bearer` (RFC 6750), and builds the
 * `WWW-Authenticate` challenges. Deciding which credentials win (contract part 1: Bearer, then a token in the
 * Basic username, then username/password) is the caller's job; `looksLikeJwt` helps it with the second rule.
 *
 * No error thrown here carries the credentials or the token, in `message` or in `internal`.
 */

import { RestAuthError } from '../errors.ts'

/** Cap on the `Authorization` header value, in bytes as received (security baseline: 8 KiB). */
export const AUTHORIZATION_MAX_BYTES = 8192

export type ParsedAuthorization =
  | { readonly scheme: 'basic'; readonly username: string; readonly password: string }
  | { readonly scheme: 'bearer'; readonly token: string }

/** RFC 9110 §5.6.2 tchar, the characters of an auth-scheme token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
/** '=', base64's padding. */
const EQUALS = 0x3d
/** Characters outside the latin-1 range: such a string did not come off the wire as bytes. */
const ABOVE_LATIN1 = /[^\u0000-\u00ff]/
/** RFC 6750 §3: error_description and scope values are limited to %x20-21 / %x23-5B / %x5D-7E. */
const NOT_CHALLENGE_VALUE_CHAR = /[^\u0020-\u0021\u0023-\u005b\u005d-\u007e]/g

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function malformed(message: string, internal: string): RestAuthError {
  return new RestAuthError('authorization_malformed', message, { internal })
}

function bearerMalformed(message: string, internal: string): RestAuthError {
  return new RestAuthError('bearer_malformed', message, { internal })
}

/**
 * Size of the header value in bytes. Node hands header values over as latin-1 strings (one character per
 * byte received), so for those the length is the byte count; a string with characters above U+00FF cannot
 * have come off the wire like that and is measured as UTF-8.
 */
function exceedsCap(header: string): boolean {
  if (header.length > AUTHORIZATION_MAX_BYTES) return true
  // UTF-8 takes at most 3 bytes per UTF-16 code unit: a value this short fits however it is read,
  // and the scan below (a regular expression over every character) is skipped on every usual header
  if (header.length * 3 <= AUTHORIZATION_MAX_BYTES) return false
  return ABOVE_LATIN1.test(header) && Buffer.byteLength(header, 'utf8') > AUTHORIZATION_MAX_BYTES
}

/**
 * The value without the optional whitespace (SP / HTAB, RFC 9110 §5.6.3 OWS) around it. A loop, not a
 * regular expression: `/^[ \t]+|[ \t]+$/` tries its second branch at every position of a 400-character
 * token, on every request.
 */
function trimOws(value: string): string {
  let start = 0
  let end = value.length
  while (start < end && isOws(value.charCodeAt(start))) start++
  while (end > start && isOws(value.charCodeAt(end - 1))) end--
  return start === 0 && end === value.length ? value : value.slice(start, end)
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09
}

/**
 * Where Basic credentials are decoded: one buffer for the process, written, read and wiped again within
 * one synchronous call. `Buffer.from(text, 'base64')` took its bytes from Node's shared 8 KiB pool, so a
 * token sent as the Basic username (400+ bytes) used up a pool every ~20 requests: external memory, which
 * V8 counts towards its full mark-compact collections (callgrind showed them on this path and not on the
 * Bearer path; they still occur in some runs). Large enough for any header under the cap.
 */
const SCRATCH = Buffer.alloc(Math.ceil(AUTHORIZATION_MAX_BYTES / 4) * 3)

/**
 * Strict RFC 4648 base64 (alphabet only, padding optional but correct if present, canonical final
 * bits), decoded and read as UTF-8 (RFC 7617 §2.1); bytes that are not valid UTF-8 are read as latin-1,
 * as Flask-HTTPAuth does.
 */
export function decodeStrictBase64(text: string): string | undefined {
  // Node's decoder is lenient (it skips characters outside the alphabet, takes '-' and '_', stops at
  // '='), so strictness is checked by the round trip: the text must be the canonical encoding of the
  // bytes it decoded to, with or without its padding. One pass in C++ each way instead of a regular
  // expression over the text (~400 characters for a token sent as the Basic username).
  const n = SCRATCH.write(text, 0, 'base64')
  try {
    if (n === 0) return undefined
    const canonical = SCRATCH.toString('base64', 0, n)
    if (text !== canonical) {
      const padding = canonical.charCodeAt(canonical.length - 2) === EQUALS ? 2 : canonical.charCodeAt(canonical.length - 1) === EQUALS ? 1 : 0
      if (padding === 0 || text.length !== canonical.length - padding || !canonical.startsWith(text)) return undefined
    }
    // Without U+FFFD in the lenient UTF-8 reading, every sequence was valid and the reading is exact;
    // with one (a malformed sequence, or an encoded U+FFFD), the strict decoder decides.
    const lenient = SCRATCH.toString('utf8', 0, n)
    if (!lenient.includes('\uFFFD')) return lenient
    try {
      return utf8.decode(SCRATCH.subarray(0, n))
    } catch {
      return SCRATCH.toString('latin1', 0, n)
    }
  } finally {
    SCRATCH.fill(0, 0, n) // no password stays behind in it
  }
}

/** The 6-bit value of each base64 character (RFC 4648 §4, the standard alphabet), -1 for the others. */
const SEXTET = (() => {
  const table = new Int8Array(128).fill(-1)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i
  return table
})()

function sextet(text: string, i: number): number {
  const code = text.charCodeAt(i)
  return code < 128 ? (SEXTET[code] as number) : -1
}

/**
 * The number of bytes `text` decodes to under `decodeStrictBase64`'s rules (alphabet only, padding
 * optional but correct if present, canonical final bits), or -1 when those rules refuse it.
 */
function strictBase64Bytes(text: string): number {
  let data = text.length
  if (data > 0 && text.charCodeAt(data - 1) === EQUALS) data--
  if (data > 0 && text.charCodeAt(data - 1) === EQUALS) data--
  const padding = text.length - data
  const tail = data % 4
  // padding only up to a multiple of 4 (so exactly what the last group lacks); a lone sextet is no byte
  if (tail === 1 || (padding > 0 && text.length % 4 !== 0)) return -1
  for (let i = 0; i < data; i++) if (sextet(text, i) < 0) return -1
  // canonical: the bits of the last character that fall outside the last byte are zero
  const last = tail === 0 ? 0 : sextet(text, data - 1)
  if ((tail === 2 && (last & 0x0f) !== 0) || (tail === 3 && (last & 0x03) !== 0)) return -1
  return (data >> 2) * 3 + (tail === 0 ? 0 : tail - 1)
}

/** Byte k of strict base64 text (k below its byte count): it spans sextets q and q + 1 of its group. */
function byteAt(text: string, k: number): number {
  const at = k % 3
  const q = ((k / 3) | 0) * 4 + at
  return ((sextet(text, q) << (2 + 2 * at)) | (sextet(text, q + 1) >> (4 - 2 * at))) & 0xff
}

/**
 * True when `decodeStrictBase64` accepts `text` (at least one byte, under its rules) and its bytes
 * begin with `bytes` (one byte per character, each below U+0100). Pure JavaScript over the text and
 * nothing kept: for the few characters at the end of a token sent as the Basic username (its last
 * bytes, ':' and the password part). Decoding them through Buffer instead (`decodeStrictBase64`: a
 * write, two readings and a wipe, each a call into C++) made that memory lookup cost ~1,015 ns rather
 * than ~590 (`npm run bench:memory`; Bearer ~480). For whole credentials Buffer's path is as fast.
 */
export function strictBase64StartsWith(text: string, bytes: string): boolean {
  const decoded = strictBase64Bytes(text)
  if (decoded < 1 || decoded < bytes.length) return false
  for (let k = 0; k < bytes.length; k++) if (byteAt(text, k) !== bytes.charCodeAt(k)) return false
  return true
}

/**
 * Parses one Authorization header value. Throws RestAuthError:
 *  - 'header_too_large' when longer than AUTHORIZATION_MAX_BYTES;
 *  - 'bearer_malformed' for scheme Bearer with an empty or non-b64token credential (RFC 6750 §2.1);
 *  - 'authorization_malformed' for anything else unparseable: no scheme/credentials, unknown scheme, Basic
 *    credentials that are not strict base64, or decoded Basic credentials without ':' (RFC 7617 §2).
 * Scheme names are case-insensitive (RFC 9110 §11.1); one or more spaces may separate scheme and credentials;
 * surrounding whitespace (SP / HTAB) of the whole header value is trimmed.
 * Basic: the base64 is decoded to bytes, read as UTF-8 (latin-1 if not valid UTF-8), and split at the FIRST ':'.
 * The username or the password may be empty strings; they are neither trimmed nor normalized.
 */
export function parseAuthorization(header: string): ParsedAuthorization {
  if (exceedsCap(header)) {
    throw new RestAuthError('header_too_large', `The Authorization header exceeds ${AUTHORIZATION_MAX_BYTES} bytes.`)
  }
  const value = trimOws(header)
  const space = value.indexOf(' ')
  const scheme = space === -1 ? value : value.slice(0, space)
  let from = space + 1
  while (space !== -1 && value.charCodeAt(from) === 0x20) from++
  const credentials = space === -1 ? '' : value.slice(from)

  if (scheme.length === 0 || !TOKEN.test(scheme)) {
    throw malformed('The Authorization header must be "<scheme> <credentials>" (RFC 9110 §11.4).', 'no auth-scheme')
  }

  switch (scheme.toLowerCase()) {
    case 'bearer': {
      if (credentials.length === 0) {
        throw bearerMalformed('The Bearer token is empty (RFC 6750 §2.1).', 'empty bearer token')
      }
      if (!B64TOKEN.test(credentials)) {
        throw bearerMalformed(
          'The Bearer token holds characters a token cannot have (RFC 6750 §2.1).',
          'bearer credentials are not a b64token',
        )
      }
      return { scheme: 'bearer', token: credentials }
    }
    case 'basic': {
      if (credentials.length === 0) {
        throw malformed('The Basic credentials are missing (RFC 7617 §2).', 'empty basic credentials')
      }
      const userPass = decodeStrictBase64(credentials)
      if (userPass === undefined) {
        throw malformed('The Basic credentials are not valid base64 (RFC 7617 §2, RFC 4648 §4).', 'bad base64')
      }
      const colon = userPass.indexOf(':')
      if (colon === -1) {
        throw malformed(
          'The Basic credentials must be "username:password"; there is no ":" (RFC 7617 §2).',
          'no colon in basic credentials',
        )
      }
      return { scheme: 'basic', username: userPass.slice(0, colon), password: userPass.slice(colon + 1) }
    }
    default:
      throw malformed('Unsupported authentication scheme; use Bearer or Basic.', 'unknown auth-scheme')
  }
}

/**
 * The credentials of a header in the plain form `Basic <credentials>` (scheme in any case, one space, no
 * surrounding whitespace, short enough that the size cap cannot apply): `parseAuthorization` would read the
 * same text as this. Undefined for every other form, which then takes the full parse.
 */
export function plainBasicCredentials(header: string): string | undefined {
  if (header.length * 3 > AUTHORIZATION_MAX_BYTES || header.length < 7 || header.charCodeAt(5) !== 0x20) return undefined
  if (!header.startsWith('Basic') && header.slice(0, 5).toLowerCase() !== 'basic') return undefined
  const last = header.charCodeAt(header.length - 1)
  if (isOws(last) || isOws(header.charCodeAt(6))) return undefined
  return header.slice(6)
}

/** Compact JWS shape (RFC 7515 §7.1): three non-empty base64url segments, longer than any username (32). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * True when s has the compact JWS shape: three non-empty base64url segments separated by '.', total length
 * > 32 (longer than any username). Used to decide whether a Basic username is a token (REST-auth's
 * token-as-username convention).
 */
export function looksLikeJwt(s: string): boolean {
  return s.length > 32 && s.length <= AUTHORIZATION_MAX_BYTES && COMPACT_JWS.test(s)
}

/** The Basic challenge (RFC 7617 §2) REST-auth sends. */
export const BASIC_CHALLENGE = 'Basic realm="Authentication Required"'

/**
 * RFC 6750 §3: `Bearer realm="Authentication Required"` plus, when given, error="...",
 * error_description="..." and scope="...", in that order. Characters RFC 6750 §3 does not allow in
 * error_description and scope values ('"', '\\', controls, non-ASCII) are stripped; a value left empty is
 * omitted.
 */
export function bearerChallenge(params?: {
  error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope'
  description?: string
  scope?: string
}): string {
  const parts = ['Bearer realm="Authentication Required"']
  if (params?.error !== undefined) parts.push(`error="${params.error}"`)
  const description = params?.description?.replace(NOT_CHALLENGE_VALUE_CHAR, '')
  if (description !== undefined && description.length > 0) parts.push(`error_description="${description}"`)
  const scope = params?.scope?.replace(NOT_CHALLENGE_VALUE_CHAR, '')
  if (scope !== undefined && scope.length > 0) parts.push(`scope="${scope}"`)
  return parts.join(', ')
}
