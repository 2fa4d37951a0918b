/**
 * Transport rules, one onRequest hook: response security headers (nosniff, HSTS over HTTPS, no-store
 * on /api/), CORS by allow-list only, and the refusal of credentials sent over plain HTTP (AUTH_REQUIRE_HTTPS).
 * `request.protocol` and `request.ip` honour X-Forwarded-* only from TRUST_PROXY addresses.
 */
import { isIP } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler } from 'fastify'
import type { Config } from '../../config/schema.ts'
import { RestAuthError } from '../../errors.ts'
import { oauthErrorBody } from '../handlers/oauth.ts'
import { sendProblem } from '../problem.ts'
import { defaultToNoStore, hasStaticHeaders } from '../static-headers.ts'

/** ASVS 3.4.1: a year, subdomains included (sent only on HTTPS responses, RFC 6797 §7.2). */
export const HSTS = 'max-age=31536000; includeSubDomains'

export function isLoopback(ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip
  if (isIP(v4) === 4) return v4.startsWith('127.')
  return ip === '::1'
}

/**
 * Set when a request arrives (the transport hook), so they are on every answer, errors included; a
 * handler that sets its own Cache-Control replaces the default no-store of /api/. This whole form is
 * for the rare replies made outside the hooks (router-level refusals); requests that reach a route or
 * the not-found handler get the same headers from the transport hook and the /api/ routes' own step.
 */
export function securityHeaders(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  commonHeaders(request, reply)
  // the matched route, not the raw URL: '/%61pi/users' is routed to '/api/users' too
  if (routeOf(request).startsWith(API_PREFIX) && !reply.hasHeader('Cache-Control')) reply.header('cache-control', 'no-store')
  return reply
}

const API_PREFIX = '/api/'

/**
 * The headers of every answer. The two that never vary are already in the header block of responses
 * made by our server (static-headers.ts); others (`app.inject`) get them here. Names in lower case:
 * Fastify lower-cases each name it is given, and these run on every request.
 */
function commonHeaders(request: FastifyRequest, reply: FastifyReply, httpsPossible = true): void {
  if (!hasStaticHeaders(reply.raw)) {
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'no-referrer')
  }
  if (httpsPossible && request.protocol === 'https') reply.header('strict-transport-security', HSTS)
}

/**
 * The first onRequest step of every /api/ route (added as the route is declared): the default
 * no-store, decided once per route rather than by reading the route's options on every request
 * (Fastify builds a fresh routeOptions object at each read).
 */
function apiNoStore(_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  noStore(reply)
  done()
}

/** The default no-store: written with the header block where our server can (static-headers.ts), else set now. */
function noStore(reply: FastifyReply): void {
  if (!defaultToNoStore(reply.raw)) reply.header('cache-control', 'no-store')
}

/**
 * The default no-store folded into the route's own first onRequest step (its authentication, on most
 * /api/ routes): one hook step fewer per request than apiNoStore running as a step of its own. The
 * step keeps its own style: its result (a promise, for an async step) is Fastify's to wait for.
 */
function withApiNoStore(step: onRequestHookHandler): onRequestHookHandler {
  return function apiNoStoreThen(this: FastifyInstance, request, reply, done) {
    noStore(reply)
    return step.call(this, request, reply, done)
  }
}

function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? request.url
}

/**
 * Credentials travel in the Authorization header, or in a body (registration, OAuth forms, password
 * changes): every request with a body method is treated as carrying them, however its path is spelled.
 */
function carriesCredentials(request: FastifyRequest): boolean {
  if (request.headers.authorization !== undefined) return true
  return request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'OPTIONS'
}

const CORS_METHODS = 'GET, POST, PUT, DELETE'
const CORS_HEADERS = 'Authorization, Content-Type'
const CORS_EXPOSE = 'WWW-Authenticate, Retry-After, Location'

/**
 * `tls`: the server itself speaks HTTPS. Without it and without TRUST_PROXY no request can be HTTPS
 * (`request.protocol` honours X-Forwarded-Proto only from trusted proxies), so the per-request protocol
 * check for HSTS, a getter chain through the socket that costs ~2% of a request, is skipped.
 */
export interface TransportOptions {
  readonly tls: boolean
  /**
   * Run first, before the transport rules, in the same onRequest step (one step fewer per request
   * than a hook of its own): the app gives each request its logger here.
   */
  readonly first?: ((request: FastifyRequest, reply: FastifyReply) => void) | undefined
}

export function registerTransport(app: FastifyInstance, config: Config, options: TransportOptions): void {
  const allowed = new Set(config.corsOrigins)
  const httpsPossible = options.tls || config.trustProxy.length > 0

  // Routes declared from here on: /api/ ones start with the default no-store. The route's own path is
  // the one that counts, not the raw URL ('/%61pi/users' is routed to '/api/users' too).
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith(API_PREFIX)) return
    const own = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    const [head, ...rest] = own
    route.onRequest = head === undefined ? [apiNoStore as onRequestHookHandler] : [withApiNoStore(head), ...rest]
  })

  // callback style, not async: it runs on every request, and a promise per hook is measurable
  const first = options.first
  app.addHook('onRequest', function transportRules(request, reply, done) {
    if (first !== undefined) first(request, reply)
    commonHeaders(request, reply, httpsPossible)
    // no route matched: the URL as sent is all there is
    if (request.is404 && request.url.startsWith(API_PREFIX)) reply.header('cache-control', 'no-store')
    if (allowed.size > 0) {
      reply.header('Vary', 'Origin')
      const origin = request.headers.origin
      if (origin !== undefined && allowed.has(origin)) {
        reply.header('Access-Control-Allow-Origin', origin)
        reply.header('Access-Control-Expose-Headers', CORS_EXPOSE)
      }
    }
    // A CORS preflight carries no credentials by definition (Fetch standard): it passes unauthenticated.
    if (request.method === 'OPTIONS') {
      const origin = request.headers.origin
      if (origin !== undefined && allowed.has(origin) && request.headers['access-control-request-method'] !== undefined) {
        reply.header('Access-Control-Allow-Methods', CORS_METHODS)
        reply.header('Access-Control-Allow-Headers', CORS_HEADERS)
        reply.header('Access-Control-Max-Age', '600')
      }
      // answered here: the chain stops (done is not called)
      void reply.code(204).header('Allow', `${CORS_METHODS}, OPTIONS`).send()
      return
    }
    if (config.requireHttps && request.protocol !== 'https' && carriesCredentials(request) && !isLoopback(request.ip)) {
      // Never a redirect: the credentials have already crossed the network in clear.
      const refusal = new RestAuthError('https_required', 'Credentials are accepted over HTTPS only.')
      if (routeOf(request).startsWith('/oauth/')) {
        // OAuth clients read RFC 6749 §5.2 bodies ({ error, error_description }), as on every other /oauth/ error
        void reply.code(refusal.status).header('Cache-Control', 'no-store').type('application/json; charset=utf-8').send(oauthErrorBody(refusal))
      } else {
        void sendProblem(reply, refusal)
      }
      return
    }
    done()
  })
}
