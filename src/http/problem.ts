/**
 * RFC 9457 problem details. Every error leaves through here: a RestAuthError becomes its coded
 * problem; Fastify's own 4xx errors are mapped onto the catalogue; anything else is a bare 500 (or a
 * 503 when the database is unreachable) whose details go to the log only, never to the client.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_CATALOGUE, type ErrorCode, RestAuthError } from '../errors.ts'
import { isDatabaseUnavailable } from '../store/kysely-store.ts'
import { BASIC_CHALLENGE } from '../auth/authorization.ts'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8'

export interface ProblemBody {
  readonly type: string
  readonly title: string
  readonly status: number
  readonly detail: string
  readonly code: ErrorCode
  readonly [extension: string]: string | number | boolean
}

export function problemType(code: ErrorCode): string {
  return `/errors#${code}`
}

export function toProblem(error: RestAuthError): ProblemBody {
  return {
    ...error.extensions,
    type: problemType(error.code),
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
  }
}

export function sendProblem(reply: FastifyReply, error: RestAuthError, headers: Record<string, string> = {}): FastifyReply {
  const all = { ...error.headers, ...headers }
  if (error.status === 401 && all['WWW-Authenticate'] === undefined) all['WWW-Authenticate'] = BASIC_CHALLENGE
  return reply.code(error.status).headers(all).type(PROBLEM_CONTENT_TYPE).send(toProblem(error))
}

const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_ERR_BAD_URL: 'invalid_request',
  // A path parameter longer than the router accepts cannot name anything (e.g. a 300-digit user id).
  FST_ERR_MAX_PARAM_LENGTH: 'not_found',
}

/** Maps anything thrown in a request to a RestAuthError. Pure apart from reading the error. */
export function classify(error: unknown): RestAuthError {
  if (error instanceof RestAuthError) return error
  const fe = error as Partial<FastifyError> | undefined
  if (fe?.validation !== undefined && Array.isArray(fe.validation)) {
    const first = fe.validation[0]
    const missing = first?.params && 'missingProperty' in first.params ? String(first.params['missingProperty']) : undefined
    const path = first?.instancePath?.replace(/^\//, '') ?? ''
    const field = missing ?? (path === '' ? undefined : path)
    return new RestAuthError('invalid_request', `${fe.validationContext ?? 'request'}${first?.instancePath ?? ''} ${first?.message ?? 'is invalid'}`.trim(), {
      extensions: field === undefined ? {} : { field },
    })
  }
  const mapped = typeof fe?.code === 'string' ? FASTIFY_CODES[fe.code] : undefined
  if (mapped !== undefined) return new RestAuthError(mapped, undefined, { cause: error })
  if (isDatabaseUnavailable(error)) {
    return new RestAuthError('database_unavailable', 'The service is temporarily unavailable.', {
      cause: error,
      headers: { 'Retry-After': '5' },
    })
  }
  const status = typeof fe?.statusCode === 'number' ? fe.statusCode : 500
  if (status === 413) return new RestAuthError('payload_too_large', undefined, { cause: error })
  if (status === 415) return new RestAuthError('unsupported_media_type', undefined, { cause: error })
  if (status === 431) return new RestAuthError('header_too_large', undefined, { cause: error })
  if (status >= 400 && status < 500) return new RestAuthError('invalid_request', 'The request is malformed.', { cause: error })
  return new RestAuthError('internal_error', 'An unexpected error occurred.', { cause: error })
}

/** Fastify error handler. Logs what the client is not told. */
export function errorHandler(this: unknown, error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const problem = classify(error)
  if (problem.status >= 500) {
    // The cause may be a driver error; its message names tables or hosts, never a request secret.
    request.log.error({ err: problem.cause ?? error, code: problem.code }, 'request failed')
  } else if (problem.internal !== undefined) {
    request.log.info({ code: problem.code, reason: problem.internal }, 'request refused')
  }
  return sendProblem(reply, problem)
}

export function catalogueStatus(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].status
}
