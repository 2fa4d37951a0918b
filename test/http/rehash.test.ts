/**
 * Password hashes are upgraded on login (house style convention 14; security baseline "rehash on
 * login when params are below policy"), against every store: restart the server with stronger argon2
 * parameters on the same database and watch the stored PHC string change.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseArgon2Params } from '../../src/passwords/hash.ts'
import { startServer, type TestServer } from '../helpers/server.ts'
import { STORES } from '../helpers/stores.ts'
import { expectJson, expectProblem, registerOk, STRONG } from './support.ts'

const WEAK = { AUTH_ARGON2_MEMORY: '256', AUTH_ARGON2_ITERATIONS: '1' }
const STRONGER = { AUTH_ARGON2_MEMORY: '512', AUTH_ARGON2_ITERATIONS: '1' }

async function storedHash(srv: TestServer, id: number): Promise<string> {
  const user = await srv.store.findUserById(id)
  assert.ok(user, `user ${id} exists`)
  return user.passwordHash
}

for (const kind of STORES) {
  test(`${kind}: a login with stronger argon2 settings upgrades the stored hash to m=512 (house style 14, security baseline "Password hash")`, async (t) => {
    const weak = await startServer(t, { store: kind, env: WEAK })
    if (!weak) return
    const { id } = await registerOk(weak, 'miguel')
    const before = await storedHash(weak, id)
    assert.deepEqual(parseArgon2Params(before), { memoryKib: 256, iterations: 1, parallelism: 1 })

    const strong = await startServer(t, { store: kind, env: STRONGER, databaseUrl: weak.databaseUrl })
    assert.ok(strong)
    assert.deepEqual(await expectJson(await strong.get('/api/resource', { basic: ['miguel', STRONG] }), 200), {
      data: 'Hello, miguel!',
    })
    const after = await storedHash(strong, id)
    assert.notEqual(after, before)
    assert.deepEqual(parseArgon2Params(after), { memoryKib: 512, iterations: 1, parallelism: 1 })
    assert.ok(strong.logs().includes('password hash upgraded'), 'the upgrade is logged')

    // The new hash works, on both servers, for both routes, and is not upgraded again.
    assert.equal((await strong.get('/api/resource', { basic: ['miguel', STRONG] })).status, 200)
    assert.equal((await strong.get('/api/token', { basic: ['miguel', STRONG] })).status, 200)
    assert.equal(await storedHash(strong, id), after)
    assert.equal((await weak.get('/api/resource', { basic: ['miguel', STRONG] })).status, 200)
    // A server with weaker settings never downgrades a hash.
    assert.equal(await storedHash(weak, id), after)
    await expectProblem(await strong.get('/api/resource', { basic: ['miguel', 'wrong password'] }), 401, 'invalid_credentials')
  })

  test(`${kind}: a wrong password does not upgrade the hash (house style 14)`, async (t) => {
    const weak = await startServer(t, { store: kind, env: WEAK })
    if (!weak) return
    const { id } = await registerOk(weak, 'miguel')
    const before = await storedHash(weak, id)

    const strong = await startServer(t, { store: kind, env: STRONGER, databaseUrl: weak.databaseUrl })
    assert.ok(strong)
    for (const password of ['wrong password', '', STRONG.toUpperCase(), `${STRONG} `]) {
      await expectProblem(await strong.get('/api/resource', { basic: ['miguel', password] }), 401)
    }
    assert.equal(await storedHash(strong, id), before, 'still the m=256 hash')
    assert.ok(!strong.logs().includes('password hash upgraded'))
    // A token renewal is not a password login: no upgrade either.
    const token = (await expectJson<{ token: string }>(await weak.get('/api/token', { basic: ['miguel', STRONG] }), 200)).token
    assert.equal((await strong.get('/api/token', { bearer: token })).status, 200)
    assert.equal(await storedHash(strong, id), before)
    // The right password then upgrades it.
    assert.equal((await strong.get('/api/resource', { basic: ['miguel', STRONG] })).status, 200)
    assert.equal(parseArgon2Params(await storedHash(strong, id))?.memoryKib, 512)
  })
}
