import type { FastifyReply, FastifyRequest } from 'fastify'
import { RestAuthError } from '../../errors.ts'
import type { Runtime } from '../../runtime.ts'
import type { User } from '../../store/store.ts'
import { registerUser } from '../../users/register.ts'
import { actorOf } from '../plugins/authorize.ts'
import { REGISTRATION_LIMIT } from '../../ratelimit/policy.ts'

export function publicUser(user: User): { id: number; username: string } {
  return { id: user.id, username: user.username }
}

/** `/api/users/<id>`: only canonical decimal ids; anything else is simply not a user (404). */
export function parseUserId(raw: string): number | undefined {
  if (!/^[1-9]\d{0,15}$/.test(raw)) return undefined
  const id = Number(raw)
  return Number.isSafeInteger(id) ? id : undefined
}

export function registerHandler(rt: Runtime) {
  return async function register(
    request: FastifyRequest<{ Body: { username: string; password: string; invite?: string } }>,
    reply: FastifyReply,
  ) {
    await rt.rateLimiter.consume(REGISTRATION_LIMIT, request.ip)
    const { username, password, invite } = request.body
    const user = await registerUser(rt.registration, { username, password, invite }, actorOf(request))
    request.log.info({ userId: user.id, status: user.status }, 'user registered')
    // Location from the configured public URL, never from the Host header (contract). REST-auth's
    // {id, username} body, with `status` only when the account waits for approval.
    return reply
      .code(201)
      .header('Location', `${rt.config.publicUrl}/api/users/${user.id}`)
      .send(user.status === 'active' ? publicUser(user) : { ...publicUser(user), status: user.status })
  }
}

export function getUserHandler(rt: Runtime) {
  return async function getUser(request: FastifyRequest<{ Params: { id: string } }>) {
    const id = parseUserId(request.params.id)
    const user = id === undefined ? undefined : await rt.store.findUserById(id)
    if (user === undefined) throw new RestAuthError('user_not_found', 'No user has this id.')
    return publicUser(user)
  }
}
