/**
 * Usernames: RFC 8265 §3.4 UsernameCaseMapped preparation and enforcement, plus the allowlist of
 * docs/security-baseline.md ("Username" row).
 *
 * `canonicalizeUsername` only maps (width map → toLowerCase → NFC); `parseUsername` maps and validates.
 * Uniqueness is decided on the canonical form; the display form is the input as registered (NFC only).
 * Pure: no I/O.
 */

import { RestAuthError } from '../errors.ts'

export const USERNAME_MAX_CODE_POINTS = 32

/** Canonical names nobody may register (compared against the canonical form). */
export const RESERVED_USERNAMES: ReadonlySet<string> = new Set([
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
])

export interface ParsedUsername {
  readonly display: string
  readonly canonical: string
}

// ---------------------------------------------------------------------------------------------------------------
// Width mapping (RFC 8265 §3.4.1 step 1 / RFC 8264 §9.1)
// ---------------------------------------------------------------------------------------------------------------

/**
 * The code points whose Unicode decomposition type is <wide> or <narrow> are exactly U+3000 and
 * U+FF01–U+FFEF (UnicodeData.txt). Each maps to a single code point: its decomposition mapping (one level,
 * not the full NFKC result). Decomposition mappings are frozen by the Unicode stability policy, so the
 * table is derived once from the engine's normalizer:
 * - for most code points NFKC of the single code point *is* the one-level mapping;
 * - U+FFE3 FULLWIDTH MACRON maps to U+00AF MACRON (whose own compatibility decomposition NFKC would apply too);
 * - U+FFA0–U+FFDC halfwidth Hangul map to the Hangul Compatibility Jamo (U+3130–U+318F), not to the
 *   conjoining jamo NFKC yields; the right one is the compatibility jamo with the same NFKD.
 */
let widthTable: Map<number, string> | undefined

function buildWidthTable(): Map<number, string> {
  const table = new Map<number, string>()
  const add = (cp: number): void => {
    const ch = String.fromCodePoint(cp)
    const nfkd = ch.normalize('NFKD')
    if (nfkd === ch) return // unassigned in this block (U+FFBF…U+FFC1, U+FFE7, U+FFEF, …) or no decomposition
    let target: string | undefined
    if (cp >= 0xffa0 && cp <= 0xffdc) {
      for (let j = 0x3130; j <= 0x318f; j++) {
        const candidate = String.fromCodePoint(j)
        if (candidate.normalize('NFKD') === nfkd) {
          target = candidate
          break
        }
      }
    } else if (cp === 0xffe3) {
      target = '\u00af'
    } else {
      const nfkc = ch.normalize('NFKC')
      if ([...nfkc].length === 1) target = nfkc
    }
    // Defensive: should never happen with a conforming normalizer; fall back to the compatibility form.
    table.set(cp, target ?? ch.normalize('NFKC'))
  }
  add(0x3000)
  for (let cp = 0xff01; cp <= 0xffef; cp++) add(cp)
  return table
}

const WIDE_OR_NARROW = /[\u3000\uff01-\uffef]/

/** RFC 8264 §9.1 width mapping: fullwidth and halfwidth code points to their decomposition mappings. */
export function widthMap(input: string): string {
  if (!WIDE_OR_NARROW.test(input)) return input
  widthTable ??= buildWidthTable()
  const table = widthTable
  let out = ''
  for (const ch of input) {
    const cp = ch.codePointAt(0) ?? 0
    out += table.get(cp) ?? ch
  }
  return out
}

function mapOnce(input: string): string {
  return widthMap(input).toLowerCase().normalize('NFC')
}

/** RFC 8264 §7: rules are re-applied until the string is stable; unstable after 3 more passes = invalid. */
const MAX_EXTRA_PASSES = 3

function mapToFixedPoint(input: string): { readonly value: string; readonly stable: boolean } {
  let value = mapOnce(input)
  for (let i = 0; i < MAX_EXTRA_PASSES; i++) {
    const next = mapOnce(value)
    if (next === value) return { value, stable: true }
    value = next
  }
  return { value, stable: false }
}

/**
 * RFC 8265 §3.4 UsernameCaseMapped preparation+enforcement mapping: width-map (fullwidth/halfwidth forms,
 * U+FF01–U+FFEF and U+3000, to their <wide>/<narrow> decompositions), then toLowerCase(), then NFC.
 * No validation. Applied until stable (RFC 8264 §7), so the result is idempotent.
 */
export function canonicalizeUsername(input: string): string {
  // ASCII is its own width mapping and NFC form, and lower-cases to ASCII: one pass is the fixed point.
  // Every Basic login canonicalizes its username, and the two NFC passes cost ~600 ns of it.
  if (isAscii(input)) return input.toLowerCase()
  return mapToFixedPoint(input).value
}

function isAscii(input: string): boolean {
  for (let i = 0; i < input.length; i++) if (input.charCodeAt(i) > 0x7f) return false
  return true
}

// ---------------------------------------------------------------------------------------------------------------
// Scripts (UTS #39 §5.1 "resolved script set", with Script_Extensions)
// ---------------------------------------------------------------------------------------------------------------

/**
 * Unicode Script property values (long names), generated from PropertyValueAliases.txt (Unicode 14, via
 * perl Unicode::UCD) plus the scripts of Unicode 15–17; Common and Inherited are left out on purpose.
 * Names the running engine does not know are skipped. A letter that matches none of them is given the
 * pseudo-script "Unknown", which mixes with no other script.
 */
const SCRIPT_NAMES = [
  'Adlam', 'Caucasian_Albanian', 'Ahom', 'Arabic', 'Imperial_Aramaic', 'Armenian', 'Avestan', 'Balinese', 'Bamum',
  'Bassa_Vah', 'Batak', 'Bengali', 'Bhaiksuki', 'Bopomofo', 'Brahmi', 'Braille', 'Buginese', 'Buhid', 'Chakma',
  'Canadian_Aboriginal', 'Carian', 'Cham', 'Cherokee', 'Chorasmian', 'Coptic', 'Cypro_Minoan', 'Cypriot',
  'Cyrillic', 'Devanagari', 'Dives_Akuru', 'Dogra', 'Deseret', 'Duployan', 'Egyptian_Hieroglyphs', 'Elbasan',
  'Elymaic', 'Ethiopic', 'Georgian', 'Glagolitic', 'Gunjala_Gondi', 'Masaram_Gondi', 'Gothic', 'Grantha', 'Greek',
  'Gujarati', 'Gurmukhi', 'Hangul', 'Han', 'Hanunoo', 'Hatran', 'Hebrew', 'Hiragana', 'Anatolian_Hieroglyphs',
  'Pahawh_Hmong', 'Nyiakeng_Puachue_Hmong', 'Old_Hungarian', 'Old_Italic', 'Javanese', 'Kayah_Li', 'Katakana',
  'Kharoshthi', 'Khmer', 'Khojki', 'Khitan_Small_Script', 'Kannada', 'Kaithi', 'Tai_Tham', 'Lao', 'Latin', 'Lepcha',
  'Limbu', 'Linear_A', 'Linear_B', 'Lisu', 'Lycian', 'Lydian', 'Mahajani', 'Makasar', 'Mandaic', 'Manichaean',
  'Marchen', 'Medefaidrin', 'Mende_Kikakui', 'Meroitic_Cursive', 'Meroitic_Hieroglyphs', 'Malayalam', 'Modi',
  'Mongolian', 'Mro', 'Meetei_Mayek', 'Multani', 'Myanmar', 'Nandinagari', 'Old_North_Arabian', 'Nabataean', 'Newa',
  'Nko', 'Nushu', 'Ogham', 'Ol_Chiki', 'Old_Turkic', 'Oriya', 'Osage', 'Osmanya', 'Old_Uyghur', 'Palmyrene',
  'Pau_Cin_Hau', 'Old_Permic', 'Phags_Pa', 'Inscriptional_Pahlavi', 'Psalter_Pahlavi', 'Phoenician', 'Miao',
  'Inscriptional_Parthian', 'Rejang', 'Hanifi_Rohingya', 'Runic', 'Samaritan', 'Old_South_Arabian', 'Saurashtra',
  'SignWriting', 'Shavian', 'Sharada', 'Siddham', 'Khudawadi', 'Sinhala', 'Sogdian', 'Old_Sogdian', 'Sora_Sompeng',
  'Soyombo', 'Sundanese', 'Syloti_Nagri', 'Syriac', 'Tagbanwa', 'Takri', 'Tai_Le', 'New_Tai_Lue', 'Tamil', 'Tangut',
  'Tai_Viet', 'Telugu', 'Tifinagh', 'Tagalog', 'Thaana', 'Thai', 'Tibetan', 'Tirhuta', 'Tangsa', 'Toto', 'Ugaritic',
  'Vai', 'Vithkuqi', 'Warang_Citi', 'Wancho', 'Old_Persian', 'Cuneiform', 'Yezidi', 'Yi', 'Zanabazar_Square', 'Kawi',
  'Nag_Mundari', 'Garay', 'Gurung_Khema', 'Kirat_Rai', 'Ol_Onal', 'Sunuwar', 'Todhri', 'Tulu_Tigalari', 'Beria_Erfe',
  'Sidetic', 'Tai_Yo', 'Tolong_Siki',
] as const

let scriptMatchers: ReadonlyArray<readonly [string, RegExp]> | undefined

function getScriptMatchers(): ReadonlyArray<readonly [string, RegExp]> {
  if (scriptMatchers === undefined) {
    const list: Array<readonly [string, RegExp]> = []
    for (const name of SCRIPT_NAMES) {
      try {
        list.push([name, new RegExp(`^\\p{Script_Extensions=${name}}$`, 'u')])
      } catch {
        // the engine's Unicode version predates this script
      }
    }
    scriptMatchers = list
  }
  return scriptMatchers
}

const COMMON_OR_INHERITED = /^[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]$/u
const scriptCache = new Map<number, readonly string[]>()

/** Script_Extensions of one code point; empty for Common/Inherited (they go with any script). */
function scriptsOf(ch: string): readonly string[] {
  const cp = ch.codePointAt(0) ?? 0
  const cached = scriptCache.get(cp)
  if (cached !== undefined) return cached
  let result: readonly string[]
  if (cp < 0x80) {
    result = /[a-z]/i.test(ch) ? ['Latin'] : []
  } else if (COMMON_OR_INHERITED.test(ch)) {
    result = []
  } else {
    const found = getScriptMatchers()
      .filter(([, re]) => re.test(ch))
      .map(([name]) => name)
    result = found.length > 0 ? found : ['Unknown']
  }
  if (scriptCache.size > 4096) scriptCache.clear()
  scriptCache.set(cp, result)
  return result
}

/** UTS #39 §5.1 augmentation: Han, Hiragana, Katakana → Japanese; Han, Hangul → Korean; Han, Bopomofo → Hanb. */
function augment(scripts: readonly string[]): Set<string> {
  const set = new Set(scripts)
  if (set.has('Han')) {
    set.add('Japanese')
    set.add('Korean')
    set.add('Han_With_Bopomofo')
  }
  if (set.has('Hiragana') || set.has('Katakana')) set.add('Japanese')
  if (set.has('Hangul')) set.add('Korean')
  if (set.has('Bopomofo')) set.add('Han_With_Bopomofo')
  return set
}

function displayScript(name: string): string {
  return name.replaceAll('_', ' ')
}

/** Returns [firstScript, conflictingScript] when the string is not single-script, else undefined. */
function findScriptConflict(codePoints: readonly string[]): readonly [string, string] | undefined {
  let resolved: Set<string> | undefined
  let first: string | undefined
  for (const ch of codePoints) {
    const scripts = scriptsOf(ch)
    if (scripts.length === 0) continue
    const own = augment(scripts)
    if (resolved === undefined) {
      resolved = own
      first = scripts[0]
      continue
    }
    const next = new Set<string>()
    for (const s of resolved) if (own.has(s)) next.add(s)
    if (next.size === 0) return [first ?? 'Unknown', scripts[0] ?? 'Unknown']
    resolved = next
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Digits (UTS #39 §5.3 mixed-number detection)
// ---------------------------------------------------------------------------------------------------------------

const DECIMAL_DIGIT = /^\p{Nd}$/u

/** The code point of the zero of a decimal digit's run (Nd characters come in contiguous runs 0…9). */
function digitZero(cp: number): number {
  let start = cp
  while (start > 0 && DECIMAL_DIGIT.test(String.fromCodePoint(start - 1))) start--
  return start + Math.floor((cp - start) / 10) * 10
}

// ---------------------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------------------

const ASCII_FAST = /^[a-z0-9._@+-]+$/
const CONTROL = /^\p{Cc}$/u
const WHITESPACE = /^\p{White_Space}$/u
const INVISIBLE = /^[\p{Default_Ignorable_Code_Point}\p{Cf}]$/u
const LETTER = /^\p{L}$/u
const MARK = /^\p{M}$/u
const ALLOWED_PUNCTUATION = new Set(['.', '_', '-', '@', '+'])

/**
 * Early refusal before any normalization work (DoS guard). Mapping never drops code points and canonical
 * composition merges at most 4 of them into one (the longest canonical decomposition, e.g. U+1F82, has 4),
 * so an input of more than 32 × 4 code points (≤ 256 UTF-16 units) cannot be valid; 1024 leaves a wide margin.
 */
const MAX_RAW_UNITS = 1024

function codePointLabel(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`
}

function invalid(reason: string): RestAuthError {
  return new RestAuthError('username_invalid', reason)
}

function tooLong(): RestAuthError {
  return invalid(`Username must be at most ${USERNAME_MAX_CODE_POINTS} characters.`)
}

/** Compatibility characters (NFKC ≠ itself: ligatures, styled letters, superscripts) are PRECIS-disallowed. */
function hasCompat(ch: string): boolean {
  return ch.normalize('NFKC') !== ch
}

function validateCanonical(canonical: string): void {
  const cps = [...canonical]
  if (cps.length === 0) throw invalid('Username must not be empty.')
  if (cps.length > USERNAME_MAX_CODE_POINTS) throw tooLong()
  if (canonical.includes(':')) throw invalid('Username must not contain ":".')

  if (!ASCII_FAST.test(canonical)) {
    for (const ch of cps) {
      if (CONTROL.test(ch)) throw invalid(`Username must not contain control characters (${codePointLabel(ch)}).`)
    }
    for (const ch of cps) {
      if (WHITESPACE.test(ch)) throw invalid(`Username must not contain spaces (${codePointLabel(ch)}).`)
    }
    for (const ch of cps) {
      if (INVISIBLE.test(ch)) {
        throw invalid(`Username must not contain invisible or formatting characters (${codePointLabel(ch)}).`)
      }
    }
    let previousBase: 'letter' | 'other' = 'other'
    for (const ch of cps) {
      if (LETTER.test(ch)) {
        previousBase = 'letter'
      } else if (MARK.test(ch)) {
        if (previousBase !== 'letter') {
          throw invalid(`Username has a combining mark that does not follow a letter (${codePointLabel(ch)}).`)
        }
      } else if (DECIMAL_DIGIT.test(ch) || ALLOWED_PUNCTUATION.has(ch)) {
        previousBase = 'other'
      } else {
        throw invalid(
          `Username must contain only letters, digits and ".", "_", "-", "@", "+" (${codePointLabel(ch)} is not allowed).`,
        )
      }
    }
    for (const ch of cps) {
      if (hasCompat(ch)) {
        throw invalid(
          `Username must not contain compatibility characters such as ligatures or styled letters (${codePointLabel(ch)}).`,
        )
      }
    }
    const conflict = findScriptConflict(cps)
    if (conflict !== undefined) {
      throw invalid(`Username mixes scripts (${displayScript(conflict[0])} and ${displayScript(conflict[1])}).`)
    }
    let zero: number | undefined
    for (const ch of cps) {
      if (!DECIMAL_DIGIT.test(ch)) continue
      const z = digitZero(ch.codePointAt(0) ?? 0)
      if (zero === undefined) zero = z
      else if (z !== zero) throw invalid('Username mixes digits from different number systems.')
    }
  }

  if (cps.every((ch) => ALLOWED_PUNCTUATION.has(ch))) {
    throw invalid('Username must contain at least one letter or digit.')
  }
  if (RESERVED_USERNAMES.has(canonical)) throw invalid(`Username "${canonical}" is reserved.`)
}

/**
 * Validates and returns {display: the input as given (NFC-normalized only), canonical}.
 * Throws RestAuthError('username_invalid', reason); the reason names at most the offending code point.
 */
export function parseUsername(input: string): ParsedUsername {
  if (typeof input !== 'string') throw invalid('Username must be a string.')
  if (input.length === 0) throw invalid('Username must not be empty.')
  if (input.length > MAX_RAW_UNITS) throw tooLong()
  const { value: canonical, stable } = mapToFixedPoint(input)
  if (!stable) throw invalid('Username does not have a stable normalized form.')
  validateCanonical(canonical)
  return { display: input.normalize('NFC'), canonical }
}
