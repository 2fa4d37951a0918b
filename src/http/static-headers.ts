/**
 * The response headers that never vary (X-Content-Type-Options, Referrer-Policy), written into every
 * response's header block by the server's own ServerResponse class, so that no request pays for them.
 *
 * Set per request through Fastify, each cost ~2,500 instructions (callgrind, plain Fastify route:
 * Fastify lower-cases and stores the name; Node validates name and value and serialises them at
 * writeHead), a few per cent of a request on the token path. Here they are one constant, appended to the status line in Node's `_storeHeader`, the
 * step every response's header block passes through (writeHead, implicit headers, stream replies).
 *
 * `_storeHeader` is internal to Node (long-standing; checked here on Node 20). When it is missing,
 * `staticHeaderResponse` is undefined and the transport hook sets the same headers per request, as
 * before; test/http/static-headers.test.ts fails loudly in that case and checks every kind of answer
 * for each header exactly once. No handler may set these two headers itself: they would be sent twice.
 *
 * The default `Cache-Control: no-store` of /api/ answers is written here too (`defaultToNoStore`),
 * but only when the headers being written name no Cache-Control of their own. A handler can replace
 * the default (set its own Cache-Control) but not remove it: `reply.removeHeader` finds nothing to remove.
 */
import { IncomingMessage, ServerResponse } from 'node:http'

/** Baseline "Transport headers": sent on every answer. Each line ends in CRLF. */
export const STATIC_HEADER_BLOCK = 'X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n'

/** The default of /api/ answers (contract: tokens and user data are never cached). */
export const NO_STORE_LINE = 'Cache-Control: no-store\r\n'

/** One constant, so that no response builds the string. */
const STATIC_AND_NO_STORE = STATIC_HEADER_BLOCK + NO_STORE_LINE

/** Marks responses whose header block already carries STATIC_HEADER_BLOCK. */
const carriesStatic: unique symbol = Symbol('rest-auth.staticHeaders')
/** Set on a response that answers an /api/ route: no-store unless it carries its own Cache-Control. */
const noStoreByDefault: unique symbol = Symbol('rest-auth.noStoreByDefault')

/**
 * Whether the headers `_storeHeader` is given name a Cache-Control. They come in Node's three forms:
 * the object Fastify passes to writeHead (names as given: Fastify's are lower case), Node's own table
 * after setHeader (lower-case names → [name, value]), or a flat [name, value, ...] array. Names are
 * compared without regard to case (RFC 9110 §5.1).
 */
function namesCacheControl(headers: unknown): boolean {
  if (headers === null || typeof headers !== 'object') return false
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) if (isCacheControl(headers[i])) return true
    return false
  }
  const table = headers as Record<string, unknown>
  if (table['cache-control'] !== undefined) return true
  for (const name in table) if (isCacheControl(name) && table[name] !== undefined) return true
  return false
}

function isCacheControl(name: unknown): boolean {
  return typeof name === 'string' && name.length === 13 && name.toLowerCase() === 'cache-control'
}

interface HeaderBlockWriter {
  _storeHeader(firstLine: string, headers: unknown): void
}

function makeClass(): typeof ServerResponse | undefined {
  const base = ServerResponse.prototype as unknown as Partial<HeaderBlockWriter>
  const store = base._storeHeader
  if (typeof store !== 'function') return undefined
  // A constructor function in Node's own style (as ServerResponse itself calls OutgoingMessage), not a
  // `class ... extends ServerResponse`: V8 builds a derived class's instance of a plain-function base
  // through its generic construct stub, outside the caller's optimised code (perf: ~0.25 µs of every
  // request, which Node's `new ServerResponse` in a bare server does not pay).
  function StaticHeaderResponse(this: ServerResponse & Record<typeof noStoreByDefault, boolean>, req: IncomingMessage, options?: object): void {
    ;(ServerResponse as unknown as (this: ServerResponse, req: IncomingMessage, options?: object) => void).call(this, req, options)
    // an own property from the start: every response has the same shape, set or not
    this[noStoreByDefault] = false
  }
  StaticHeaderResponse.prototype = Object.create(ServerResponse.prototype, {
    constructor: { value: StaticHeaderResponse, writable: true, configurable: true },
  }) as ServerResponse
  Object.setPrototypeOf(StaticHeaderResponse, ServerResponse)
  Object.defineProperty(StaticHeaderResponse.prototype, carriesStatic, { value: true })
  Object.defineProperty(StaticHeaderResponse.prototype, '_storeHeader', {
    value: function _storeHeader(this: HeaderBlockWriter & { [noStoreByDefault]: boolean }, firstLine: string, headers: unknown): void {
      // firstLine is the status line ('HTTP/1.1 200 OK\r\n'); the headers follow it
      const block = this[noStoreByDefault] && !namesCacheControl(headers) ? STATIC_AND_NO_STORE : STATIC_HEADER_BLOCK
      store.call(this, firstLine + block, headers)
    },
    writable: true,
    configurable: true,
  })
  return StaticHeaderResponse as unknown as typeof ServerResponse
}

/** The ServerResponse class for `http.createServer({ ServerResponse })`, when this Node has the hook. */
export const staticHeaderResponse: typeof ServerResponse | undefined = makeClass()

/**
 * True when this response's header block will carry the static headers already (it was made by
 * the server above; `app.inject` and other servers' responses are not).
 */
export function hasStaticHeaders(response: ServerResponse): boolean {
  return (response as Partial<Record<typeof carriesStatic, true>>)[carriesStatic] === true
}

/**
 * Gives this response `Cache-Control: no-store` unless, when its headers are written, it carries a
 * Cache-Control of its own (a handler's): the same answer as setting the header first and letting
 * handlers replace it, without Fastify storing and Node validating one more header on every /api/
 * request (~700 instructions per Bearer request, callgrind A/B). Only for responses with the static
 * headers (`hasStaticHeaders`); false for the others, which need the header set.
 */
export function defaultToNoStore(response: ServerResponse): boolean {
  if (!hasStaticHeaders(response)) return false
  ;(response as unknown as Record<typeof noStoreByDefault, boolean>)[noStoreByDefault] = true
  return true
}
