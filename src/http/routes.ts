/** The whole routing table; each route's steps are visible here. */
import type { FastifyInstance } from 'fastify'
import { RestAuthError } from '../errors.ts'
import type { Runtime } from '../runtime.ts'
import { errorsMarkdown } from '../docs/generate.ts'
import { getUserHandler, registerHandler } from './handlers/users.ts'
import { registerOAuthRoutes } from './handlers/oauth.ts'
import { resourceHandler, revokeAllHandler, revokeTokenHandler, tokenHandler } from './handlers/token.ts'
import { authenticate } from './plugins/authenticate.ts'
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
  const authenticated = authenticate(rt.authenticator)
  const authenticatedUser = authenticate(rt.authenticator, { user: true })

  // REST-auth's four endpoints (contract part 1)
  app.post('/api/users', { schema: registerSchema }, registerHandler(rt))
  app.get('/api/users/:id', { schema: getUserSchema }, getUserHandler(rt))
  app.get('/api/token', { schema: tokenSchema, preHandler: [authenticatedUser] }, tokenHandler(rt))
  app.get('/api/resource', { schema: resourceSchema, preHandler: [authenticatedUser] }, resourceHandler())

  // Logout (token lifecycle)
  app.delete('/api/token', { schema: revokeTokenSchema, preHandler: [authenticated] }, revokeTokenHandler(rt))
  app.delete('/api/tokens', { schema: revokeAllSchema, preHandler: [authenticatedUser] }, revokeAllHandler(rt))

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
