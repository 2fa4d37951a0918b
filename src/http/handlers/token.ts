import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../../runtime.ts'
import { principalOf } from '../plugins/authenticate.ts'

/** RFC 6749 §5.1: responses that carry a token are not cached. */
export function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache')
}

/** REST-auth's `GET /api/token`. A token renewed by a token keeps its `auth_time`. */
export function tokenHandler(rt: Runtime) {
  return async function getToken(request: FastifyRequest, reply: FastifyReply) {
    const principal = principalOf(request)
    const issued = await rt.tokens.issue(principal.user.id, principal.authTime)
    noStore(reply)
    return { token: issued.token, duration: issued.expiresIn }
  }
}

export function resourceHandler() {
  return async function getResource(request: FastifyRequest) {
    return { data: `Hello, ${principalOf(request).user.username}!` }
  }
}
