import type { FastifyReply, FastifyRequest } from 'fastify'
import { actorOf } from '../plugins/authorize.ts'
import type { Runtime } from '../../runtime.ts'
import { RestAuthError } from '../../errors.ts'
import { principalOf, userPrincipalOf } from '../plugins/authenticate.ts'

/** RFC 6749 §5.1: responses that carry a token are not cached. */
export function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache')
}

/** REST-auth's `GET /api/token`. A token renewed by a token keeps its `auth_time`, client, scope and refresh family. */
export function tokenHandler(rt: Runtime) {
  return async function getToken(request: FastifyRequest, reply: FastifyReply) {
    const principal = userPrincipalOf(request)
    // A renewal keeps the client, scope and refresh family of the token it renews (never wider, and
    // revoked with that family).
    const renewing = principal.method === 'token' ? principal.claims : undefined
    const issued = await rt.tokens.issue(principal.user.id, principal.authTime, principal.user.tokensValidAfter, renewing)
    // A token traded for a password is a login; a renewal is not worth a row per call.
    if (principal.method === 'password') {
      await rt.audit.record({ event: 'token.issued', actor: actorOf(request), subject: { id: principal.user.id, username: principal.user.username }, detail: { via: '/api/token' } })
    }
    noStore(reply)
    return { token: issued.token, duration: issued.expiresIn }
  }
}

export function resourceHandler() {
  return async function getResource(request: FastifyRequest) {
    return { data: `Hello, ${userPrincipalOf(request).user.username}!` }
  }
}

/**
 * `DELETE /api/token`: log out the presented token (by `jti`, never by its bytes) and, when it came
 * from a refresh grant, its refresh-token family.
 */
export function revokeTokenHandler(rt: Runtime) {
  return async function revokeToken(request: FastifyRequest, reply: FastifyReply) {
    const principal = principalOf(request)
    if (principal.method === 'password') {
      throw new RestAuthError('invalid_request', 'Present the token to revoke (Bearer, or as the Basic username).')
    }
    const c = principal.claims
    await rt.oauth.revokeAccessToken(principal)
    if (c.sid !== undefined) await rt.store.revokeRefreshFamily(c.sid, 'logout', rt.clock.now())
    request.log.info({ sub: c.sub }, 'token revoked')
    if (principal.method === 'token') {
      await rt.audit.record({ event: 'token.revoked', actor: actorOf(request), subject: { id: principal.user.id, username: principal.user.username } })
    }
    return reply.code(204).send()
  }
}

/** `DELETE /api/tokens`: log out everywhere: every token of the user issued so far. */
export function revokeAllHandler(rt: Runtime) {
  return async function revokeAllTokens(request: FastifyRequest, reply: FastifyReply) {
    const { user } = userPrincipalOf(request)
    await rt.oauth.revokeAllForUser(user.id)
    request.log.info({ userId: user.id }, 'all tokens of user revoked')
    await rt.audit.record({ event: 'user.tokens_revoked', actor: actorOf(request), subject: { id: user.id, username: user.username }, detail: { self: true } })
    return reply.code(204).send()
  }
}
