/**
 * The authentication step of protected routes: parses the header, asks the Authenticator, and on
 * failure answers with the challenge of the scheme the client used (RFC 7617 §2 / RFC 6750 §3).
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { type Authenticator, type Principal, presentedScheme, type UserPrincipal } from '../../auth/authenticate.ts'
import { BASIC_CHALLENGE, bearerChallenge, parseAuthorization } from '../../auth/authorization.ts'
import { anonymous, attemptedName, type AuditLog } from '../../audit/audit.ts'
import { RestAuthError } from '../../errors.ts'
import { classify, sendProblem } from '../problem.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined
  }
}

/** Node keeps only the first of duplicate Authorization headers; we refuse them instead. */
function countAuthorization(rawHeaders: readonly string[]): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name?.length === 13 && name.toLowerCase() === 'authorization') n++
  }
  return n
}

export function challengeFor(scheme: ReturnType<typeof presentedScheme>, error: RestAuthError): string | undefined {
  if (error.status !== 401 && error.code !== 'bearer_malformed') return undefined
  if (scheme !== 'bearer') return BASIC_CHALLENGE
  if (error.code === 'bearer_malformed') return bearerChallenge({ error: 'invalid_request', description: error.message })
  if (error.code === 'authentication_required') return bearerChallenge()
  return bearerChallenge({ error: 'invalid_token', description: error.message })
}

export interface AuthenticateOptions {
  /** The route speaks for a user: a service client's own token gets 403 insufficient_scope. */
  readonly user?: boolean
  /** Where failed password checks are recorded. */
  readonly audit?: AuditLog
}

/** Password failures worth an audit row (token failures are noise: expiry is normal). */
const AUDITED_FAILURES = new Set(['invalid_credentials', 'account_pending', 'account_disabled'])

/** The username a Basic attempt named, for the audit log (never the password). */
function attemptedUsername(header: string | undefined): string {
  try {
    const parsed = header === undefined ? undefined : parseAuthorization(header)
    return parsed?.scheme === 'basic' ? attemptedName(parsed.username) : ''
  } catch {
    return ''
  }
}

/** RFC 6750 §3.1: a valid token that may not do this gets 403 and error="insufficient_scope". */
export function insufficientScope(detail: string, scope?: string): RestAuthError {
  return new RestAuthError('insufficient_scope', detail, {
    headers: { 'WWW-Authenticate': bearerChallenge({ error: 'insufficient_scope', description: detail, ...(scope ? { scope } : {}) }) },
  })
}

export function authenticate(authenticator: Authenticator, options: AuthenticateOptions = {}) {
  async function readThrough(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization
    try {
      if (countAuthorization(request.raw.rawHeaders) > 1) {
        throw new RestAuthError('duplicate_authorization', 'Send exactly one Authorization header.')
      }
      const principal = await authenticator.authenticate(header, request.ip)
      if (options.user === true && principal.method === 'client_token') {
        throw insufficientScope('This route needs the token of a user, not of a service client.')
      }
      request.principal = principal
    } catch (thrown) {
      const error = classify(thrown)
      if (error.status >= 500) throw thrown // the error handler logs and answers
      const challenge = challengeFor(presentedScheme(header), error)
      if (error.internal !== undefined) request.log.info({ code: error.code, reason: error.internal }, 'authentication refused')
      if (options.audit !== undefined && AUDITED_FAILURES.has(error.code)) {
        await options.audit.record({
          event: 'auth.failure',
          outcome: 'failure',
          actor: anonymous(request.ip),
          subject: { id: null, username: attemptedUsername(header) },
          detail: { reason: error.code, route: request.routeOptions.url ?? '' },
        })
      }
      await sendProblem(reply, error, challenge === undefined ? {} : { 'WWW-Authenticate': challenge })
    }
  }

  // Callback style, not async: a request whose credentials memory already vouches for (the steady
  // state of a client holding a token) is passed on synchronously, with no promise, I/O or crypto.
  // Anything else, refusals included, takes the read-through path above.
  return function authenticateRequest(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const header = request.headers.authorization
    const known = header === undefined ? undefined : authenticator.fromMemory(header)
    if (known !== undefined && !(options.user === true && known.method === 'client_token') && countAuthorization(request.raw.rawHeaders) === 1) {
      request.principal = known
      done()
      return
    }
    readThrough(request, reply).then(() => done(), done)
  }
}

/** The principal set by `authenticate`; a route without that step calling this is a bug. */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === undefined) throw new TypeError('route is missing the authenticate step')
  return request.principal
}

/** The user principal of a route authenticated with `{ user: true }`. */
export function userPrincipalOf(request: FastifyRequest): UserPrincipal {
  const principal = principalOf(request)
  if (principal.method === 'client_token') throw new TypeError('route is missing the { user: true } option')
  return principal
}
