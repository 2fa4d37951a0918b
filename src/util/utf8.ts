import { RestAuthError } from '../errors.ts'

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Request bodies are UTF-8 (RFC 8259 §8.1, WHATWG URL form encoding); anything else is a 400. */
export function decodeUtf8Body(body: Buffer): string {
  try {
    return utf8.decode(body)
  } catch {
    throw new RestAuthError('invalid_encoding', 'The body is not valid UTF-8.')
  }
}
