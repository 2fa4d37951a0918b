/**
 * The article's curl transcript (contract §1), with the real `curl` binary against the real CLI
 * process (`rest-auth serve`), on a fresh SQLite file and on a fresh PostgreSQL schema.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { curl, freePort, type HttpTranscript, startCliServer } from '../helpers/cli.ts'
import { FAST_ARGON2 } from '../helpers/server.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'

function json(res: HttpTranscript): unknown {
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, `JSON expected, got ${res.headers['content-type']}`)
  return JSON.parse(res.body)
}

for (const kind of STORES) {
  test(`${kind}: the article's curl transcript works unchanged against rest-auth serve (contract §1)`, async (t) => {
    const databaseUrl = await freshDatabaseUrl(t, kind)
    if (databaseUrl === undefined) return
    const port = await freePort()
    const server = await startCliServer(t, {
      env: {
        AUTH_PASSWORD_POLICY: 'legacy',
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: databaseUrl,
        ...FAST_ARGON2,
        LOG_LEVEL: 'warn',
      },
    })
    const URL = server.url

    // 1. curl -i -X POST -H "Content-Type: application/json" -d '{"username":"miguel","password":"python"}' URL/api/users
    const created = await curl(['-i', '-X', 'POST', '-H', 'Content-Type: application/json', '-d', '{"username":"miguel","password":"python"}', `${URL}/api/users`])
    assert.equal(created.status, 201, created.body)
    assert.match(created.statusLine, /^HTTP\/1\.1 201 Created$/)
    // Location is absolute, built from PUBLIC_URL (default http://HOST:PORT), contract §1 and §2.
    assert.equal(created.headers['location'], `http://127.0.0.1:${port}/api/users/1`)
    assert.equal((json(created) as { username?: unknown }).username, 'miguel')

    // 2. curl -u miguel:python -i -X GET URL/api/resource
    const resource = await curl(['-u', 'miguel:python', '-i', '-X', 'GET', `${URL}/api/resource`])
    assert.match(resource.statusLine, /^HTTP\/1\.1 200 OK$/)
    assert.deepEqual(json(resource), { data: 'Hello, miguel!' })

    // 3. curl -u miguel:ruby -i -X GET URL/api/resource → 401 with the Basic challenge (RFC 7617 §2)
    const refused = await curl(['-u', 'miguel:ruby', '-i', '-X', 'GET', `${URL}/api/resource`])
    assert.match(refused.statusLine, /^HTTP\/1\.1 401 Unauthorized$/)
    assert.equal(refused.headers['www-authenticate'], 'Basic realm="Authentication Required"')
    assert.match(refused.headers['content-type'] ?? '', /^application\/problem\+json/)
    const problem = JSON.parse(refused.body) as { status?: unknown; code?: unknown }
    assert.equal(problem.status, 401)
    assert.equal(problem.code, 'invalid_credentials')

    // 4. curl -u miguel:python -i -X GET URL/api/token → {token, duration}, not cached (RFC 6749 §5.1)
    const tokenRes = await curl(['-u', 'miguel:python', '-i', '-X', 'GET', `${URL}/api/token`])
    assert.match(tokenRes.statusLine, /^HTTP\/1\.1 200 OK$/)
    assert.equal(tokenRes.headers['cache-control'], 'no-store')
    const body = json(tokenRes) as { token?: unknown; duration?: unknown }
    assert.equal(typeof body.token, 'string')
    assert.equal(body.duration, 600, 'duration is AUTH_TOKEN_TTL (default 600)')
    const token = body.token as string
    assert.ok(token.length > 0)

    // 5. curl -u <token>:unused -i -X GET URL/api/resource (token in the Basic username position)
    const byToken = await curl(['-u', `${token}:unused`, '-i', '-X', 'GET', `${URL}/api/resource`])
    assert.match(byToken.statusLine, /^HTTP\/1\.1 200 OK$/)
    assert.deepEqual(json(byToken), { data: 'Hello, miguel!' })

    // And the user's public page, at the Location given in step 1.
    const user = await curl(['-i', '-X', 'GET', created.headers['location'] ?? ''])
    assert.match(user.statusLine, /^HTTP\/1\.1 200 OK$/)
    assert.equal((json(user) as { username?: unknown }).username, 'miguel')

    // Deliberate difference: an unknown id is 404, not 400.
    const unknown = await curl(['-i', '-X', 'GET', `${URL}/api/users/2`])
    assert.equal(unknown.status, 404)

    await server.kill()
  })
}
