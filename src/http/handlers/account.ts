/** Self-service: `GET /api/users/me`, change one's password, delete one's account. */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../../runtime.ts'
import { userPrincipalOf } from '../plugins/authenticate.ts'
import { actorOf } from '../plugins/authorize.ts'
import { noStore } from './token.ts'
import { accountView } from './views.ts'

export function meHandler() {
  return async function getMe(request: FastifyRequest) {
    return accountView(userPrincipalOf(request).user)
  }
}

export function changePasswordHandler(rt: Runtime) {
  return async function changeOwnPassword(request: FastifyRequest, reply: FastifyReply) {
    const { user } = userPrincipalOf(request)
    const body = request.body as { current_password: string; new_password: string } // validated by the route schema
    const updated = await rt.accounts.changeOwnPassword(actorOf(request), user, body.current_password, body.new_password)
    // Every token was revoked; the caller, who just proved the password, gets a fresh one.
    const issued = await rt.tokens.issue(updated.id, Math.floor(rt.clock.now() / 1000), updated.tokensValidAfter)
    noStore(reply)
    return { token: issued.token, duration: issued.expiresIn }
  }
}

export function deleteMeHandler(rt: Runtime) {
  return async function deleteOwnAccount(request: FastifyRequest, reply: FastifyReply) {
    const { user } = userPrincipalOf(request)
    const body = request.body as { password: string } // validated by the route schema
    await rt.accounts.deleteOwnAccount(actorOf(request), user, body.password)
    request.log.info({ userId: user.id }, 'user deleted own account')
    return reply.code(204).send()
  }
}
