/**
 * What a test can ask of the heap: whether a text is still held in it, by a heap snapshot of this
 * process. A needle built by concatenation (a template literal with a substitution) is a V8 ConsString,
 * which the snapshot names "(concatenated string)" rather than by its text, so the needle itself is
 * not what is found; what is found is a flat string (one read off a Buffer, or one flattened by a
 * slice) that the code under test kept.
 */
import { getHeapSnapshot } from 'node:v8'

/** Whether the live heap (after the full GC a snapshot makes) holds a string containing `needle`. */
export async function heapHolds(needle: string): Promise<boolean> {
  // a regular expression's last input is kept by V8 (RegExp.input): make it one of no interest
  /x/.test('x')
  let tail = ''
  for await (const chunk of getHeapSnapshot()) {
    const text = tail + String(chunk)
    if (text.includes(needle)) return true
    tail = text.slice(-needle.length)
  }
  return false
}
