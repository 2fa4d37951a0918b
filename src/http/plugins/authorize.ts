/**
 * Role checks for routes, as Flask-HTTPAuth's `login_required(role=...)`: a route requires one role,
 * any of a set, or all of a set. Roles are read from the user loaded for this request, so a change
 * applies at once, also to tokens issued before it. A refusal is 403 `role_required` and still carries
 * the challenge of the scheme the client used.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { type Actor, anonymous } from '../../audit/audit.ts'
import { presentedScheme } from '../../auth/authenticate.ts'
import { BASIC_CHALLENGE, bearerChallenge } from '../../auth/authorization.ts'
import { describeRequirement, type RoleRequirement, satisfies } from '../../auth/roles.ts'
import { RestAuthError } from '../../errors.ts'
import { sendProblem } from '../problem.ts'
import { userPrincipalOf } from './authenticate.ts'

export function requireRoles(requirement: RoleRequirement) {
  const needed = describeRequirement(requirement)
  return async function authorizeRoles(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const principal = userPrincipalOf(request)
    if (satisfies(principal.user.roles, requirement)) return
    const detail = `This route needs ${needed}.`
    const challenge =
      presentedScheme(request.headers.authorization) === 'bearer'
        ? bearerChallenge({ error: 'insufficient_scope', description: detail })
        : BASIC_CHALLENGE
    await sendProblem(reply, new RestAuthError('role_required', detail), { 'WWW-Authenticate': challenge })
  }
}

/** Who is making this request, for the audit log. */
export function actorOf(request: FastifyRequest): Actor {
  const p = request.principal
  if (p === undefined) return anonymous(request.ip)
  if (p.method === 'client_token') return { id: null, name: `client:${p.client.clientId}`, ip: request.ip }
  return { id: p.user.id, name: p.user.username, ip: request.ip }
}
