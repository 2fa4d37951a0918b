/**
 * POST /api/users and GET /api/users/<id> over real HTTP, against every store
 * (contract §1; security baseline "Username", "Password length", "Password checks").
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { KyselyStore } from '../../src/store/kysely-store.ts'
import { isCommonPassword } from '../../src/passwords/blocklist.ts'
import { startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, rawRequest, registerOk, STRONG, tokenOf } from './support.ts'

for (const kind of STORES) {
  test(`${kind}: registration → 201 {id, username} and Location from PUBLIC_URL, not Host (contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { PUBLIC_URL: 'https://auth.example.test' } })
    if (!srv) return
    const res = await rawRequest(
      srv.url,
      'POST',
      '/api/users',
      [
        ['Host', 'attacker.example:8443'],
        ['X-Forwarded-Host', 'attacker.example'],
        ['X-Forwarded-Proto', 'http'],
        ['Content-Type', 'application/json'],
      ],
      JSON.stringify({ username: 'miguel', password: STRONG }),
    )
    assert.equal(res.status, 201, res.body)
    assert.match(res.headers['content-type'] ?? '', /^application\/json\b/)
    const body = JSON.parse(res.body) as { id: number; username: string }
    assert.deepEqual(Object.keys(body).sort(), ['id', 'username'])
    assert.equal(body.username, 'miguel')
    assert.ok(Number.isSafeInteger(body.id) && body.id > 0)
    assert.equal(res.headers['location'], `https://auth.example.test/api/users/${body.id}`)
    assert.ok(!res.body.includes('password'), 'the reply never mentions the password or its hash')

    // The Location is a working URL of the user (modulo the public base).
    const location = new URL(res.headers['location'] ?? '')
    const got = await expectJson(await srv.get(location.pathname), 200)
    assert.deepEqual(got, { id: body.id, username: 'miguel' })
  })

  test(`${kind}: a PUBLIC_URL with a path prefix is kept in Location (contract §1, configuration)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { PUBLIC_URL: 'https://example.test/auth/' } })
    if (!srv) return
    const res = await srv.register('miguel', STRONG)
    const body = await expectJson<{ id: number }>(res, 201)
    assert.equal(res.headers.get('location'), `https://example.test/auth/api/users/${body.id}`)
  })

  test(`${kind}: default PUBLIC_URL gives an absolute Location (contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const res = await srv.register('miguel', STRONG)
    const body = await expectJson<{ id: number }>(res, 201)
    const location = res.headers.get('location') ?? ''
    assert.equal(location, `${srv.config.publicUrl}/api/users/${body.id}`)
    assert.ok(URL.canParse(location) && new URL(location).protocol.startsWith('http'), 'absolute URL')
  })

  test(`${kind}: GET /api/users/<id> → 200 {id, username} (contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const a = await registerOk(srv, 'alice')
    const b = await registerOk(srv, 'Bob.Smith')
    assert.deepEqual(await expectJson(await srv.get(`/api/users/${a.id}`), 200), { id: a.id, username: 'alice' })
    assert.deepEqual(await expectJson(await srv.get(`/api/users/${b.id}`), 200), { id: b.id, username: 'Bob.Smith' })
  })

  test(`${kind}: unknown or non-canonical user id → 404 user_not_found, never 5xx (contract §1, deliberate difference)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const a = await registerOk(srv, 'alice')
    const ids = [
      String(a.id + 1),
      '999999',
      'abc',
      '0',
      '-1',
      '1e3',
      '1.0',
      '0x1',
      `0${a.id}`,
      '+1',
      '%201',
      '1%00',
      '9007199254740991',
      '9007199254740992',
      '9223372036854775807',
      '9223372036854775808',
      '99999999999999999999999999999999',
      '9'.repeat(99),
      'NaN',
      'Infinity',
      '%E2%80%8B1',
    ]
    for (const id of ids) {
      const res = await srv.get(`/api/users/${id}`)
      const problem = await expectProblem(res, 404)
      assert.ok(['user_not_found', 'not_found'].includes(problem.code), `${id}: ${problem.code}`)
      if (/^[\w.+%-]+$/.test(id) && id.length <= 100) assert.equal(problem.code, 'user_not_found', id)
    }
    // A path parameter longer than the router allows is still a 404 problem, not Fastify's own 414.
    await expectProblem(await srv.get(`/api/users/${'1'.repeat(300)}`), 404)
    // Broken percent-encoding is not an id at all: a 400 problem, not Fastify's own plain-JSON answer.
    for (const bad of ['%E0%A4%A', '%', '1%ZZ']) {
      const res = await srv.get(`/api/users/${bad}`)
      await expectProblem(res, 400, 'invalid_request')
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
    }
  })

  test(`${kind}: missing fields → 400 invalid_request naming the field (contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const noPassword = await expectProblem(await srv.post('/api/users', { json: { username: 'miguel' } }), 400, 'invalid_request')
    assert.equal(noPassword['field'], 'password')
    const noUsername = await expectProblem(await srv.post('/api/users', { json: { password: STRONG } }), 400, 'invalid_request')
    assert.equal(noUsername['field'], 'username')
    await expectProblem(await srv.post('/api/users', { json: {} }), 400, 'invalid_request')
    // Nothing was created.
    await expectProblem(await srv.get('/api/users/1'), 404, 'user_not_found')
  })

  test(`${kind}: wrong field types → 400 invalid_request, no coercion (contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const cases: Array<[unknown, string]> = [
      [{ username: 123, password: STRONG }, 'username'],
      [{ username: true, password: STRONG }, 'username'],
      [{ username: null, password: STRONG }, 'username'],
      [{ username: ['miguel'], password: STRONG }, 'username'],
      [{ username: { a: 'b' }, password: STRONG }, 'username'],
      [{ username: 'miguel', password: 12345678901234567 }, 'password'],
      [{ username: 'miguel', password: null }, 'password'],
      [{ username: 'miguel', password: [STRONG] }, 'password'],
      [{ username: 'miguel', password: false }, 'password'],
    ]
    for (const [json, field] of cases) {
      const problem = await expectProblem(await srv.post('/api/users', { json }), 400, 'invalid_request')
      assert.equal(problem['field'], field, JSON.stringify(json))
    }
    await expectProblem(await srv.get('/api/users/1'), 404, 'user_not_found')
  })

  test(`${kind}: extra fields are ignored, never assigned (contract §1, REST-auth reads only username/password)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const first = await registerOk(srv, 'first')
    const res = await srv.post('/api/users', {
      json: { username: 'miguel', password: STRONG, id: 424242, admin: true, role: 'admin', password_hash: 'x', created_at: 0 },
    })
    const body = await expectJson<Record<string, unknown>>(res, 201)
    assert.deepEqual(Object.keys(body).sort(), ['id', 'username'])
    assert.notEqual(body['id'], 424242)
    assert.ok((body['id'] as number) > first.id)
    await expectProblem(await srv.get('/api/users/424242'), 404, 'user_not_found')
    // The hash was not taken from the body: the password logs in.
    assert.equal((await srv.get('/api/resource', { basic: ['miguel', STRONG] })).status, 200)
  })

  test(`${kind}: Miguel, miguel and ｍｉｇｕｅｌ are one account, shown as registered (RFC 8265 §3.4, contract §1)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const user = await registerOk(srv, 'Miguel')
    assert.equal(user.username, 'Miguel')
    for (const other of ['miguel', 'MIGUEL', 'ｍｉｇｕｅｌ', 'Ｍｉｇｕｅｌ']) {
      const problem = await expectProblem(await srv.register(other, STRONG), 400, 'username_taken')
      assert.equal(problem['field'], 'username')
    }
    for (const name of ['Miguel', 'miguel', 'ｍｉｇｕｅｌ']) {
      const hello: unknown = await expectJson(await srv.get('/api/resource', { basic: [name, STRONG] }), 200)
      assert.deepEqual(hello, { data: 'Hello, Miguel!' }, name)
    }
    assert.deepEqual(await expectJson(await srv.get(`/api/users/${user.id}`), 200), { id: user.id, username: 'Miguel' })
  })

  test(`${kind}: usernames with ':' or spaces or controls are refused → 400 username_invalid (RFC 7617 §2, security baseline)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    for (const name of ['mig:uel', ':miguel', 'miguel:', 'mig uel', 'mig\tuel', 'mig\u0000uel', 'mig\u200buel', '', 'admin', '...']) {
      await expectProblem(await srv.register(name, STRONG), 400, 'username_invalid')
    }
  })

  test(`${kind}: username of 32 code points accepted, 33 refused (security baseline "1–32 code points")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    await registerOk(srv, 'a'.repeat(32))
    await expectProblem(await srv.register('b'.repeat(33), STRONG), 400, 'username_invalid')
    // Code points, not UTF-16 units: 32 astral-plane-free letters of another script, then 33.
    await registerOk(srv, 'é'.repeat(32))
    await expectProblem(await srv.register('ж'.repeat(33), STRONG), 400, 'username_invalid')
  })

  test(`${kind}: standard policy refuses short, common and username-containing passwords (security baseline, ASVS 6.2.1/6.2.4/6.2.11)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_PASSWORD_POLICY: 'standard' } })
    if (!srv) return
    assert.ok(isCommonPassword('password1234'), 'test premise: password1234 is on the blocklist')
    assert.ok(isCommonPassword('iloveyou'), 'test premise: iloveyou is on the blocklist')
    assert.ok(!isCommonPassword('zebrafog'), 'test premise')
    await expectProblem(await srv.register('miguel', 'Short12'), 400, 'password_too_short')
    await expectProblem(await srv.register('miguel', ''), 400, 'password_too_short')
    await expectProblem(await srv.register('miguel', 'password1234'), 400, 'password_too_common')
    await expectProblem(await srv.register('miguel', 'PassWord1234'), 400, 'password_too_common')
    await expectProblem(await srv.register('miguel', 'iloveyou'), 400, 'password_too_common')
    await expectProblem(await srv.register('miguelito', 'miguelito-rocks-99'), 400, 'password_contains_context')
    await expectProblem(await srv.register('miguelito', 'MIGUELITO'), 400, 'password_contains_context')
    await expectProblem(await srv.register('miguel', 'x'.repeat(1025)), 400, 'password_too_long')
    const problem = await expectProblem(await srv.register('miguel', 'password1234'), 400, 'password_too_common')
    assert.ok(!problem.detail.includes('password1234'), 'the reason never echoes the password')
    // 8 code points is enough; nothing was created by the refusals above.
    await registerOk(srv, 'miguel', 'zebrafog')
    await registerOk(srv, 'other', 'x'.repeat(1024))
  })

  test(`${kind}: strict policy needs 15 code points (NIST SP 800-63B-4, AUTH_PASSWORD_POLICY=strict)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_PASSWORD_POLICY: 'strict' } })
    if (!srv) return
    await expectProblem(await srv.register('miguel', 'tangerine-kett'), 400, 'password_too_short') // 14
    assert.ok(isCommonPassword('1qaz2wsx3edc4rfv'), 'test premise')
    await expectProblem(await srv.register('miguel', '1qaz2wsx3edc4rfv'), 400, 'password_too_common')
    await registerOk(srv, 'miguel', 'tangerine-kettl') // 15
    // Code points, not bytes: 15 two-byte letters pass.
    await registerOk(srv, 'other', 'ééééééééééééééé')
  })

  test(`${kind}: legacy policy accepts any non-empty password, as REST-auth (AUTH_PASSWORD_POLICY=legacy)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_PASSWORD_POLICY: 'legacy' } })
    if (!srv) return
    await registerOk(srv, 'miguel', 'python')
    await registerOk(srv, 'susan', 'a')
    await registerOk(srv, 'john', 'john')
    await expectProblem(await srv.register('david', ''), 400, 'password_too_short')
    assert.deepEqual(await expectJson(await srv.get('/api/resource', { basic: ['miguel', 'python'] }), 200), {
      data: 'Hello, miguel!',
    })
  })

  test(`${kind}: AUTH_REGISTRATION=closed → 403 registration_closed (configuration)`, async (t) => {
    const srv = await startServer(t, { store: kind, env: { AUTH_REGISTRATION: 'closed' } })
    if (!srv) return
    await expectProblem(await srv.register('miguel', STRONG), 403, 'registration_closed')
    await expectProblem(await srv.get('/api/users/1'), 404, 'user_not_found')
  })

  test(`${kind}: 50 parallel registrations of one name → one 201, 49 × 400 username_taken, no 5xx (security baseline "unique index")`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const spellings = ['race', 'Race', 'RACE', 'ｒａｃｅ']
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => srv.register(spellings[i % spellings.length] ?? 'race', STRONG)),
    )
    const statuses = results.map((r) => r.status)
    assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${statuses.join(',')}`)
    assert.equal(statuses.filter((s) => s === 400).length, 49, `statuses: ${statuses.join(',')}`)
    for (const res of results) {
      if (res.status === 400) await expectProblem(res, 400, 'username_taken')
      else await res.body?.cancel()
    }
    // Exactly one row exists.
    const rows = await (srv.store as KyselyStore).db.selectFrom('users').select('id').execute()
    assert.equal(rows.length, 1)
  })

  test(`${kind}: ids are never reused and a deleted user's token is refused (contract §1, deliberate difference)`, async (t) => {
    const srv = await startServer(t, { store: kind })
    if (!srv) return
    const a = await registerOk(srv, 'alpha')
    const b = await registerOk(srv, 'bravo')
    assert.ok(b.id > a.id)
    const bToken = await tokenOf(srv, { basic: ['bravo', STRONG] })
    assert.equal((await srv.get('/api/resource', { bearer: bToken })).status, 200)

    assert.equal(await srv.runtime.store.deleteUser(b.id), true)

    const c = await registerOk(srv, 'charlie')
    assert.ok(c.id > b.id, `c.id ${c.id} must be greater than the deleted b.id ${b.id}`)
    await expectProblem(await srv.get(`/api/users/${b.id}`), 404, 'user_not_found')

    const bearer = await expectProblem(await srv.get('/api/resource', { bearer: bToken }), 401, 'token_invalid')
    assert.ok(!JSON.stringify(bearer).includes('charlie'))
    await expectProblem(await srv.get('/api/resource', { basic: [bToken, 'unused'] }), 401, 'token_invalid')
    await expectProblem(await srv.get('/api/token', { bearer: bToken }), 401, 'token_invalid')

    // The name is free again, and the new account gets a new id.
    const b2 = await registerOk(srv, 'bravo')
    assert.ok(b2.id > c.id)
    await expectProblem(await srv.get('/api/resource', { bearer: bToken }), 401, 'token_invalid')
  })
}
