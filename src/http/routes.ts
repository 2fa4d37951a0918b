/** The whole routing table; each route's steps are visible here. */
import type { FastifyInstance } from 'fastify'
import { RestAuthError } from '../errors.ts'
import type { Runtime } from '../runtime.ts'
import { errorsMarkdown } from '../docs/generate.ts'
import { getUserHandler, registerHandler } from './handlers/users.ts'
import { registerOAuthRoutes } from './handlers/oauth.ts'
import { resourceHandler, revokeAllHandler, revokeTokenHandler, tokenHandler } from './handlers/token.ts'
import { authenticate } from './plugins/authenticate.ts'
import { requireRoles } from './plugins/authorize.ts'
import { requireAll, ADMIN_ROLE } from '../auth/roles.ts'
import { changePasswordHandler, deleteMeHandler, meHandler } from './handlers/account.ts'
import { adminHandlers } from './handlers/admin.ts'
import * as s from './account-schemas.ts'
import {
  getUserSchema,
  healthSchema,
  readySchema,
  registerSchema,
  resourceSchema,
  revokeAllSchema,
  revokeTokenSchema,
  tokenSchema,
} from './schemas.ts'

export function registerRoutes(app: FastifyInstance, rt: Runtime): void {
  const authenticated = authenticate(rt.authenticator, { audit: rt.audit })
  const authenticatedUser = authenticate(rt.authenticator, { user: true, audit: rt.audit })
  // Authentication runs at onRequest, before the body is parsed or validated: an unauthenticated
  // or unauthorised caller learns nothing about the route's input rules (401/403, never a 400).
  const admin = [authenticatedUser, requireRoles(requireAll(ADMIN_ROLE))]

  // REST-auth's four endpoints (contract part 1)
  app.post('/api/users', { schema: registerSchema }, registerHandler(rt))
  app.get('/api/users/:id', { schema: getUserSchema }, getUserHandler(rt))
  app.get('/api/token', { schema: tokenSchema, onRequest: [authenticatedUser] }, tokenHandler(rt))
  app.get('/api/resource', { schema: resourceSchema, onRequest: [authenticatedUser] }, resourceHandler())

  // Logout (token lifecycle)
  app.delete('/api/token', { schema: revokeTokenSchema, onRequest: [authenticated] }, revokeTokenHandler(rt))
  app.delete('/api/tokens', { schema: revokeAllSchema, onRequest: [authenticatedUser] }, revokeAllHandler(rt))

  // Self-service (a static path wins over /api/users/:id)
  app.get('/api/users/me', { schema: s.meSchema, onRequest: [authenticatedUser] }, meHandler())
  app.put('/api/users/me/password', { schema: s.changePasswordSchema, onRequest: [authenticatedUser] }, changePasswordHandler(rt))
  app.delete('/api/users/me', { schema: s.deleteMeSchema, onRequest: [authenticatedUser] }, deleteMeHandler(rt))

  // Admin API: role admin
  const a = adminHandlers(rt)
  app.get('/api/admin/users', { schema: s.listUsersSchema, onRequest: admin }, a.listUsers)
  app.post('/api/admin/users', { schema: s.createUserSchema, onRequest: admin }, a.createUser)
  app.get('/api/admin/users/:id', { schema: s.getAccountSchema, onRequest: admin }, a.getUser)
  app.delete('/api/admin/users/:id', { schema: s.deleteUserSchema, onRequest: admin }, a.deleteUser)
  app.post('/api/admin/users/:id/approve', { schema: s.approveSchema, onRequest: admin }, a.approve)
  app.post('/api/admin/users/:id/disable', { schema: s.disableSchema, onRequest: admin }, a.disable)
  app.post('/api/admin/users/:id/enable', { schema: s.enableSchema, onRequest: admin }, a.enable)
  app.put('/api/admin/users/:id/roles', { schema: s.setRolesSchema, onRequest: admin }, a.setRoles)
  app.put('/api/admin/users/:id/password', { schema: s.setPasswordSchema, onRequest: admin }, a.setPassword)
  app.post('/api/admin/users/:id/revoke-tokens', { schema: s.revokeUserTokensSchema, onRequest: admin }, a.revokeTokens)
  app.get('/api/admin/invites', { schema: s.listInvitesSchema, onRequest: admin }, a.listInvites)
  app.post('/api/admin/invites', { schema: s.createInviteSchema, onRequest: admin }, a.createInvite)
  app.delete('/api/admin/invites/:id', { schema: s.revokeInviteSchema, onRequest: admin }, a.revokeInvite)
  app.get('/api/admin/audit', { schema: s.auditSchema, onRequest: admin }, a.audit)

  // OAuth 2: token, revoke, introspect, metadata, JWKS
  registerOAuthRoutes(app, rt)

  // Operations
  app.get('/healthz', { schema: healthSchema }, async () => ({ status: 'ok' }))
  app.get('/readyz', { schema: readySchema }, async function ready() {
    try {
      await rt.store.ping()
    } catch (error) {
      throw new RestAuthError('database_unavailable', 'The database does not answer.', {
        cause: error,
        headers: { 'Retry-After': '5' },
      })
    }
    return { status: 'ready' }
  })

  // Documents
  const errorsDoc = errorsMarkdown()
  app.get('/errors', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/markdown; charset=utf-8').send(errorsDoc),
  )
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}
