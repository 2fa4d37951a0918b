/**
 * The only body parser: strict UTF-8 JSON with size, depth and key-count limits and prototype
 * poisoning refused (security baseline "Body size"; Fastify CVE-2025-32442 family).
 */
import { RestAuthError } from '../errors.ts'
import { decodeUtf8Body } from '../util/utf8.ts'

export const BODY_LIMIT_BYTES = 16 * 1024
export const MAX_DEPTH = 32
export const MAX_KEYS = 100

export function parseJsonBody(body: Buffer): unknown {
  const text = decodeUtf8Body(body)
  if (text.trim() === '') throw new RestAuthError('invalid_json', 'The body is empty.')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new RestAuthError('invalid_json', 'The body is not valid JSON.')
  }
  checkShape(value)
  return value
}

function checkShape(root: unknown): void {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: root, depth: 1 }]
  while (stack.length > 0) {
    const { value, depth } = stack.pop() as { value: unknown; depth: number }
    if (value === null || typeof value !== 'object') continue
    if (depth > MAX_DEPTH) throw new RestAuthError('invalid_json', `The body nests deeper than ${MAX_DEPTH} levels.`)
    if (Array.isArray(value)) {
      for (const item of value) stack.push({ value: item, depth: depth + 1 })
      continue
    }
    const keys = Object.keys(value)
    if (keys.length > MAX_KEYS) throw new RestAuthError('invalid_json', `An object in the body has more than ${MAX_KEYS} keys.`)
    for (const key of keys) {
      if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
        throw new RestAuthError('invalid_json', `The key "${key}" is not allowed.`)
      }
      stack.push({ value: (value as Record<string, unknown>)[key], depth: depth + 1 })
    }
  }
}
