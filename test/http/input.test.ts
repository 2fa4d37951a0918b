/**
 * Bad input never gives a 5xx or a stack trace (contract §1 "a non-JSON or malformed body is 400/415,
 * not a 500"; security baseline "Body size"; RFC 9457). Every refusal is application/problem+json with
 * type, title, status, detail and code. Ends with a bounded fuzz loop over bodies and Authorization headers.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { assertNoInternals, checkProblemText, expectProblem, rawRequest, type RawResponse, registerOk, STRONG } from './support.ts'

const JSON_TYPE = 'application/json'

function postRaw(srv: TestServer, body: Buffer | string | undefined, contentType: string | undefined): Promise<RawResponse> {
  const headers: Array<[string, string]> = contentType === undefined ? [] : [['Content-Type', contentType]]
  return rawRequest(srv.url, 'POST', '/api/users', headers, body)
}

function expectRawProblem(res: RawResponse, status: number, code?: string): void {
  assert.equal(res.status, status, `expected ${status} ${code ?? ''}, got ${res.status}: ${res.body}`)
  checkProblemText(res.body, res.headers['content-type'], status, code)
  assert.equal(res.headers['x-content-type-options'], 'nosniff')
}

function nested(depth: number): unknown {
  let value: unknown = 'leaf'
  for (let i = 1; i < depth; i++) value = { a: value }
  return value
}

/** Objects with `extra` keys on top of the two fields; `extra` may hold a deep value. */
function registration(username: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ username, password: STRONG, ...extra })
}

for (const kind of STORES) {
  test(`${kind}: body that is not JSON → 400 invalid_json (contract §1 deliberate difference)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const body of ['not json', '{"username":', "{'username':'a'}", '{"username":"a",}', 'undefined', '{"a":1}{"b":2}', 'NaN']) {
      expectRawProblem(await postRaw(srv, body, JSON_TYPE), 400, 'invalid_json')
    }
  })

  test(`${kind}: non-JSON media types → 415 unsupported_media_type (REST Security CS, RFC 9110 §15.5.16)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const body = registration('miguel')
    for (const type of [
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/jsonx',
      'application/json-patch+json',
    ]) {
      expectRawProblem(await postRaw(srv, body, type), 415, 'unsupported_media_type')
    }
    // fetch's default for a string body is text/plain.
    await expectProblem(await srv.post('/api/users', { body }), 415, 'unsupported_media_type')
    await expectProblem(await srv.get('/api/users/1'), 404, 'user_not_found')
  })

  test(`${kind}: a body without Content-Type → 415 unsupported_media_type (catalogue)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    expectRawProblem(await postRaw(srv, registration('miguel'), undefined), 415, 'unsupported_media_type')
    // No body and no Content-Type: there is nothing to register.
    const empty = await postRaw(srv, undefined, undefined)
    assert.ok([400, 415].includes(empty.status), `${empty.status}: ${empty.body}`)
    checkProblemText(empty.body, empty.headers['content-type'], empty.status)
  })

  test(`${kind}: JSON Content-Type with parameters or in any case is accepted (RFC 8259 §11, RFC 9110 §8.3.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const [i, type] of ['application/json; charset=utf-8', 'APPLICATION/JSON', 'Application/Json;charset=UTF-8'].entries()) {
      const res = await postRaw(srv, registration(`user${i}`), type)
      assert.equal(res.status, 201, `${type}: ${res.body}`)
    }
  })

  test(`${kind}: empty or blank JSON body → 400 invalid_json`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const body of ['', ' ', '\r\n\t ']) expectRawProblem(await postRaw(srv, body, JSON_TYPE), 400, 'invalid_json')
  })

  test(`${kind}: JSON that is not an object (null, array, string, number) → 400 invalid_request`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const body of ['null', '[]', JSON.stringify([{ username: 'miguel', password: STRONG }]), '"miguel"', '42', 'true', '{}']) {
      expectRawProblem(await postRaw(srv, body, JSON_TYPE), 400, 'invalid_request')
    }
  })

  test(`${kind}: body over 16 KiB → 413 payload_too_large (security baseline "Body size")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const big = registration('miguel', { pad: 'x'.repeat(17 * 1024) })
    expectRawProblem(await postRaw(srv, big, JSON_TYPE), 413, 'payload_too_large')
    await expectProblem(await srv.post('/api/users', { body: big, headers: { 'content-type': JSON_TYPE } }), 413, 'payload_too_large')
    // Just under the limit is parsed (and the extra key ignored).
    const under = registration('miguel', { pad: 'x'.repeat(15 * 1024) })
    assert.equal((await postRaw(srv, under, JSON_TYPE)).status, 201)
  })

  test(`${kind}: nesting deeper than 32 → 400 invalid_json, shallow nesting is fine (security baseline "JSON depth ≤ 32")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    expectRawProblem(await postRaw(srv, registration('deep', { x: nested(40) }), JSON_TYPE), 400, 'invalid_json')
    expectRawProblem(await postRaw(srv, JSON.stringify(nested(40)), JSON_TYPE), 400, 'invalid_json')
    expectRawProblem(await postRaw(srv, `${'['.repeat(5000)}${']'.repeat(5000)}`, JSON_TYPE), 400, 'invalid_json')
    assert.equal((await postRaw(srv, registration('shallow', { x: nested(10) }), JSON_TYPE)).status, 201)
  })

  test(`${kind}: more than 100 keys in an object → 400 invalid_json (security baseline "keys ≤ 100")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))
    expectRawProblem(await postRaw(srv, registration('many', keys(150)), JSON_TYPE), 400, 'invalid_json')
    expectRawProblem(await postRaw(srv, registration('many', { inner: keys(150) }), JSON_TYPE), 400, 'invalid_json')
    assert.equal((await postRaw(srv, registration('some', keys(50)), JSON_TYPE)).status, 201)
  })

  test(`${kind}: __proto__, constructor and prototype keys → 400 invalid_json (Fastify onProtoPoisoning, CVE-2025-32442 family)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const bodies = [
      '{"__proto__":{}}',
      `{"username":"miguel","password":"${STRONG}","__proto__":{"admin":true}}`,
      `{"username":"miguel","password":"${STRONG}","x":{"__proto__":{"admin":true}}}`,
      '{"constructor":{"prototype":{"admin":true}}}',
      `{"username":"miguel","password":"${STRONG}","constructor":{"prototype":{}}}`,
      `{"username":"miguel","password":"${STRONG}","prototype":1}`,
      `{"username":"miguel","password":"${STRONG}","list":[{"__proto__":{}}]}`,
    ]
    for (const body of bodies) expectRawProblem(await postRaw(srv, body, JSON_TYPE), 400, 'invalid_json')
    await expectProblem(await srv.get('/api/users/1'), 404, 'user_not_found')
    assert.equal(({} as Record<string, unknown>)['admin'], undefined, 'Object.prototype untouched')
  })

  test(`${kind}: body bytes that are not UTF-8 → 400 invalid_encoding (RFC 8259 §8.1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const bodies = [
      Buffer.concat([Buffer.from('{"username":"jos'), Buffer.from([0xe9]), Buffer.from(`","password":"${STRONG}"}`)]),
      Buffer.concat([Buffer.from('{"username":"'), Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from(`","password":"${STRONG}"}`)]),
      Buffer.concat([Buffer.from('{"username":"a","password":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('xxxxxxxxxxxxxxx"}')]),
      Buffer.concat([Buffer.from('{"username":"a","password":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('xxxxxxxxxxxxxxx"}')]),
      Buffer.from([0xff]),
    ]
    for (const body of bodies) expectRawProblem(await postRaw(srv, body, JSON_TYPE), 400, 'invalid_encoding')
  })

  test(`${kind}: NUL bytes and lone surrogates never reach the database as a 5xx (contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    // A raw NUL inside a JSON string is not JSON (RFC 8259 §7).
    expectRawProblem(await postRaw(srv, Buffer.from(`{"username":"a\u0000b","password":"${STRONG}"}`), JSON_TYPE), 400, 'invalid_json')
    // Escaped NUL and lone surrogates in the username are refused by the username rules.
    for (const username of ['a\u0000b', '\u0000', 'ab\ud800', '\udc00ab']) {
      expectRawProblem(await postRaw(srv, JSON.stringify({ username, password: STRONG }), JSON_TYPE), 400, 'username_invalid')
    }
    // In the password they are just characters: whatever the answer, it is not a 5xx, and it is coherent.
    for (const [username, password] of [
      ['nulpass', `${STRONG}\u0000`],
      ['surrogatepass', `${STRONG}\ud800`],
    ] as const) {
      const res = await postRaw(srv, JSON.stringify({ username, password }), JSON_TYPE)
      assert.ok(res.status === 201 || res.status === 400, `${username}: ${res.status} ${res.body}`)
      if (res.status === 400) checkProblemText(res.body, res.headers['content-type'], 400)
    }
    const nulLogin = await srv.get('/api/resource', { basic: ['nulpass', `${STRONG}\u0000`] }).catch(() => undefined)
    if (nulLogin !== undefined) assert.ok(nulLogin.status === 200 || nulLogin.status === 401, String(nulLogin.status))
  })

  test(`${kind}: very long usernames and passwords → 400, never 5xx (security baseline "1–32 code points", "1024 bytes")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const username of ['a'.repeat(33), 'a'.repeat(1000), 'a'.repeat(15_000), 'é'.repeat(5000), '\u0301'.repeat(5000)]) {
      expectRawProblem(await postRaw(srv, JSON.stringify({ username, password: STRONG }), JSON_TYPE), 400, 'username_invalid')
    }
    for (const password of ['x'.repeat(1025), 'é'.repeat(600), 'x'.repeat(15_000)]) {
      expectRawProblem(await postRaw(srv, JSON.stringify({ username: 'miguel', password }), JSON_TYPE), 400, 'password_too_long')
    }
    // Basic with a huge username (under the header cap) is an ordinary 401.
    await expectProblem(await srv.get('/api/resource', { basic: ['a'.repeat(5000), 'x'] }), 401, 'invalid_credentials')
    await expectProblem(await srv.get('/api/resource', { basic: ['miguel', 'x'.repeat(5000)] }), 401, 'invalid_credentials')
  })

  test(`${kind}: fuzz: arbitrary bodies and Authorization headers never give a 5xx (contract §1, ~200 runs)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'miguel')

    const latin1Char = fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c))
    const headerText = fc.string({ unit: latin1Char, maxLength: 200 })
    const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64')
    const authorization = fc.oneof(
      headerText,
      headerText.map((s) => `Basic ${s}`),
      headerText.map((s) => `Bearer ${s}`),
      fc.uint8Array({ maxLength: 120 }).map((bytes) => `Basic ${b64(bytes)}`),
      fc.tuple(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 })).map(([u, p]) => `Basic ${b64(`${u}:${p}`)}`),
      fc.tuple(fc.constantFrom('miguel', 'MIGUEL', 'ｍｉｇｕｅｌ'), fc.string({ maxLength: 40 })).map(([u, p]) => `Basic ${b64(`${u}:${p}`)}`),
      fc.tuple(fc.base64String({ maxLength: 60 }), fc.base64String({ maxLength: 200 }), fc.base64String({ maxLength: 90 })).map(
        ([a, b, c]) => `Bearer ${a.replace(/=/g, '')}.${b.replace(/=/g, '')}.${c.replace(/=/g, '')}`,
      ),
    )
    const body = fc.oneof(
      fc.string({ maxLength: 300 }).map((s) => Buffer.from(s, 'utf8')),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.json({ maxDepth: 4 }).map((s) => Buffer.from(s, 'utf8')),
      fc
        .record({ username: fc.oneof(fc.string({ maxLength: 40 }), fc.jsonValue({ maxDepth: 2 })), password: fc.oneof(fc.string({ maxLength: 40 }), fc.jsonValue({ maxDepth: 2 })) }, { requiredKeys: [] })
        .map((o) => Buffer.from(JSON.stringify(o), 'utf8')),
    )
    const contentType = fc.constantFrom(JSON_TYPE, `${JSON_TYPE}; charset=utf-8`, 'text/plain', 'application/octet-stream', undefined)

    const check = async (res: Response, what: string): Promise<void> => {
      const text = await res.text()
      assert.ok(res.status < 500, `${what} → ${res.status}: ${text}`)
      assertNoInternals(text)
      if (res.status >= 400) checkProblemText(text, res.headers.get('content-type'), res.status)
    }

    await fc.assert(
      fc.asyncProperty(authorization, fc.constantFrom('/api/resource', '/api/token'), async (header, path) => {
        const res = await srv.get(path, { headers: { authorization: header } })
        await check(res, `GET ${path} Authorization: ${JSON.stringify(header)}`)
      }),
      { numRuns: 120, interruptAfterTimeLimit: 20_000 },
    )
    await fc.assert(
      fc.asyncProperty(body, contentType, async (bytes, type) => {
        const res = await srv.request('POST', '/api/users', {
          body: bytes,
          headers: type === undefined ? {} : { 'content-type': type },
        })
        await check(res, `POST /api/users ${type ?? '(no type)'} ${JSON.stringify(bytes.toString('latin1'))}`)
      }),
      { numRuns: 120, interruptAfterTimeLimit: 20_000 },
    )
    // The server still works afterwards.
    assert.equal((await srv.get('/api/resource', { basic: ['miguel', STRONG] })).status, 200)
  })
}
