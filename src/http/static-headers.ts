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
 */
import { IncomingMessage, ServerResponse } from 'node:http'

/** Baseline "Transport headers": sent on every answer. Each line ends in CRLF. */
export const STATIC_HEADER_BLOCK = 'X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n'

/** Marks responses whose header block already carries STATIC_HEADER_BLOCK. */
const carriesStatic: unique symbol = Symbol('rest-auth.staticHeaders')

interface HeaderBlockWriter {
  _storeHeader(firstLine: string, headers: unknown): void
}

function makeClass(): typeof ServerResponse | undefined {
  const base = ServerResponse.prototype as unknown as Partial<HeaderBlockWriter>
  const store = base._storeHeader
  if (typeof store !== 'function') return undefined
  class StaticHeaderResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
    declare readonly [carriesStatic]: true
  }
  Object.defineProperty(StaticHeaderResponse.prototype, carriesStatic, { value: true })
  Object.defineProperty(StaticHeaderResponse.prototype, '_storeHeader', {
    value: function _storeHeader(this: HeaderBlockWriter, firstLine: string, headers: unknown): void {
      // firstLine is the status line ('HTTP/1.1 200 OK\r\n'); the headers follow it
      store.call(this, firstLine + STATIC_HEADER_BLOCK, headers)
    },
    writable: true,
    configurable: true,
  })
  return StaticHeaderResponse as typeof ServerResponse
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
