/**
 * A copy of a string that shares no memory with the one it came from. V8 represents a slice of 13 or
 * more characters as a view into its parent (a SlicedString): a token cut from a decoded Basic header
 * or a form body points into the whole text, password or client secret included, and kept as a map
 * key it keeps that text alive for the token's lifetime. Only for ASCII/latin-1 text such as a token.
 */
export function detached(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1')
}
