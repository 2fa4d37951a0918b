/**
 * The OAuth 2 endpoints: token (RFC 6749), revocation (RFC 7009), introspection (RFC 7662),
 * metadata (RFC 8414) and the JWK Set (RFC 7517). They live in their own Fastify context with the
 * form body parser and RFC 6749 §5.2 error bodies.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { type ErrorCode, RestAuthError } from '../../errors.ts'
import { parseFormBody, type FormBody } from '../../oauth/form.ts'
import type { Runtime } from '../../runtime.ts'
import { BODY_LIMIT_BYTES } from '../json-body.ts'
import { classify } from '../problem.ts'
import { introspectSchema, jwksSchema, metadataSchema, oauthTokenSchema, revokeSchema } from '../schemas.ts'
import { noStore } from './token.ts'

/** Codes RFC 6749 §5.2 / RFC 7009 §2.2.1 define; anything else is reported as one of these. */
const OAUTH_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'unsupported_token_type',
])

export function oauthErrorBody(error: RestAuthError): { error: string; error_description: string } {
  let code: string = error.code
  if (error.code === 'unsupported_media_type') {
    return { error: 'invalid_request', error_description: 'Send the parameters as application/x-www-form-urlencoded (RFC 6749 3.2).' }
  }
  if (!OAUTH_CODES.has(error.code)) {
    code = error.status === 503 ? 'temporarily_unavailable' : error.status >= 500 ? 'server_error' : 'invalid_request'
  }
  // error_description is ASCII without '"' and '\' (RFC 6749 §5.2)
  return { error: code, error_description: error.message.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '') }
}

function oauthErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const e = classify(error)
  if (e.status >= 500) request.log.error({ err: e.cause ?? error, code: e.code }, 'request failed')
  else if (e.internal !== undefined) request.log.info({ code: e.code, reason: e.internal }, 'oauth request refused')
  return noStore(reply.code(e.status).headers({ ...e.headers })).type('application/json; charset=utf-8').send(oauthErrorBody(e))
}

function form(request: FastifyRequest): FormBody {
  return (request.body ?? {}) as FormBody
}

export function registerOAuthRoutes(app: FastifyInstance, rt: Runtime): void {
  const base = rt.config.publicUrl

  // RFC 8414 metadata and the JWK Set: plain JSON, cacheable.
  app.get('/.well-known/oauth-authorization-server', { schema: metadataSchema }, async (_request, reply) => {
    reply.header('Cache-Control', 'public, max-age=3600')
    return {
      issuer: rt.config.publicUrl,
      token_endpoint: `${base}/oauth/token`,
      jwks_uri: `${base}/.well-known/jwks.json`,
      revocation_endpoint: `${base}/oauth/revoke`,
      introspection_endpoint: `${base}/oauth/introspect`,
      grant_types_supported: [...(rt.config.passwordGrant ? ['password'] : []), 'refresh_token', 'client_credentials'],
      // No authorization endpoint: no response types (RFC 8414 §2 requires the member).
      response_types_supported: [],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      service_documentation: `${base}/docs`,
    }
  })
  app.get('/.well-known/jwks.json', { schema: jwksSchema }, async (_request, reply) => {
    // Keys are published at least max-age before they sign (keys rotate), so caches stay correct.
    reply.header('Cache-Control', `public, max-age=${rt.config.jwksMaxAge}`)
    return rt.keyring.jwks()
  })

  // The form-encoded endpoints, in a context of their own.
  void app.register(async function oauthEndpoints(scope) {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES },
      (_req, body, done) => {
        try {
          done(null, parseFormBody(body as Buffer))
        } catch (error) {
          done(error as Error, undefined)
        }
      },
    )
    scope.setErrorHandler(oauthErrorHandler)

    scope.post('/oauth/token', { schema: oauthTokenSchema }, async function oauthToken(request, reply) {
      if (request.body === undefined) throw new RestAuthError('invalid_request', 'Send the parameters form-encoded.')
      const response = await rt.oauth.token(request.headers.authorization, form(request), request.ip)
      noStore(reply)
      return response
    })

    scope.post('/oauth/revoke', { schema: revokeSchema }, async function oauthRevoke(request, reply) {
      if (request.body === undefined) throw new RestAuthError('invalid_request', 'Send the parameters form-encoded.')
      await rt.oauth.revoke(request.headers.authorization, form(request))
      /** RFC 7009 §2.2: 200 even for unknown or invalid tokens. */
      return noStore(reply).code(200).send()
    })

    scope.post('/oauth/introspect', { schema: introspectSchema }, async function oauthIntrospect(request, reply) {
      if (request.body === undefined) throw new RestAuthError('invalid_request', 'Send the parameters form-encoded.')
      const answer = await rt.oauth.introspect(request.headers.authorization, form(request))
      noStore(reply)
      return answer
    })
  })
}
