import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'

import { commonPasswordCount, isCommonPassword } from '../../src/passwords/blocklist.ts'
import {
  PASSWORD_MAX_BYTES,
  PASSWORD_POLICIES,
  checkPassword,
  minPasswordLength,
  normalizePassword,
  type PasswordContext,
  type PasswordPolicyName,
} from '../../src/passwords/policy.ts'
import { RestAuthError, type ErrorCode } from '../../src/errors.ts'

/** Every reason checkPassword can give: fixed texts, so no reason can carry any part of the password. */
const REASONS: ReadonlySet<string> = new Set([
  'Password must not be empty.',
  'Password must be at least 8 characters.',
  'Password must be at least 15 characters.',
  'Password must be at most 1024 bytes of UTF-8.',
  'Password must not be the username.',
  'Password must not contain the username.',
  'Password must not contain the name of this service.',
  'Password is on the list of commonly used passwords.',
])
const REASON_TEXT = [...REASONS].join('\n')

/** The reason is a fixed text; and unless the password is itself a word of those texts, it is not in it. */
function assertNoEcho(message: string, password: string): void {
  assert.ok(REASONS.has(message), `unexpected reason ${JSON.stringify(message)}`)
  if ([...password].length >= 8 && !REASON_TEXT.includes(password)) {
    assert.ok(!message.includes(password), 'the reason must not echo the password')
  }
}

function refused(
  policy: PasswordPolicyName,
  password: string,
  code: ErrorCode,
  context?: PasswordContext,
  message?: RegExp,
): RestAuthError {
  let caught: unknown
  try {
    checkPassword(policy, password, context)
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof RestAuthError, `expected ${code} under ${policy}`)
  assert.equal(caught.code, code)
  assert.equal(caught.status, 400)
  if (message !== undefined) assert.match(caught.message, message)
  assertNoEcho(caught.message, password)
  return caught
}

function accepted(policy: PasswordPolicyName, password: string, context?: PasswordContext): void {
  assert.doesNotThrow(() => checkPassword(policy, password, context))
}

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8')

// --- Profiles -------------------------------------------------------------------------------------------

test('password: profiles are standard, strict, legacy with minimums 8, 15, 1 (baseline "Password length")', () => {
  assert.deepEqual([...PASSWORD_POLICIES], ['standard', 'strict', 'legacy'])
  assert.equal(minPasswordLength('standard'), 8)
  assert.equal(minPasswordLength('strict'), 15)
  assert.equal(minPasswordLength('legacy'), 1)
  assert.equal(PASSWORD_MAX_BYTES, 1024)
  assert.throws(() => minPasswordLength('lax' as PasswordPolicyName), TypeError)
  assert.throws(() => checkPassword('lax' as PasswordPolicyName, 'x'), TypeError)
})

// --- Minimum length, in code points (ASVS 6.2.1; NIST SP 800-63B-4 §3.1.1.2) ----------------------------

test('password: standard refuses 7 code points and accepts 8 (ASVS 6.2.1)', () => {
  refused('standard', 'kx7!vq2', 'password_too_short', undefined, /^Password must be at least 8 characters\.$/)
  accepted('standard', 'kx7!vq2m')
})

test('password: strict refuses 14 code points and accepts 15 (NIST SP 800-63B-4 §3.1.1.2)', () => {
  refused('strict', 'kx7!vq2m-wr9zt', 'password_too_short', undefined, /at least 15 characters/)
  accepted('strict', 'kx7!vq2m-wr9ztp')
})

test('password: length counts code points, an emoji is one (NIST SP 800-63B-4 §3.1.1.2)', () => {
  // 7 emoji = 14 UTF-16 units, 28 bytes: still too short for standard
  refused('standard', '🐙🦑🐚🦀🦞🐡🐠', 'password_too_short')
  accepted('standard', '🐙🦑🐚🦀🦞🐡🐠🐟')
  refused('strict', '🐙'.repeat(14), 'password_too_short')
  accepted('strict', '🐙🦑🐚🦀🦞🐡🐠🐟🐬🐳🐋🦈🐊🐢🦎')
  // NFKC: 'ﬁ' (one code point) counts as two after normalization
  accepted('standard', 'xq7\ufb01zv9') // 7 code points as given, 8 after NFKC
})

test('password: empty refused under every profile (baseline: legacy = any non-empty string)', () => {
  refused('legacy', '', 'password_too_short', undefined, /^Password must not be empty\.$/)
  refused('standard', '', 'password_too_short')
  refused('strict', '', 'password_too_short')
})

test('password: legacy accepts any non-empty string, even short or common (REST-auth compatibility)', () => {
  accepted('legacy', 'a')
  accepted('legacy', ' ')
  accepted('legacy', 'python')
  accepted('legacy', 'password')
  accepted('legacy', 'miguel', { username: 'miguel' })
  accepted('legacy', 'rest-auth')
})

// --- Maximum length: 1024 UTF-8 bytes (ASVS 6.2.9; baseline hard cap) -------------------------------------

test('password: 1024 UTF-8 bytes accepted and 1025 refused, multi-byte characters counted in bytes (ASVS 6.2.9)', () => {
  for (const policy of PASSWORD_POLICIES) {
    const ascii1024 = 'x'.repeat(1024)
    const ascii1025 = 'x'.repeat(1025)
    accepted(policy, ascii1024)
    refused(policy, ascii1025, 'password_too_long', undefined, /^Password must be at most 1024 bytes of UTF-8\.$/)

    const euro = '€' // 3 bytes
    const multi1024 = euro.repeat(341) + 'x' // 1023 + 1
    const multi1025 = euro.repeat(341) + 'xy'
    assert.equal(utf8(multi1024), 1024)
    assert.equal(utf8(multi1025), 1025)
    accepted(policy, multi1024)
    refused(policy, multi1025, 'password_too_long')

    const emoji1024 = '🐙'.repeat(256) // 4 bytes each
    assert.equal(utf8(emoji1024), 1024)
    accepted(policy, emoji1024)
    refused(policy, emoji1024 + 'x', 'password_too_long')
  }
})

test('password: the byte cap applies after NFKC (baseline "Password normalisation")', () => {
  // U+FDFA (3 bytes) expands to 18 Arabic letters (33 bytes) under NFKC
  const expands = '\ufdfa'.repeat(40)
  assert.ok(utf8(expands) < 1024)
  assert.ok(utf8(normalizePassword(expands)) > 1024)
  refused('legacy', expands, 'password_too_long')
})

test('password: too_long is checked before too_short (check order)', () => {
  refused('strict', '\ufdfa'.repeat(40), 'password_too_long') // 40 code points as given, 720 after NFKC
  refused('standard', 'x'.repeat(100_000), 'password_too_long')
})

// --- Normalization (NIST SP 800-63B-4 §3.1.1.2 NFKC; ASVS 6.2.8) ------------------------------------------

test('password: normalized with NFKC, no trim, no case folding (NIST SP 800-63B-4 §3.1.1.2)', () => {
  assert.equal(normalizePassword('\ufb01'), 'fi') // ligature
  assert.equal(normalizePassword('\uff11\uff12\uff13'), '123') // full-width digits
  assert.equal(normalizePassword('e\u0301'), '\u00e9')
  assert.equal(normalizePassword(' Secret '), ' Secret ')
  assert.equal(normalizePassword('ABC'), 'ABC')
  assert.equal(normalizePassword('ﬁnally-８８'), normalizePassword('finally-88'))
})

test('password: checks run on the NFKC form: full-width "ｐａｓｓｗｏｒｄ" is the common "password" (ASVS 6.2.8)', () => {
  refused('standard', '\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44', 'password_too_common')
  refused('standard', '\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18', 'password_too_common') // １２３４５６７８
})

// --- Blocklist (ASVS 6.2.4, 6.2.12; NIST SP 800-63B-4 §3.1.1.2 blocklist) ------------------------------------

test('password: the blocklist holds at least the 10,000 most common passwords (baseline "Password checks")', () => {
  assert.ok(commonPasswordCount() >= 10_000, `only ${commonPasswordCount()}`)
  assert.ok(isCommonPassword('password'))
  assert.ok(isCommonPassword('python'))
  assert.ok(!isCommonPassword('correct horse battery staple 42'))
})

test('password: "password" refused as common under standard and strict-length lists (ASVS 6.2.4)', () => {
  refused('standard', 'password', 'password_too_common', undefined, /^Password is on the list of commonly used passwords\.$/)
  refused('standard', 'PassWord', 'password_too_common') // compared lowercased
  refused('standard', 'baseball', 'password_too_common')
  refused('standard', 'qwertyuiop', 'password_too_common')
  refused('strict', '1qaz2wsx3edc4rfv', 'password_too_common')
  accepted('standard', 'correct horse battery staple')
})

test('password: "python" refused under standard (too short before common) and accepted under legacy (check order)', () => {
  // "python" is on the list, but with 6 code points the length rule fires first.
  assert.ok(isCommonPassword('python'))
  refused('standard', 'python', 'password_too_short')
  refused('strict', 'python', 'password_too_short')
  accepted('legacy', 'python')
})

// --- Context words (ASVS 6.2.11) ----------------------------------------------------------------------------

test('password: equal to the username refused (ASVS 6.2.11)', () => {
  refused('standard', 'miguelgrinberg', 'password_contains_context', { username: 'MiguelGrinberg' }, /be the username/)
  refused('standard', 'miguelgrinberg', 'password_contains_context', { username: 'ｍｉｇｕｅｌｇｒｉｎｂｅｒｇ' })
})

test('password: containing the username (≥ 4 code points) refused, case-insensitively (ASVS 6.2.11)', () => {
  refused('standard', 'miguel123456', 'password_contains_context', { username: 'miguel' }, /contain the username/)
  refused('standard', 'MIGUEL123456', 'password_contains_context', { username: 'Miguel' })
  refused('standard', 'xx-miguel-xx', 'password_contains_context', { username: 'miguel' })
  accepted('standard', 'miguel123456', { username: 'susan' })
  accepted('standard', 'miguel123456')
})

test('password: a username under 4 code points only counts when equal (ASVS 6.2.11)', () => {
  accepted('standard', 'bobcat-lantern-9', { username: 'bob' })
  accepted('legacy', 'bob', { username: 'bob' })
  refused('standard', 'bobcat-lantern-9', 'password_contains_context', { username: 'bobc' })
})

test('password: containing the service name refused (ASVS 6.2.11)', () => {
  refused('standard', 'rest-auth2024', 'password_contains_context', undefined, /name of this service/)
  refused('standard', 'MyRestAuthPass', 'password_contains_context')
  refused('strict', 'restauthrestauth', 'password_contains_context')
  refused('standard', 'acme-login-99', 'password_contains_context', { serviceNames: ['Acme'] })
  accepted('standard', 'rest-auth2024', { serviceNames: ['acme'] })
})

test('password: context is checked before the blocklist (check order)', () => {
  // "password" is common, but it is also the username here: context wins.
  refused('standard', 'password', 'password_contains_context', { username: 'password' })
  refused('standard', 'superman', 'password_contains_context', { username: 'super' })
})

// --- Properties ---------------------------------------------------------------------------------------------

const anyPassword = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 6, maxLength: 20 }),
  fc.string({ unit: 'binary', minLength: 250, maxLength: 600 }),
  fc.constantFrom('password', 'Password1', 'rest-auth-secret', 'miguel123456', '\ufdfa'.repeat(60), ''),
)

test('password property: checkPassword throws only RestAuthError and never echoes the password (ASVS 6.2.11)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...PASSWORD_POLICIES),
      anyPassword,
      fc.option(fc.string({ maxLength: 12 }), { nil: undefined }),
      (policy, password, username) => {
        try {
          checkPassword(policy, password, username === undefined ? undefined : { username })
        } catch (error) {
          assert.ok(error instanceof RestAuthError, `unexpected ${String(error)}`)
          assert.ok(
            ['password_too_short', 'password_too_long', 'password_too_common', 'password_contains_context'].includes(
              error.code,
            ),
          )
          assertNoEcho(error.message, password)
        }
      },
    ),
    { numRuns: 2000 },
  )
})

test('password property: a password and its NFKC form get the same verdict (NIST SP 800-63B-4 §3.1.1.2)', () => {
  const verdict = (policy: PasswordPolicyName, p: string): string => {
    try {
      checkPassword(policy, p)
      return 'ok'
    } catch (error) {
      return error instanceof RestAuthError ? error.code : 'other'
    }
  }
  fc.assert(
    fc.property(fc.constantFrom(...PASSWORD_POLICIES), anyPassword, (policy, p) => {
      assert.equal(verdict(policy, p), verdict(policy, normalizePassword(p)))
    }),
    { numRuns: 1000 },
  )
})
