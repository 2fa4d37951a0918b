import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'

import {
  AUTHORIZATION_MAX_BYTES,
  BASIC_CHALLENGE,
  bearerChallenge,
  decodeStrictBase64,
  looksLikeJwt,
  parseAuthorization,
  strictBase64StartsWith,
} from '../../src/auth/authorization.ts'
import { RestAuthError, type ErrorCode } from '../../src/errors.ts'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')
const basic = (userPass: string): string => `Basic ${b64(userPass)}`

/** A JWT as jose would issue it (ES256, compact JWS); the signature is made up. */
const SAMPLE_JWT =
  'eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0' +
  '.eyJzdWIiOiIxIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDA2MDB9' +
  '.MEUCIQDx1Wc9yJ3m_Pq7o-5AbcdEfGhIjKlMnOpQrStUvWxYz0123456789'

function throwsCode(header: string, code: ErrorCode, secret?: string): RestAuthError {
  let caught: unknown
  try {
    parseAuthorization(header)
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof RestAuthError, `expected RestAuthError ${code} for ${JSON.stringify(header)}`)
  assert.equal(caught.code, code)
  // Secrets shorter than 4 characters would match ordinary words of the message by chance.
  if (secret !== undefined && secret.length >= 4) {
    assert.ok(!caught.message.includes(secret), 'the message must not hold the credentials')
    assert.ok(!(caught.internal ?? '').includes(secret), 'the internal note must not hold the credentials')
  }
  return caught
}

// --- Basic ---------------------------------------------------------------------------------------------

test('basic: username and password decoded (RFC 7617 §2)', () => {
  assert.deepEqual(parseAuthorization('Basic bWlndWVsOnB5dGhvbg=='), {
    scheme: 'basic',
    username: 'miguel',
    password: 'python',
  })
})

test('basic: scheme name is case-insensitive (RFC 9110 §11.1)', () => {
  for (const scheme of ['basic', 'BASIC', 'Basic', 'bAsIc']) {
    assert.deepEqual(parseAuthorization(`${scheme} ${b64('miguel:python')}`), {
      scheme: 'basic',
      username: 'miguel',
      password: 'python',
    })
  }
})

test('basic: one or more spaces between scheme and credentials, surrounding whitespace trimmed (RFC 9110 §11.4)', () => {
  const expected = { scheme: 'basic', username: 'miguel', password: 'python' }
  assert.deepEqual(parseAuthorization(`Basic    ${b64('miguel:python')}`), expected)
  assert.deepEqual(parseAuthorization(`  \tBasic ${b64('miguel:python')} \t `), expected)
})

test('basic: password may contain ":" (RFC 7617 §2)', () => {
  assert.deepEqual(parseAuthorization(basic('miguel:py:th:on:')), {
    scheme: 'basic',
    username: 'miguel',
    password: 'py:th:on:',
  })
})

test('basic: empty password is returned as "" (RFC 7617 §2)', () => {
  assert.deepEqual(parseAuthorization(basic('miguel:')), { scheme: 'basic', username: 'miguel', password: '' })
})

test('basic: empty username is returned as "" (RFC 7617 §2)', () => {
  assert.deepEqual(parseAuthorization(basic(':python')), { scheme: 'basic', username: '', password: 'python' })
  assert.deepEqual(parseAuthorization(basic(':')), { scheme: 'basic', username: '', password: '' })
})

test('basic: user-pass is UTF-8, neither trimmed nor normalized (RFC 7617 §2.1)', () => {
  assert.deepEqual(parseAuthorization(basic('ñandú:contraseña 🦜🔑')), {
    scheme: 'basic',
    username: 'ñandú',
    password: 'contraseña 🦜🔑',
  })
  // NFD stays NFD, spaces and a BOM stay where they are.
  assert.deepEqual(parseAuthorization(basic('\uFEFF n\u0303andu\u0301 : pw ')), {
    scheme: 'basic',
    username: '\uFEFF n\u0303andu\u0301 ',
    password: ' pw ',
  })
})

test('basic: bytes that are not valid UTF-8 are read as latin-1, as Flask-HTTPAuth does (RFC 7617 §2.1)', () => {
  const lone = Buffer.from([0x6a, 0x6f, 0x73, 0xe9, 0x3a, 0x70, 0x77]).toString('base64') // "jos\xE9:pw"
  assert.deepEqual(parseAuthorization(`Basic ${lone}`), { scheme: 'basic', username: 'josé', password: 'pw' })
  // One invalid byte in the password makes the whole user-pass latin-1, username included.
  const mixed = Buffer.concat([Buffer.from('ñ:', 'utf8'), Buffer.from([0xe9])]).toString('base64')
  assert.deepEqual(parseAuthorization(`Basic ${mixed}`), { scheme: 'basic', username: 'Ã±', password: 'é' })
  // ISO-8859-1, not windows-1252: 0x80 is U+0080, not "€".
  const c1 = Buffer.from([0x80, 0x3a, 0xff]).toString('base64')
  assert.deepEqual(parseAuthorization(`Basic ${c1}`), { scheme: 'basic', username: '\u0080', password: 'ÿ' })
})

test('basic: each header is decoded on its own: a long one before a short one leaves nothing behind (one decode buffer per process)', () => {
  const long = `${'eyJ'.repeat(200)}.${'x'.repeat(300)}.${'s'.repeat(86)}`
  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')
  assert.deepEqual(parseAuthorization(`Basic ${b64(`${long}:a long password indeed`)}`), { scheme: 'basic', username: long, password: 'a long password indeed' })
  assert.deepEqual(parseAuthorization(`Basic ${b64('a:b')}`), { scheme: 'basic', username: 'a', password: 'b' })
  assert.deepEqual(parseAuthorization(`Basic ${b64('ü:')}`), { scheme: 'basic', username: 'ü', password: '' })
  const latin1 = Buffer.from([0xe9, 0x3a]).toString('base64')
  assert.deepEqual(parseAuthorization(`Basic ${latin1}`), { scheme: 'basic', username: 'é', password: '' })
  // the largest credentials under the 8 KiB header cap decode whole
  const biggest = 'p'.repeat(6136) // 'Basic ' + 8,184 base64 characters = 6,138 bytes: the most under the cap
  assert.deepEqual(parseAuthorization(`Basic ${b64(`u:${biggest}`)}`), { scheme: 'basic', username: 'u', password: biggest })
})

test('basic: credentials that are not strict base64 are authorization_malformed (RFC 7617 §2, RFC 4648 §4)', () => {
  for (const header of [
    'Basic !!!',
    'Basic YQ=', // wrong padding for "a" (YQ==)
    'Basic abc==', // three characters take one "="
    'Basic bWlndWVsOnB5dGhvbg=', // "==" needed
    'Basic bWlndWVsOnB5dGhvbg===',
    'Basic bWlndWVsOnB5dGhvbg==bWln', // padding inside
    'Basic ====',
    'Basic =',
    'Basic a', // 4n+1 characters
    'Basic bWlndWVs OnB5dGhvbg==', // whitespace inside
    'Basic bWlndWVs\tOnB5dGhvbg==',
    'Basic bWlndWVsOnB5dGhvbg==\u00a0', // NBSP is not whitespace to trim
    'Basic bWlndWVsOnB5dGhvbg_-', // base64url alphabet is not base64
    'Basic YR==', // non-canonical: unused bits set (RFC 4648 §3.5)
    'Basic YWJ=', // non-canonical
  ]) {
    throwsCode(header, 'authorization_malformed')
  }
  // Unpadded canonical base64 is accepted: padding is optional.
  assert.deepEqual(parseAuthorization('Basic bWlndWVsOnB5dGhvbg'), {
    scheme: 'basic',
    username: 'miguel',
    password: 'python',
  })
})

test('basic: decoded credentials without ":" are authorization_malformed (RFC 7617 §2)', () => {
  const error = throwsCode(basic('miguelpython'), 'authorization_malformed', 'miguelpython')
  assert.match(error.message, /":"/)
  throwsCode('Basic abc', 'authorization_malformed') // valid unpadded base64, no colon
})

test('basic: missing credentials are authorization_malformed (RFC 7617 §2)', () => {
  for (const header of ['Basic', 'Basic ', 'basic    ', '  Basic  ']) throwsCode(header, 'authorization_malformed')
})

// --- scheme --------------------------------------------------------------------------------------------

test('scheme: unknown scheme is authorization_malformed (RFC 9110 §11.4)', () => {
  const error = throwsCode('Digest username="miguel", realm="x", nonce="n", response="secret"', 'authorization_malformed')
  assert.ok(!error.message.includes('secret'))
  throwsCode('Negotiate YIIC', 'authorization_malformed')
  throwsCode(`Basicx ${b64('a:b')}`, 'authorization_malformed')
  throwsCode(`Bearerx ${SAMPLE_JWT}`, 'authorization_malformed')
})

test('scheme: missing scheme or credentials is authorization_malformed (RFC 9110 §11.4)', () => {
  for (const header of ['', '   ', '\t', b64('miguel:python'), ' :', '(Basic) abc', `Basic\t${b64('a:b')}`]) {
    throwsCode(header, 'authorization_malformed')
  }
})

// --- Bearer --------------------------------------------------------------------------------------------

test('bearer: a JWT is accepted as a b64token (RFC 6750 §2.1)', () => {
  assert.deepEqual(parseAuthorization(`Bearer ${SAMPLE_JWT}`), { scheme: 'bearer', token: SAMPLE_JWT })
  assert.deepEqual(parseAuthorization(`bearer   ${SAMPLE_JWT}  `), { scheme: 'bearer', token: SAMPLE_JWT })
  assert.deepEqual(parseAuthorization('BEARER a-._~+/Z09=='), { scheme: 'bearer', token: 'a-._~+/Z09==' })
})

test('bearer: empty token is bearer_malformed (RFC 6750 §2.1)', () => {
  for (const header of ['Bearer', 'Bearer ', 'bearer    ']) {
    const error = throwsCode(header, 'bearer_malformed')
    assert.equal(error.status, 400)
    assert.match(error.message, /empty/)
  }
})

test('bearer: a token outside b64token is bearer_malformed (RFC 6750 §2.1)', () => {
  for (const [header, token] of [
    ['Bearer a b', 'a b'],
    ['Bearer s3cr3t t0ken', 's3cr3t t0ken'],
    ['Bearer ab$c', 'ab$c'],
    ['Bearer =abc', '=abc'],
    ['Bearer ab=c', 'ab=c'],
    ['Bearer "abc"', '"abc"'],
    ['Bearer tok\u00e9n', 'tok\u00e9n'],
    [`Bearer ${SAMPLE_JWT},x`, `${SAMPLE_JWT},x`],
  ] as const) {
    const error = throwsCode(header, 'bearer_malformed', token)
    assert.match(error.message, /RFC 6750/)
  }
})

// --- size ----------------------------------------------------------------------------------------------

test('size: a header over 8 KiB is header_too_large (RFC 6585 §5)', () => {
  const header = 'Bearer ' + 'a'.repeat(AUTHORIZATION_MAX_BYTES + 1 - 'Bearer '.length)
  assert.equal(header.length, 8193)
  const error = throwsCode(header, 'header_too_large', 'a'.repeat(64))
  assert.equal(error.status, 431)
  // Checked before anything else: an oversized garbage value is still 431, not 401.
  throwsCode('!'.repeat(AUTHORIZATION_MAX_BYTES + 1), 'header_too_large')
  // A value of characters above latin-1 (not from the wire) is measured in UTF-8 bytes.
  throwsCode('Bearer ' + '€'.repeat(3000), 'header_too_large')
  // the edge: 7 + 3 x 2,729 = 8,194 bytes is over; 7 + 3 x 2,728 = 8,191 is not (and is no b64token)
  throwsCode('Bearer ' + '€'.repeat(2729), 'header_too_large')
  throwsCode('Bearer ' + '€'.repeat(2728), 'bearer_malformed')
  // 4-byte characters (two UTF-16 units each): 7 + 4 x 2,047 = 8,195 bytes
  throwsCode('Bearer ' + '😀'.repeat(2047), 'header_too_large')
  throwsCode('Bearer ' + '😀'.repeat(2046), 'bearer_malformed')
})

test('size: a header of exactly 8 KiB is parsed (RFC 6585 §5)', () => {
  const token = 'a'.repeat(AUTHORIZATION_MAX_BYTES - 'Bearer '.length)
  assert.deepEqual(parseAuthorization(`Bearer ${token}`), { scheme: 'bearer', token })
})

// --- looksLikeJwt --------------------------------------------------------------------------------------

test('looksLikeJwt: compact JWS shape, longer than a username (RFC 7515 §7.1)', () => {
  assert.equal(looksLikeJwt(SAMPLE_JWT), true)
  assert.equal(looksLikeJwt('miguel'), false)
  assert.equal(looksLikeJwt('a.b.c'), false)
  assert.equal(looksLikeJwt('a..b'), false)
  assert.equal(looksLikeJwt(''), false)
  assert.equal(looksLikeJwt('a'.repeat(40)), false)
  assert.equal(looksLikeJwt(`${'a'.repeat(20)}.${'b'.repeat(20)}`), false) // two segments
  assert.equal(looksLikeJwt(`${SAMPLE_JWT}.x`), false) // five segments would be JWE; four is nothing
  assert.equal(looksLikeJwt(`${'a'.repeat(20)}..${'b'.repeat(20)}`), false) // empty payload segment
  assert.equal(looksLikeJwt(`${'a'.repeat(20)}.b+c.${'d'.repeat(20)}`), false) // '+' is not base64url
  assert.equal(looksLikeJwt(`${'a'.repeat(20)}.${'b'.repeat(20)}.c=`), false) // no padding in base64url
  assert.equal(looksLikeJwt(`${'a'.repeat(10)}.${'b'.repeat(10)}.${'c'.repeat(11)}`), true) // 33 characters
  assert.equal(looksLikeJwt(`${'a'.repeat(10)}.${'b'.repeat(10)}.${'c'.repeat(10)}`), false) // 32 characters
})

// --- challenges ----------------------------------------------------------------------------------------

test('challenge: Basic realm (RFC 7617 §2)', () => {
  assert.equal(BASIC_CHALLENGE, 'Basic realm="Authentication Required"')
})

test('challenge: Bearer with error, error_description and scope (RFC 6750 §3)', () => {
  assert.equal(bearerChallenge(), 'Bearer realm="Authentication Required"')
  assert.equal(bearerChallenge({}), 'Bearer realm="Authentication Required"')
  assert.equal(
    bearerChallenge({ error: 'invalid_token', description: 'The access token expired' }),
    'Bearer realm="Authentication Required", error="invalid_token", error_description="The access token expired"',
  )
  assert.equal(
    bearerChallenge({ error: 'insufficient_scope', description: 'Needs admin', scope: 'admin users:write' }),
    'Bearer realm="Authentication Required", error="insufficient_scope", error_description="Needs admin", scope="admin users:write"',
  )
  assert.equal(
    bearerChallenge({ error: 'invalid_request' }),
    'Bearer realm="Authentication Required", error="invalid_request"',
  )
})

test('challenge: error_description drops \'"\', \'\\\' and characters outside %x20-7E (RFC 6750 §3)', () => {
  assert.equal(
    bearerChallenge({ error: 'invalid_token', description: 'say "hi" \\ now\r\nX-Injected: 1 é' }),
    'Bearer realm="Authentication Required", error="invalid_token", error_description="say hi  nowX-Injected: 1 "',
  )
  assert.equal(
    bearerChallenge({ error: 'invalid_token', description: '"\\' }),
    'Bearer realm="Authentication Required", error="invalid_token"',
  )
  assert.equal(bearerChallenge({ scope: 'a"b\\c' }), 'Bearer realm="Authentication Required", scope="abc"')
})

// --- properties ----------------------------------------------------------------------------------------

const noLoneSurrogate = (s: string): boolean => !/\p{Cs}/u.test(s)
const wellFormed = fc.oneof(
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }).filter(noLoneSurrogate),
)

test('property: any input returns or throws a RestAuthError, never another error (contract §1: never a 5xx)', () => {
  const header = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme-ascii' }),
    fc
      .tuple(
        fc.constantFrom('', ' ', 'Basic', 'basic ', 'Basic  ', 'Bearer ', 'bearer', 'Digest '),
        fc.string({ unit: 'binary-ascii' }),
      )
      .map(([prefix, rest]) => prefix + rest),
    fc.uint8Array().map((bytes) => `Basic ${Buffer.from(bytes).toString('base64')}`),
    fc.uint8Array().map((bytes) => `Basic ${Buffer.from(bytes).toString('base64').replace(/=+$/, '')}`),
  )
  fc.assert(
    fc.property(header, (h) => {
      try {
        const parsed = parseAuthorization(h)
        assert.ok(parsed.scheme === 'basic' || parsed.scheme === 'bearer')
      } catch (error) {
        assert.ok(error instanceof RestAuthError, `not a RestAuthError: ${String(error)}`)
      }
    }),
    { numRuns: 2000 },
  )
})

test('property: Basic round trip of any UTF-8 username without ":" and any password (RFC 7617 §2, §2.1)', () => {
  fc.assert(
    fc.property(
      wellFormed.filter((u) => !u.includes(':')),
      wellFormed,
      (username, password) => {
        const header = 'Basic ' + Buffer.from(username + ':' + password, 'utf8').toString('base64')
        assert.deepEqual(parseAuthorization(header), { scheme: 'basic', username, password })
      },
    ),
    { numRuns: 1000 },
  )
})

test('property: any bytes holding ":" decode as UTF-8, else latin-1, and re-encode to the same bytes (RFC 7617 §2.1)', () => {
  fc.assert(
    fc.property(fc.uint8Array(), fc.uint8Array(), (user, pass) => {
      const userBytes = Buffer.from(user.filter((b) => b !== 0x3a))
      const bytes = Buffer.concat([userBytes, Buffer.from([0x3a]), Buffer.from(pass)])
      const parsed = parseAuthorization(`Basic ${bytes.toString('base64')}`)
      assert.equal(parsed.scheme, 'basic')
      if (parsed.scheme !== 'basic') return
      const joined = `${parsed.username}:${parsed.password}`
      const isUtf8 = Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes)
      assert.ok(Buffer.from(joined, isUtf8 ? 'utf8' : 'latin1').equals(bytes))
      assert.equal(parsed.username.length <= userBytes.length, true)
    }),
    { numRuns: 1000 },
  )
})

test('property: a b64token Bearer credential is returned unchanged (RFC 6750 §2.1)', () => {
  const b64tokenChar = fc.constantFrom(
    ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/'.split(''),
  )
  const token = fc
    .tuple(fc.string({ unit: b64tokenChar, minLength: 1 }), fc.nat({ max: 3 }))
    .map(([body, pad]) => body + '='.repeat(pad))
  fc.assert(
    fc.property(token, (t) => {
      assert.deepEqual(parseAuthorization(`Bearer ${t}`), { scheme: 'bearer', token: t })
    }),
  )
})

/**
 * RFC 4648 strict base64 as a grammar, the model the decoder's round-trip check must agree with:
 * alphabet only, padding absent or exactly filling the last group, and zero unused bits (§3.5).
 */
/** The base64 of `bytes` (padded or not), with one character at `at` swapped for `ch`, added or dropped. */
function nearBase64(bytes: Buffer, padded: boolean, at: number, ch: string, edit: 'swap' | 'insert' | 'drop' | 'none'): string {
  let text = bytes.toString('base64')
  if (!padded) text = text.replace(/=+$/, '')
  const i = at % (text.length + 1)
  if (edit === 'swap') text = text.slice(0, i) + ch + text.slice(i + 1)
  if (edit === 'insert') text = text.slice(0, i) + ch + text.slice(i)
  if (edit === 'drop') text = text.slice(0, i) + text.slice(i + 1)
  return text
}

function strictBase64(text: string): boolean {
  const match = /^([A-Za-z0-9+/]*)(=*)$/.exec(text)
  if (match === null) return false
  const body = match[1] ?? ''
  const padding = (match[2] ?? '').length
  if (body.length === 0) return false
  switch (body.length % 4) {
    case 0:
      return padding === 0
    case 2:
      return (padding === 0 || padding === 2) && /[AQgw]$/.test(body)
    case 3:
      return (padding === 0 || padding === 1) && /[AEIMQUYcgkosw048]$/.test(body)
    default:
      return false
  }
}

test('property: Basic credentials are accepted exactly when they are strict base64 (RFC 4648 §3.5, §4), and then decode to the bytes they encode (RFC 7617 §2)', () => {
  // near-base64 texts: a valid encoding (padded or not) with one character swapped, added or dropped,
  // drawn from the alphabet, its url-safe cousins, '=' and a few others Node's lenient decoder skips
  const near = fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.boolean(), fc.nat(), fc.constantFrom('A', 'Q', 'g', '/', '+', '=', '-', '_', ' ', '.', '\t', 'é'), fc.constantFrom('swap', 'insert', 'drop', 'none'))
    .map(([bytes, padded, at, ch, edit]) => nearBase64(Buffer.concat([Buffer.from([0x3a]), Buffer.from(bytes)]), padded, at, ch, edit))
  fc.assert(
    fc.property(fc.oneof(near, fc.string({ unit: 'binary-ascii', maxLength: 12 }).map((s) => `:${s}`)), (sent) => {
      // trailing SP / HTAB of the header are trimmed, and spaces after the scheme separate it
      const credentials = sent.replace(/[ \t]+$/, '').replace(/^ +/, '')
      let parsed: ReturnType<typeof parseAuthorization> | undefined
      try {
        parsed = parseAuthorization(`Basic ${sent}`)
      } catch (error) {
        assert.ok(error instanceof RestAuthError)
        if (strictBase64(credentials)) {
          // strict base64 may still lack the ':' of user-pass
          assert.equal(Buffer.from(credentials, 'base64').includes(0x3a), false, `refused strict base64 ${JSON.stringify(credentials)}`)
        }
        return
      }
      assert.ok(strictBase64(credentials), `accepted non-strict base64 ${JSON.stringify(credentials)}`)
      assert.equal(parsed.scheme, 'basic')
    }),
    { numRuns: 5000 },
  )
})

test('strictBase64StartsWith: fixed cases (the check of a remembered token\'s last bytes and ":")', () => {
  const text = (bytes: string) => Buffer.from(bytes, 'latin1').toString('base64')
  assert.equal(strictBase64StartsWith(text('ab:x'), 'ab:'), true)
  assert.equal(strictBase64StartsWith(text('ab:x').replace(/=+$/, ''), 'ab:'), true, 'padding is optional')
  assert.equal(strictBase64StartsWith(text(':'), ':'), true, 'an empty password')
  assert.equal(strictBase64StartsWith(text('a:'), 'a:'), true)
  assert.equal(strictBase64StartsWith(text('ab:'), 'ab:'), true)
  assert.equal(strictBase64StartsWith(text('ab:'), 'ab:x'), false, 'fewer bytes than expected')
  assert.equal(strictBase64StartsWith(text('a'), 'a\u00ff'), false, 'nothing is read past the last byte')
  assert.equal(strictBase64StartsWith(text('ac:x'), 'ab:'), false)
  assert.equal(strictBase64StartsWith(text('abx'), 'ab:'), false, 'no colon after the token')
  assert.equal(strictBase64StartsWith('', ':'), false)
  assert.equal(strictBase64StartsWith('', ''), false, 'no byte at all is not base64 credentials')
  for (const bad of ['Og=', 'Ogx==', 'Oh==', 'Og===', 'O', 'O g=', 'Og-_', '=Og=', 'Og==Og==', 'Ogé=']) {
    assert.equal(strictBase64StartsWith(bad, ':'), false, JSON.stringify(bad))
  }
  // the password part may hold any bytes, a long one too
  assert.equal(strictBase64StartsWith(text(`x:${'\u00ff\u0000'.repeat(500)}`), 'x:'), true)
})

test('strictBase64StartsWith: answers as decodeStrictBase64 and a comparison of the decoded bytes (property)', () => {
  const strictReference = (text: string) => strictBase64(text) && decodeStrictBase64(text) !== undefined
  const texts = fc
    .tuple(fc.uint8Array({ minLength: 0, maxLength: 12 }), fc.boolean(), fc.nat(), fc.constantFrom('A', 'Q', 'g', '/', '+', '=', '-', '_', ' ', 'é', '\u0100'), fc.constantFrom('swap', 'insert', 'drop', 'none', 'none'))
    .map(([bytes, padded, at, ch, edit]) => nearBase64(Buffer.from(bytes), padded, at, ch, edit))
  fc.assert(
    fc.property(texts, fc.uint8Array({ minLength: 0, maxLength: 4 }), fc.boolean(), (text, guess, fromText) => {
      // expected bytes: often the text's own first bytes (a match), else made up
      const decoded = Buffer.from(text, 'base64')
      const expected = fromText ? decoded.subarray(0, guess.length).toString('latin1') : Buffer.from(guess).toString('latin1')
      assert.equal(strictBase64(text), decodeStrictBase64(text) !== undefined, `the reference disagrees on ${JSON.stringify(text)}`)
      const want = strictReference(text) && decoded.length >= expected.length && decoded.subarray(0, expected.length).toString('latin1') === expected
      assert.equal(strictBase64StartsWith(text, expected), want, `${JSON.stringify(text)} starts with ${JSON.stringify(expected)}`)
    }),
    { numRuns: 20_000 },
  )
})
