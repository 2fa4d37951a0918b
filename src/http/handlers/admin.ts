/** The admin API (`/api/admin`, role `admin`): users, invites, the audit log. */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { canonicalizeUsername } from '../../auth/username.ts'
import { RestAuthError } from '../../errors.ts'
import type { Runtime } from '../../runtime.ts'
import type { UserStatus } from '../../store/store.ts'
import { actorOf } from '../plugins/authorize.ts'
import { parseUserId } from './users.ts'
import { accountView, auditView, inviteView } from './views.ts'

const DEFAULT_PAGE = 50
const MAX_PAGE = 200

type IdRequest = FastifyRequest

/**
 * The route schemas validate params, query and body before a handler runs; these read them typed.
 * (The admin preHandlers are plain functions, so Fastify cannot infer the route generics.)
 */
function paramsOf(request: FastifyRequest): { id: string } {
  return request.params as { id: string }
}
function queryOf<T>(request: FastifyRequest): T {
  return request.query as T
}
function bodyOf<T>(request: FastifyRequest): T {
  return request.body as T
}

function pageSize(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_PAGE
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) {
    throw new RestAuthError('invalid_request', `\`limit\` must be between 1 and ${MAX_PAGE}.`, { extensions: { field: 'limit' } })
  }
  return n
}

function idOf(request: IdRequest): number {
  const id = parseUserId(paramsOf(request).id)
  if (id === undefined) throw new RestAuthError('user_not_found', 'No user has this id.')
  return id
}

function timeOf(raw: string | undefined, field: string): number | undefined {
  if (raw === undefined) return undefined
  const ms = Date.parse(raw)
  if (Number.isNaN(ms)) throw new RestAuthError('invalid_request', `\`${field}\` must be an RFC 3339 date-time.`, { extensions: { field } })
  return ms
}

export function adminHandlers(rt: Runtime) {
  const { accounts } = rt
  return {
    async listUsers(request: FastifyRequest) {
      const q = queryOf<{ search?: string; status?: UserStatus; role?: string; limit?: string; after?: string }>(request)
      const limit = pageSize(q.limit)
      // one more than asked tells whether there is a next page
      const users = await rt.store.listUsers({
        limit: limit + 1,
        ...(q.search === undefined ? {} : { search: canonicalizeUsername(q.search) }),
        ...(q.status === undefined ? {} : { status: q.status }),
        ...(q.role === undefined ? {} : { role: q.role }),
        ...(q.after === undefined ? {} : { afterId: Number(q.after) }),
      })
      const page = users.slice(0, limit)
      return { users: page.map(accountView), next_after: users.length > limit ? (page[page.length - 1]?.id ?? null) : null }
    },

    async getUser(request: IdRequest) {
      return accountView(await accounts.get(idOf(request)))
    },

    async createUser(request: FastifyRequest, reply: FastifyReply) {
      const b = bodyOf<{ username: string; password: string; roles?: string[]; status?: 'active' | 'pending' }>(request)
      const user = await accounts.create(actorOf(request), {
        username: b.username,
        password: b.password,
        ...(b.roles === undefined ? {} : { roles: b.roles }),
        ...(b.status === undefined ? {} : { status: b.status }),
      })
      return reply.code(201).header('Location', `${rt.config.publicUrl}/api/admin/users/${user.id}`).send(accountView(user))
    },

    async approve(request: IdRequest) {
      return accountView(await accounts.approve(actorOf(request), idOf(request)))
    },

    async disable(request: IdRequest) {
      return accountView(await accounts.disable(actorOf(request), idOf(request)))
    },

    async enable(request: IdRequest) {
      return accountView(await accounts.enable(actorOf(request), idOf(request)))
    },

    async deleteUser(request: IdRequest, reply: FastifyReply) {
      await accounts.delete(actorOf(request), idOf(request))
      return reply.code(204).send()
    },

    async setRoles(request: FastifyRequest) {
      return accountView(await accounts.setRoles(actorOf(request), idOf(request), bodyOf<{ roles: string[] }>(request).roles))
    },

    async setPassword(request: FastifyRequest) {
      return accountView(await accounts.setPassword(actorOf(request), idOf(request), bodyOf<{ password: string }>(request).password))
    },

    async revokeTokens(request: IdRequest, reply: FastifyReply) {
      await accounts.revokeTokens(actorOf(request), idOf(request))
      return reply.code(204).send()
    },

    async createInvite(request: FastifyRequest, reply: FastifyReply) {
      const b = bodyOf<{ expires_in?: number; username?: string; roles?: string[] } | undefined>(request) ?? {}
      const { invite, code } = await accounts.createInvite(actorOf(request), {
        ...(b.expires_in === undefined ? {} : { expiresIn: b.expires_in }),
        ...(b.username === undefined ? {} : { username: b.username }),
        ...(b.roles === undefined ? {} : { roles: b.roles }),
      })
      return reply
        .code(201)
        .header('Cache-Control', 'no-store')
        .send({ ...inviteView(invite, rt.clock.now()), code })
    },

    async listInvites(request: FastifyRequest) {
      const invites = await accounts.listInvites(queryOf<{ all?: 'true' | 'false' }>(request).all === 'true')
      const now = rt.clock.now()
      return { invites: invites.map((i) => inviteView(i, now)) }
    },

    async revokeInvite(request: FastifyRequest, reply: FastifyReply) {
      await accounts.revokeInvite(actorOf(request), paramsOf(request).id)
      return reply.code(204).send()
    },

    async audit(request: FastifyRequest) {
      const q = queryOf<{
        event?: string
        outcome?: 'success' | 'failure'
        user_id?: string
        since?: string
        until?: string
        limit?: string
        before?: string
      }>(request)
      const limit = pageSize(q.limit)
      const since = timeOf(q.since, 'since')
      const until = timeOf(q.until, 'until')
      // what this process recorded but has not written yet (batched) is part of the answer
      await rt.audit.flush()
      const entries = await rt.store.queryAudit({
        limit: limit + 1,
        ...(q.event === undefined ? {} : { event: q.event }),
        ...(q.outcome === undefined ? {} : { outcome: q.outcome }),
        ...(q.user_id === undefined ? {} : { userId: Number(q.user_id) }),
        ...(since === undefined ? {} : { since }),
        ...(until === undefined ? {} : { until }),
        ...(q.before === undefined ? {} : { beforeId: Number(q.before) }),
      })
      const page = entries.slice(0, limit)
      return { entries: page.map(auditView), next_before: entries.length > limit ? (page[page.length - 1]?.id ?? null) : null }
    },
  }
}
