/**
 * The common-password blocklist (ASVS 6.2.4, 6.2.12; NIST SP 800-63B-4 blocklist requirement).
 *
 * Backed by the `passwords-common` list of `@zxcvbn-ts/language-common` (≈49k passwords from breach
 * corpora, ordered by frequency, all lowercase). The package is CommonJS (`main: dist/index.cjs`, no
 * `exports` map); Node's ESM loader exposes its `exports.dictionary` as a named export, and TypeScript
 * (module NodeNext) types it from `dist/index.d.ts`, so the named import works under tsx and after tsc.
 * The Set is built lazily, once, on first use. Pure: no I/O beyond the module import.
 */

import { dictionary } from '@zxcvbn-ts/language-common'

let common: ReadonlySet<string> | undefined

function commonPasswords(): ReadonlySet<string> {
  common ??= new Set(dictionary['passwords-common'].map((p) => p.toLowerCase()))
  return common
}

/** True when the (already lowercased) password is on the common-password list. */
export function isCommonPassword(lowercased: string): boolean {
  return commonPasswords().has(lowercased)
}

/** Number of distinct entries in the blocklist (for docs, health output and tests). */
export function commonPasswordCount(): number {
  return commonPasswords().size
}
