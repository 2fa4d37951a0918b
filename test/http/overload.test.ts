/**
 * The bounded password-hash queue over real HTTP (security baseline "Hash concurrency"; OWASP Password
 * Storage CS: a work factor is also a DoS lever): when every hashing slot is busy and the queue is
 * full, new password attempts get 503 `overloaded` with `Retry-After` at once, while requests with a
 * token keep being served.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, registerOk, STRONG, tokenOf } from './support.ts'

for (const kind of STORES) {
  test(`${kind}: a full hash queue answers 503 overloaded with Retry-After, and token requests are still served (security baseline "Hash concurrency")`, async (t) => {
    // Default argon2id cost (tens of ms per check), one slot and a queue of one: a burst overflows it.
    const srv = await startServer(t, {
      store: kind,
      env: { AUTH_ARGON2_MEMORY: '19456', AUTH_ARGON2_ITERATIONS: '2', AUTH_HASH_CONCURRENCY: '1', AUTH_HASH_QUEUE: '1' },
    })
    if (!srv) return
    await registerOk(srv, 'miguel')
    const token = await tokenOf(srv, { basic: ['miguel', STRONG] })

    const burst = Array.from({ length: 24 }, (_, i) => srv.get('/api/resource', { basic: [`user${i}`, 'a wrong password'] }))
    // While the burst holds the hashing slot, a token request does not wait for it.
    const withToken = await srv.get('/api/resource', { bearer: token })
    const responses = await Promise.all(burst)

    await expectJson(withToken, 200)
    const statuses = responses.map((r) => r.status)
    assert.ok(statuses.every((s) => s === 401 || s === 503), `only 401 or 503, got ${statuses.join(',')}`)
    const overloaded = responses.filter((r) => r.status === 503)
    assert.ok(overloaded.length > 0, 'some attempts must find the queue full')
    assert.ok(statuses.includes(401), 'the attempts that got a slot were checked')
    for (const res of overloaded) {
      assert.match(res.headers.get('retry-after') ?? '', /^[1-9]\d*$/)
      await expectProblem(res, 503, 'overloaded')
    }
    // The queue drains: the password works again afterwards.
    await expectJson(await srv.get('/api/resource', { basic: ['miguel', STRONG] }), 200)
  })
}
