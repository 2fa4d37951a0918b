/**
 * application/x-www-form-urlencoded bodies for the OAuth endpoints (RFC 6749 §3.2, RFC 7009 §2.1,
 * RFC 7662 §2.1), with the same limits as JSON bodies. A parameter sent twice is refused
 * (RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once").
 */
import { RestAuthError } from '../errors.ts'
import { decodeUtf8Body } from '../util/utf8.ts'

export const MAX_FORM_PARAMS = 50

export type FormBody = Readonly<Record<string, string>>

export function parseFormBody(body: Buffer): FormBody {
  const params = new URLSearchParams(decodeUtf8Body(body))
  const out: Record<string, string> = Object.create(null) as Record<string, string>
  let count = 0
  for (const [key, value] of params) {
    if (++count > MAX_FORM_PARAMS) throw new RestAuthError('invalid_request', `More than ${MAX_FORM_PARAMS} parameters.`)
    if (key in out) throw new RestAuthError('invalid_request', `The parameter "${safeName(key)}" is repeated (RFC 6749 §3.1).`)
    out[key] = value
  }
  return out
}

/** Parameter names are echoed in errors only when they are short and plain. */
function safeName(key: string): string {
  return /^[A-Za-z0-9_.-]{1,40}$/.test(key) ? key : '?'
}
