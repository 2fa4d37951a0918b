import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'

import {
  RESERVED_USERNAMES,
  USERNAME_MAX_CODE_POINTS,
  canonicalizeUsername,
  parseUsername,
  widthMap,
} from '../../src/auth/username.ts'
import { RestAuthError } from '../../src/errors.ts'

function refused(input: string, pattern?: RegExp): RestAuthError {
  let caught: unknown
  try {
    parseUsername(input)
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof RestAuthError, `expected username_invalid for ${JSON.stringify(input)}`)
  assert.equal(caught.code, 'username_invalid')
  assert.equal(caught.status, 400)
  if (pattern !== undefined) assert.match(caught.message, pattern)
  return caught
}

function accepted(input: string, canonical?: string): void {
  const parsed = parseUsername(input)
  if (canonical !== undefined) assert.equal(parsed.canonical, canonical)
}

const cpCount = (s: string): number => [...s].length

// --- Canonicalization (RFC 8265 §3.4) ------------------------------------------------------------------

test('username: Miguel, miguel and full-width ｍｉｇｕｅｌ share one canonical form (RFC 8265 §3.4.1)', () => {
  assert.equal(canonicalizeUsername('Miguel'), 'miguel')
  assert.equal(canonicalizeUsername('miguel'), 'miguel')
  assert.equal(canonicalizeUsername('ｍｉｇｕｅｌ'), 'miguel')
  assert.equal(canonicalizeUsername('ＭＩＧＵＥＬ'), 'miguel')
  assert.equal(parseUsername('ｍｉｇｕｅｌ').canonical, parseUsername('Miguel').canonical)
})

test('username: display keeps the form as given, NFC only (RFC 8265 §3.4)', () => {
  assert.deepEqual(parseUsername('Miguel'), { display: 'Miguel', canonical: 'miguel' })
  assert.deepEqual(parseUsername('ｍｉｇｕｅｌ'), { display: 'ｍｉｇｕｅｌ', canonical: 'miguel' })
  // decomposed é (e + U+0301) is shown composed
  assert.deepEqual(parseUsername('Jose\u0301'), { display: 'Jos\u00e9', canonical: 'jos\u00e9' })
})

test('username: case mapping uses toLowerCase() (RFC 8265 §3.4.1 step 2)', () => {
  assert.equal(canonicalizeUsername('ÉLODIE'), 'élodie')
  assert.equal(canonicalizeUsername('ΟΔΥΣΣΕΥΣ'), 'οδυσσευς')
  assert.equal(canonicalizeUsername('СЕРГЕЙ'), 'сергей')
})

test('username: normalization is NFC (RFC 8265 §3.4.1 step 3)', () => {
  assert.equal(canonicalizeUsername('e\u0301'), '\u00e9')
  assert.equal(canonicalizeUsername('\u00e9'), '\u00e9')
  assert.equal(canonicalizeUsername('\u212b'), '\u00e5') // ANGSTROM SIGN → Å → å
})

test('username: width map is the one-level <wide>/<narrow> decomposition (RFC 8264 §9.1)', () => {
  assert.equal(widthMap('\u3000'), ' ')
  assert.equal(widthMap('\uff01'), '!')
  assert.equal(widthMap('\uff76'), '\u30ab') // ｶ → カ
  assert.equal(widthMap('\uff9e'), '\u3099') // halfwidth voiced mark → combining voiced mark
  assert.equal(widthMap('\uffa1'), '\u3131') // halfwidth ㄱ → compatibility jamo, not conjoining U+1100
  assert.equal(widthMap('\uffe3'), '\u00af') // FULLWIDTH MACRON → MACRON, not NFKC's " \u0304"
  assert.equal(widthMap('\uffe6'), '\u20a9')
  assert.equal(widthMap('abc'), 'abc')
  for (let cp = 0xff01; cp <= 0xffef; cp++) {
    const ch = String.fromCodePoint(cp)
    const mapped = widthMap(ch)
    assert.equal(cpCount(mapped), 1, `U+${cp.toString(16)} maps to one code point`)
    assert.equal(mapped.normalize('NFKD'), ch.normalize('NFKD'), `U+${cp.toString(16)} keeps its NFKD`)
    if (mapped !== ch) assert.ok(mapped.codePointAt(0)! < 0xff01 || mapped.codePointAt(0)! > 0xffef)
  }
  assert.equal(canonicalizeUsername('ｶﾞｸ'), 'ガク') // halfwidth katakana + voiced mark compose under NFC
})

test('username: canonicalize is idempotent on every single code point (RFC 8264 §7)', () => {
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    const ch = String.fromCodePoint(cp)
    const once = canonicalizeUsername(ch)
    if (canonicalizeUsername(once) !== once) assert.fail(`not idempotent at U+${cp.toString(16)}`)
  }
})

/** The RFC 8264 §7 mapping as the spec states it, every pass in full: the reference for the ASCII shortcut. */
function mappedInFull(input: string): string {
  let value = input
  for (;;) {
    const next = widthMap(value).toLowerCase().normalize('NFC')
    if (next === value) return value
    value = next
  }
}

test('username: the ASCII shortcut gives the full mapping for every ASCII string', () => {
  for (let a = 0; a < 0x80; a++) {
    for (const b of [0x41, 0x5a, 0x61, 0x7a, 0x7f, 0x00, a]) {
      const s = String.fromCharCode(a, b)
      assert.equal(canonicalizeUsername(s), mappedInFull(s))
    }
  }
  fc.assert(
    fc.property(fc.string({ unit: 'binary-ascii', maxLength: 40 }), (s) => canonicalizeUsername(s) === mappedInFull(s)),
    { numRuns: 2000 },
  )
  // one character past ASCII takes the full path
  assert.equal(canonicalizeUsername('MIGUEL\u0301'), mappedInFull('MIGUEL\u0301'))
  assert.equal(canonicalizeUsername('MIGUEL\u0080'), 'miguel\u0080')
})

// --- Length: 1 to 32 code points (security baseline "Username"; REST-auth String(32)) -------------------

test('username: 1 code point accepted, empty refused (RFC 8265 §3.4.3 "at least one character")', () => {
  accepted('a', 'a')
  accepted('7', '7')
  refused('', /must not be empty/)
})

test('username: 32 code points accepted, 33 refused (baseline: 1–32 code points)', () => {
  accepted('a'.repeat(32))
  refused('a'.repeat(33), /^Username must be at most 32 characters\.$/)
  assert.equal(USERNAME_MAX_CODE_POINTS, 32)
})

test('username: length counts code points, not UTF-16 units: 32 astral letters accepted, 33 refused', () => {
  const astral = '\u{20000}' // CJK Ext. B ideograph, 2 UTF-16 units
  assert.equal(astral.length, 2)
  accepted(astral.repeat(32))
  refused(astral.repeat(33), /at most 32 characters/)
  const deseret = '\u{10428}' // DESERET SMALL LETTER LONG I
  accepted(deseret.repeat(32))
  refused(deseret.repeat(33), /at most 32 characters/)
})

test('username: length is checked on the canonical (NFC) form', () => {
  accepted('e\u0301'.repeat(32)) // 64 code points as given, 32 after NFC
  refused('\u0130'.repeat(17), /at most 32/) // İ lowercases to i + U+0307: 34 code points
})

test('username: very long input is refused before any normalization work', () => {
  refused('a'.repeat(100_000), /at most 32 characters/)
})

// --- ":" (RFC 7617 §2) ---------------------------------------------------------------------------------

test('username: ":" refused (RFC 7617 §2)', () => {
  refused('mi:guel', /^Username must not contain ":"\.$/)
  refused(':', /":"/)
  refused('\uff1a', /":"/) // FULLWIDTH COLON width-maps to ":"
  accepted('miguel', 'miguel')
})

// --- Controls, spaces, invisible characters (baseline; RFC 8264 §9.11, §9.14, §9.13) --------------------

test('username: control characters refused (RFC 8264 §9.11 Controls)', () => {
  refused('mi\u0007guel', /control characters \(U\+0007\)/)
  refused('mi\u0000guel', /U\+0000/)
  refused('mi\u007fguel', /U\+007F/)
  refused('mi\u0085guel', /control characters \(U\+0085\)/)
  accepted('miguel')
})

test('username: whitespace of any kind refused (RFC 8265 §3.4.3; RFC 8264 §9.14 Spaces)', () => {
  refused('mi guel', /spaces \(U\+0020\)/)
  refused('miguel ', /U\+0020/)
  refused('\u3000miguel', /U\+0020/) // IDEOGRAPHIC SPACE width-maps to a space
  refused('mi\u00a0guel', /spaces \(U\+00A0\)/)
  refused('mi\u2003guel', /U\+2003/)
  refused('mi\u2028guel', /U\+2028/)
  refused('mi\tguel', /U\+0009/) // a control and a space: reported as a control
  accepted('mi_guel')
})

test('username: invisible and default-ignorable characters refused (RFC 8264 §9.13; UAX #44 Default_Ignorable)', () => {
  refused('mi\u200bguel', /invisible.*\(U\+200B\)/) // ZERO WIDTH SPACE
  refused('mi\u200dguel', /U\+200D/) // ZERO WIDTH JOINER
  refused('mi\u200cguel', /U\+200C/) // ZERO WIDTH NON-JOINER
  refused('\ufeffmiguel', /U\+FEFF/) // BOM
  refused('mi\u00adguel', /U\+00AD/) // SOFT HYPHEN
  refused('miguel\ufe0f', /U\+FE0F/) // VARIATION SELECTOR-16
  refused('miguel\u{e0101}', /U\+E0101/) // VARIATION SELECTOR-18
  refused('\u202emiguel', /U\+202E/) // RIGHT-TO-LEFT OVERRIDE
  refused('mi\u2066guel', /U\+2066/) // LEFT-TO-RIGHT ISOLATE
  refused('mi\u034fguel', /U\+034F/) // COMBINING GRAPHEME JOINER
  refused('\u3164', /U\+3164/) // HANGUL FILLER (a letter, but invisible)
  refused('mi\u{e0041}guel', /U\+E0041/) // TAG LATIN CAPITAL LETTER A
  accepted('miguel')
})

// --- Allowed code points: letters, marks after letters, digits, . _ - @ + (baseline allowlist) -------------

test('username: letters, decimal digits and . _ - @ + accepted (baseline allowlist)', () => {
  accepted('Miguel.G_2024-x@example+tag', 'miguel.g_2024-x@example+tag')
  accepted('Øyvind', 'øyvind')
  accepted('müller', 'müller')
  accepted('владимир')
  accepted('αλέξανδρος')
  accepted('محمد')
  accepted('דוד')
  accepted('राजेश') // Devanagari letters and vowel signs (marks)
  accepted('สมชาย')
  accepted('١٢٣') // Arabic-Indic digits
})

test('username: other punctuation and symbols refused (baseline allowlist)', () => {
  refused('mi!guel', /^Username must contain only letters, digits and .*\(U\+0021 is not allowed\)\.$/)
  refused('mi/guel', /U\+002F/)
  refused('mi#guel', /U\+0023/)
  refused("o'brien", /U\+0027/)
  refused('mi$guel', /U\+0024/)
  refused('mi😀', /U\+1F600/)
  refused('Ⅻ', /U\+217B/) // ROMAN NUMERAL (Nl, not Nd)
  refused('½', /U\+00BD/)
  refused('mi\ue000', /U\+E000/) // private use
  refused('mi\ud800guel', /U\+D800/) // lone surrogate
  refused('mi\u{50000}', /U\+50000/) // unassigned
})

test('username: a combining mark must follow a letter (RFC 8264 §9; UTS #39 §5.4)', () => {
  accepted('e\u20dd') // letter + enclosing mark
  accepted('a\u0301\u0323') // letter + two marks
  refused('\u0301miguel', /combining mark.*U\+0301/)
  refused('1\u20e3', /combining mark.*U\+20E3/) // keycap after a digit
  refused('mi.\u0301guel', /U\+0301/)
})

test('username: compatibility characters refused (RFC 8264 §9.17 HasCompat, IdentifierClass)', () => {
  refused('\ufb01nn', /compatibility.*U\+FB01/) // ﬁ ligature
  refused('user\u{1d7cf}', /U\+1D7CF/) // MATHEMATICAL BOLD DIGIT ONE
  refused('\u{1d5ba}dmin', /U\+1D5BA/) // MATHEMATICAL SANS-SERIF SMALL A
  refused('\u00b5ser', /U\+00B5/) // MICRO SIGN (looks like Greek mu)
  accepted('finn')
})

// --- Scripts (UTS #39 §5.1 mixed-script detection; RFC 8265 §7.3 / RFC 8264 §12.5 homoglyphs) ---------------

test('username: Latin with Cyrillic "pаypal" refused (UTS #39 §5.1, RFC 8264 §12.5)', () => {
  refused('p\u0430ypal', /^Username mixes scripts \(Latin and Cyrillic\)\.$/)
  refused('\u0430pple', /mixes scripts \(Cyrillic and Latin\)/)
  accepted('paypal')
  accepted('\u0440\u0430\u0443\u0440\u0430\u043b') // all Cyrillic
})

test('username: Latin with Greek refused (UTS #39 §5.1)', () => {
  refused('\u03bfk', /mixes scripts \(Greek and Latin\)/) // Greek omicron + Latin k
  refused('micro\u03bc', /Latin and Greek/)
})

test('username: Japanese mixes Han, Hiragana and Katakana (UTS #39 §5.1 Jpan)', () => {
  accepted('山田たろう')
  accepted('ヤマダ太郎')
  accepted('東京タワーの近く') // includes U+30FC (Common, Script_Extensions Hira/Kana)
  accepted('ｶﾀｶﾅ', 'カタカナ')
  accepted('佐々木') // 々 U+3005
})

test('username: Korean mixes Hangul and Han (UTS #39 §5.1 Kore)', () => {
  accepted('김철수')
  accepted('金철수')
  refused('ひらがな한글', /mixes scripts \(Hiragana and Hangul\)/)
})

test('username: Latin with Han refused; ASCII digits and punctuation go with any script (UTS #39 §5.1)', () => {
  refused('tanaka太郎', /Latin and Han/)
  accepted('太郎_2024')
  accepted('сергей.1985')
  accepted('محمد-99')
})

test('username: digits from different number systems refused (UTS #39 §5.3)', () => {
  refused('\u0661\u06f1', /different number systems/) // Arabic-Indic one + Extended Arabic-Indic one
  refused('8\u09ea', /different number systems/) // ASCII 8 + Bengali four (looks like 8)
  accepted('\u09e7\u09ea') // Bengali digits only
})

test('username: non-ASCII digits must share the letters\' script (UTS #39 §5.1)', () => {
  refused('abc\u0967', /Latin and Devanagari/) // Devanagari digit one
  accepted('राज\u0967')
})

// --- Punctuation-only and reserved names (baseline; ASVS 6.3.2 context) ---------------------------------

test('username: all-punctuation names refused (baseline allowlist)', () => {
  refused('...', /at least one letter or digit/)
  refused('-', /at least one letter or digit/)
  refused('@+_', /at least one letter or digit/)
  accepted('.a.')
  accepted('-1-')
})

test('username: reserved canonical names refused (baseline "reserved names")', () => {
  refused('admin', /^Username "admin" is reserved\.$/)
  refused('Admin', /"admin" is reserved/)
  refused('ＲＯＯＴ', /"root" is reserved/)
  for (const name of [
    'admin',
    'administrator',
    'root',
    'system',
    'me',
    'self',
    'anonymous',
    'null',
    'undefined',
    'rest-auth',
    'restauth',
    'support',
    'security',
  ]) {
    assert.ok(RESERVED_USERNAMES.has(name))
    refused(name, /is reserved/)
  }
  accepted('admin2')
  accepted('myadmin')
})

test('username: reasons never echo the input, only a code point (ASVS 16.2.5)', () => {
  const error = refused('secretname\u200b', /U\+200B/)
  assert.ok(!error.message.includes('secretname'))
})

// --- Properties -----------------------------------------------------------------------------------------

const tricky = fc.constantFrom(
  'A', 'a', 'İ', 'Σ', 'ß', 'ﬁ', ':', ' ', '\u3000', '\uff21', '\uff76', '\uff9e', '\uffa1', '\u0301', '\u0345',
  '\u200b', '\u200d', '\ufeff', '\u0430', '\u03bf', '山', 'た', 'カ', 'ー', '한', '\u{20000}', '\ud800', '\udc00',
  '.', '-', '_', '@', '+', '1', '\u0661', '\u09ea', '\u1100', '\u1161', '\u11a8',
)
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'grapheme-composite', maxLength: 40 }),
  fc.array(tricky, { maxLength: 40 }).map((parts) => parts.join('')),
)

test('username property: canonicalize(canonicalize(x)) === canonicalize(x) for any string (RFC 8264 §7)', () => {
  fc.assert(
    fc.property(anyString, (s) => {
      const once = canonicalizeUsername(s)
      assert.equal(canonicalizeUsername(once), once)
    }),
    { numRuns: 3000 },
  )
})

test('username property: parseUsername throws only RestAuthError username_invalid', () => {
  fc.assert(
    fc.property(anyString, (s) => {
      try {
        parseUsername(s)
      } catch (error) {
        assert.ok(error instanceof RestAuthError, `unexpected ${String(error)}`)
        assert.equal(error.code, 'username_invalid')
      }
    }),
    { numRuns: 3000 },
  )
})

test('username property: an accepted canonical has 1–32 code points and no ":" or whitespace (RFC 7617 §2)', () => {
  const plausible = fc.oneof(
    anyString,
    fc.string({ unit: fc.constantFrom(...'abcXYZ019._-@+: \u3000\uff41\u0430\u200b'.split('')), maxLength: 40 }),
  )
  fc.assert(
    fc.property(plausible, (s) => {
      let parsed
      try {
        parsed = parseUsername(s)
      } catch {
        return
      }
      assert.ok(!parsed.canonical.includes(':'))
      assert.ok(!/[\p{White_Space}\p{Cc}\p{Default_Ignorable_Code_Point}]/u.test(parsed.canonical))
      const n = cpCount(parsed.canonical)
      assert.ok(n >= 1 && n <= 32)
      assert.equal(parsed.canonical, canonicalizeUsername(parsed.display))
      assert.equal(parsed.display, s.normalize('NFC'))
    }),
    { numRuns: 3000 },
  )
})
