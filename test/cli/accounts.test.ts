/**
 * `rest-auth user|invite|audit` as a real child process (`node --import tsx src/cli/main.ts`) on a
 * fresh database: exit codes (0 ok, 1 refused or not found, 2 usage), what is printed, and the
 * effect in the database, read back through the store or over HTTP from a server on the same
 * database. Each child costs about a second, so independent commands of a test run together
 * (through one small pool shared by the whole file) and the tests of this file run concurrently.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { KyselyStore } from '../../src/store/kysely-store.ts'
import type { User } from '../../src/store/store.ts'
import { CLI_ARGS, childEnv, REPO_ROOT, type CliResult } from '../helpers/cli.ts'
import { freshStore } from '../helpers/fresh-store.ts'
import { FAST_ARGON2, startServer } from '../helpers/server.ts'
import { postgresReachable } from '../helpers/services.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'

/** A password every policy accepts (≥ 15 code points, not common, unrelated to the usernames used). */
const PASSWORD = 'correct horse battery staple'
const NEW_PASSWORD = 'purple monkey dishwasher lamp'
const FAKE_HASH = '$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'

// ---- running the CLI ----

/** At most this many CLI children at once, across every test of the file. */
const POOL = 4
let running = 0
const waiting: Array<() => void> = []

async function pooled<T>(run: () => Promise<T>): Promise<T> {
  if (running >= POOL) await new Promise<void>((resolve) => waiting.push(resolve))
  running++
  try {
    return await run()
  } finally {
    running--
    waiting.shift()?.()
  }
}

interface CliCall {
  readonly args: readonly string[]
  /** Written to the child's stdin, which is then closed; without it stdin is /dev/null (no terminal). */
  readonly stdin?: string
}

/** Like helpers/cli.ts runCli, plus stdin (for `--password-stdin`). */
function spawnCli(databaseUrl: string, call: CliCall, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const env = childEnv({ DATABASE_URL: databaseUrl, ...FAST_ARGON2 })
    const child = spawn(process.execPath, [...CLI_ARGS, ...call.args], {
      cwd: REPO_ROOT,
      env,
      stdio: [call.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    if (call.stdin !== undefined) child.stdin?.end(call.stdin)
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** A CLI bound to one database. */
function cliOn(databaseUrl: string) {
  const one = (args: readonly string[], stdin?: string) =>
    pooled(() => spawnCli(databaseUrl, stdin === undefined ? { args } : { args, stdin }))
  /** Runs independent commands together; results in the order given. */
  const all = (calls: ReadonlyArray<readonly string[] | CliCall>) =>
    Promise.all(calls.map((c) => ('args' in c ? one(c.args, c.stdin) : one(c))))
  return { one, all }
}

function describeRun(args: readonly string[], r: CliResult): string {
  return `rest-auth ${args.join(' ')} → ${r.code}${r.signal === null ? '' : ` (${r.signal})`}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`
}

/** Asserts the exit code (and, for refusals, a pattern on stderr); returns the result. */
function expectExit(args: readonly string[], r: CliResult, code: number, stderr?: RegExp): CliResult {
  assert.equal(r.code, code, describeRun(args, r))
  if (stderr !== undefined) assert.match(r.stderr, stderr, describeRun(args, r))
  if (code !== 0) assert.equal(r.stdout, '', `nothing on stdout when refused: ${describeRun(args, r)}`)
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `no stack trace: ${describeRun(args, r)}`)
  return r
}

function json<T>(r: CliResult): T {
  return JSON.parse(r.stdout) as T
}

interface AccountJson {
  readonly id: number
  readonly username: string
  readonly status: string
  readonly roles: readonly string[]
  readonly created_at: string
  readonly updated_at: string
}

interface InviteJson {
  readonly id: string
  readonly username: string | null
  readonly roles: readonly string[]
  readonly created_by: string
  readonly created_at: string
  readonly expires_at: string
  readonly state: string
  readonly used_by: number | null
  readonly code?: string
}

interface AuditJson {
  readonly id: number
  readonly at: string
  readonly event: string
  readonly outcome: string
  readonly actor_id: number | null
  readonly actor: string
  readonly subject_id: number | null
  readonly subject: string | null
  readonly ip: string | null
  readonly detail: Record<string, unknown>
}

const ACCOUNT_KEYS = ['created_at', 'id', 'roles', 'status', 'updated_at', 'username']

/** The wire shape of an account: exactly these keys, never a hash. */
function assertAccount(value: AccountJson, expected: { username: string; status: string; roles: readonly string[] }): void {
  assert.deepEqual(Object.keys(value).sort(), ACCOUNT_KEYS)
  assert.equal(value.username, expected.username)
  assert.equal(value.status, expected.status)
  assert.deepEqual(value.roles, expected.roles)
  assert.ok(Number.isSafeInteger(value.id))
  assert.ok(!Number.isNaN(Date.parse(value.created_at)))
}

async function seedUser(store: KyselyStore, username: string, overrides: { status?: User['status']; roles?: readonly string[] } = {}): Promise<User> {
  const user = await store.createUser({ username, usernameCanonical: username, passwordHash: FAKE_HASH, now: Date.now(), ...overrides })
  assert.ok(user !== undefined, `seed ${username}`)
  return user
}

async function reload(store: KyselyStore, user: User): Promise<User | undefined> {
  return store.findUserById(user.id)
}

// Settle PostgreSQL's reachability (cached per process) now, while the event loop is idle: once the
// tests below run together, spawning children and synchronous SQLite work can hold the loop past the
// probe's 1 s timer, and a reachable server would then count as unreachable. A failure here is
// reported again, by the test that needs PostgreSQL.
await postgresReachable().catch(() => undefined)

describe('rest-auth user|invite|audit', { concurrency: true }, () => {
  for (const kind of STORES) {
    test(`${kind}: the first admin is made with no server running, then uses the admin API over HTTP; --generate-password prints a password that works`, async (t) => {
      const databaseUrl = await freshDatabaseUrl(t, kind)
      if (databaseUrl === undefined) return
      const cli = cliOn(databaseUrl)

      // A fresh database: the command migrates it, then creates the user.
      const createArgs = ['user', 'create', 'boss', '--admin', '--password-stdin']
      const created = expectExit(createArgs, await cli.one(createArgs, `${PASSWORD}\n`), 0)
      assert.match(created.stdout, /^created user \d+ boss \(active, roles: admin\)\n$/)

      const calls = [
        { args: ['user', 'show', 'boss', '--json'] },
        { args: ['user', 'create', 'x', '--generate-password'] },
        { args: ['user', 'create', 'BOSS', '--password-stdin'], stdin: `${PASSWORD}\n` },
      ] as const
      const [show, generated, duplicate] = await cli.all(calls)

      expectExit(calls[0].args, show!, 0)
      assertAccount(json<AccountJson>(show!), { username: 'boss', status: 'active', roles: ['admin'] })
      assert.doesNotMatch(show!.stdout, /argon2|hash|password/i, 'no hash or password in the output')

      expectExit(calls[1].args, generated!, 0)
      const match = /^password: (\S+)$/m.exec(generated!.stdout)
      assert.ok(match !== null, generated!.stdout)
      const password = match[1]!
      assert.ok(password.length >= 32, 'a generated password of 192 bits')
      assert.equal(generated!.stdout.split(password).length - 1, 1, 'printed exactly once')
      assert.match(generated!.stdout, /shown once/)
      assert.ok(!generated!.stderr.includes(password), 'never on stderr')

      expectExit(calls[2].args, duplicate!, 1, /^rest-auth: username_taken: /)

      // A server on the same database: the CLI-made admin signs in and uses the admin API.
      const srv = await startServer(t, { databaseUrl })
      assert.ok(srv !== undefined)
      const list = await srv.get('/api/admin/users', { basic: ['boss', PASSWORD] })
      const text = await list.text()
      assert.equal(list.status, 200, text)
      const body = JSON.parse(text) as { users: AccountJson[] }
      assert.deepEqual(
        body.users.map((u) => [u.username, u.roles]),
        [
          ['boss', ['admin']],
          ['x', []],
        ],
        'one boss: the duplicate was refused',
      )
      // The generated password works, once shown; it gives no admin rights.
      const token = await srv.token('x', password)
      assert.equal((await srv.get('/api/resource', { bearer: token })).status, 200)
      assert.equal((await srv.get('/api/admin/users', { basic: ['x', password] })).status, 403)
      assert.equal((await srv.get('/api/token', { basic: ['x', `${password}!`] })).status, 401)
    })
  }

  test('sqlite: user list prints a table, --json the accounts without hashes; --search (literal _), --role, --status, --after, --limit reach the store', async (t) => {
    const fresh = await freshStore(t, 'sqlite')
    assert.ok(fresh !== undefined)
    const { store } = fresh
    // Each of these is left out by exactly one flag of the filtered call below.
    const first = await seedUser(store, 'a_b1', { roles: ['editor'] }) // --after
    await seedUser(store, 'axb', { roles: ['editor'] }) // --search _ (not a wildcard)
    await seedUser(store, 'a_b3', { roles: ['edit', 'viewer'] }) // --role editor (not a prefix)
    await seedUser(store, 'a_b4', { roles: ['editor'], status: 'pending' }) // --status active
    await seedUser(store, 'a_b5', { roles: ['editor'] }) // the one expected
    await seedUser(store, 'a_b6', { roles: ['editor'] }) // --limit 1
    const cli = cliOn(fresh.databaseUrl)

    const calls = [
      ['user', 'list'],
      ['user', 'list', '--json'],
      ['user', 'list', '--search', '_', '--role', 'editor', '--status', 'active', '--after', String(first.id), '--limit', '1', '--json'],
    ] as const
    const [table, all, filtered] = await cli.all(calls)

    expectExit(calls[0], table!, 0)
    const lines = table!.stdout.trimEnd().split('\n')
    assert.match(lines[0]!, /^ID\s+USERNAME\s+STATUS\s+ROLES\s+CREATED$/)
    const cells = lines.slice(1).map((l) => l.split(/\s{2,}/))
    assert.deepEqual(
      cells.map((c) => c.slice(1, 4)),
      [
        ['a_b1', 'active', 'editor'],
        ['axb', 'active', 'editor'],
        ['a_b3', 'active', 'edit viewer'],
        ['a_b4', 'pending', 'editor'],
        ['a_b5', 'active', 'editor'],
        ['a_b6', 'active', 'editor'],
      ],
      table!.stdout,
    )
    assert.equal(cells[0]?.[0], String(first.id))
    assert.ok(cells.every((c) => !Number.isNaN(Date.parse(c[4] ?? ''))), 'CREATED is a date-time')
    assert.doesNotMatch(table!.stdout, /argon2/)

    expectExit(calls[1], all!, 0)
    assert.deepEqual(Object.keys(json<Record<string, unknown>>(all!)), ['users'])
    const users = json<{ users: AccountJson[] }>(all!).users
    assert.equal(users.length, 6)
    assertAccount(users[2]!, { username: 'a_b3', status: 'active', roles: ['edit', 'viewer'] })
    assertAccount(users[3]!, { username: 'a_b4', status: 'pending', roles: ['editor'] })
    assert.doesNotMatch(all!.stdout, /argon2/)

    expectExit(calls[2], filtered!, 0)
    assert.deepEqual(
      json<{ users: AccountJson[] }>(filtered!).users.map((u) => u.username),
      ['a_b5'],
    )
  })

  test('sqlite: approve|disable|enable|set-role|set-password|revoke-tokens|delete exit 0 and make the change; unknown user → 1; usage → 2; last admin → 1 (last_admin); each change audited by cli', async (t) => {
    const fresh = await freshStore(t, 'sqlite')
    assert.ok(fresh !== undefined)
    const { store } = fresh
    const boss = await seedUser(store, 'boss', { roles: ['admin'] })
    const p1 = await seedUser(store, 'p1', { status: 'pending' })
    const p2 = await seedUser(store, 'p2')
    const p3 = await seedUser(store, 'p3')
    const p4 = await seedUser(store, 'p4')
    const p5 = await seedUser(store, 'p5')
    const p6 = await seedUser(store, 'p6')
    const p7 = await seedUser(store, 'p7', { status: 'disabled' })
    const p8 = await seedUser(store, 'p8', { roles: ['editor'] })
    const cli = cliOn(fresh.databaseUrl)

    const ok: ReadonlyArray<readonly [CliCall, RegExp]> = [
      [{ args: ['user', 'approve', 'p1'] }, /^p1: active\n$/],
      [{ args: ['user', 'disable', String(p2.id)] }, /^p2: disabled \(every token revoked\)\n$/], // by id
      [{ args: ['user', 'set-role', 'P3', 'viewer', 'editor', 'viewer'] }, /^p3: roles editor viewer\n$/], // any case of the name
      [{ args: ['user', 'set-password', 'p4', '--password-stdin'], stdin: `${NEW_PASSWORD}\n` }, /^p4: password set, every token revoked\n$/],
      [{ args: ['user', 'revoke-tokens', 'p5'] }, /^revoked every token of p5\n$/],
      [{ args: ['user', 'delete', 'p6'] }, new RegExp(`^deleted user ${p6.id} p6\\n$`)],
      [{ args: ['user', 'enable', 'p7', '--json'] }, /^\{"id":\d+,"username":"p7","status":"active","roles":\[\]/],
      [{ args: ['user', 'set-role', 'p8', '--none'] }, /^p8: roles \(none\)\n$/],
    ]
    // One per branch of the command (approve, disable and enable share one), to keep the child count down.
    const unknown: ReadonlyArray<CliCall> = [
      { args: ['user', 'enable', 'nobody'] },
      { args: ['user', 'delete', String(p8.id + 100)] },
      { args: ['user', 'set-role', 'nobody', 'editor'] },
      { args: ['user', 'set-password', 'nobody', '--generate-password'] },
      { args: ['user', 'revoke-tokens', 'nobody'] },
    ]
    const usage: ReadonlyArray<readonly [CliCall, RegExp]> = [
      [{ args: ['user', 'show'] }, /expected exactly one USER\nusage: rest-auth user/],
      [{ args: ['user', 'set-role', 'boss'] }, /name the roles, or --none to remove every role\nusage: rest-auth user/],
      // stdin is /dev/null: no terminal to ask for the password
      [{ args: ['user', 'create', 'carol'] }, /no terminal to ask for the password: use --password-stdin or --generate-password/],
    ]
    const refused: ReadonlyArray<readonly [CliCall, RegExp]> = [
      [{ args: ['user', 'set-role', 'boss', 'editor'] }, /^rest-auth: last_admin: /],
      [{ args: ['user', 'create', 'Boss', '--password-stdin'], stdin: PASSWORD }, /^rest-auth: username_taken: /],
    ]
    const calls = [...ok.map(([c]) => c), ...unknown, ...usage.map(([c]) => c), ...refused.map(([c]) => c)]
    const results = await cli.all(calls)
    let i = 0
    for (const [call, stdout] of ok) {
      const r = expectExit(call.args, results[i++]!, 0)
      assert.match(r.stdout, stdout, describeRun(call.args, r))
    }
    for (const call of unknown) expectExit(call.args, results[i++]!, 1, /^rest-auth: user_not_found: no user "[^"]+"\n$/)
    for (const [call, stderr] of usage) expectExit(call.args, results[i++]!, 2, stderr)
    for (const [call, stderr] of refused) expectExit(call.args, results[i++]!, 1, stderr)

    // The effects, read back from the database.
    assert.equal((await reload(store, p1))?.status, 'active')
    const p2After = await reload(store, p2)
    assert.equal(p2After?.status, 'disabled')
    assert.ok((p2After?.tokensValidAfter ?? 0) > 0, 'disable revokes every token')
    assert.deepEqual((await reload(store, p3))?.roles, ['editor', 'viewer'])
    const p4After = await reload(store, p4)
    assert.notEqual(p4After?.passwordHash, FAKE_HASH)
    assert.match(p4After?.passwordHash ?? '', /^\$argon2id\$/)
    assert.ok((p4After?.tokensValidAfter ?? 0) > 0, 'set-password revokes every token')
    assert.ok(((await reload(store, p5))?.tokensValidAfter ?? 0) > 0)
    assert.equal(await reload(store, p6), undefined)
    assert.equal((await reload(store, p7))?.status, 'active')
    assert.deepEqual((await reload(store, p8))?.roles, [])
    const bossAfter = await reload(store, boss)
    assert.equal(bossAfter?.status, 'active', 'the last admin stays active')
    assert.deepEqual(bossAfter?.roles, ['admin'], 'and keeps the admin role')
    assert.equal(await store.findUserByCanonicalName('carol'), undefined)

    // Every change is in the audit log, by the CLI, newest first; the refusals left no entry.
    const auditArgs = ['audit', '--json']
    const entries = json<{ entries: AuditJson[] }>(expectExit(auditArgs, await cli.one(auditArgs), 0)).entries
    assert.ok(entries.every((e) => e.actor === 'cli' && e.actor_id === null && e.outcome === 'success' && e.ip === null), JSON.stringify(entries))
    const ids = entries.map((e) => e.id)
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first')
    assert.deepEqual(
      entries.map((e) => `${e.event} ${e.subject}`).sort(),
      [
        'user.approved p1',
        'user.deleted p6',
        'user.disabled p2',
        'user.enabled p7',
        'user.password_set p4',
        'user.roles_changed p3',
        'user.roles_changed p8',
        'user.tokens_revoked p5',
      ],
    )
    assert.deepEqual(entries.find((e) => e.subject === 'p3')?.detail, { from: '', to: 'editor viewer' })
    assert.doesNotMatch(JSON.stringify(entries), /argon2|purple monkey/, 'no hash or password in the audit log')
  })

  test('sqlite: invite create --json gives a code that registers once; invite list --json; invite revoke ID works once (then 1); audit --json shows the CLI actions by cli, --event user.* filters; a bad --since → 2', async (t) => {
    const fresh = await freshStore(t, 'sqlite')
    assert.ok(fresh !== undefined)
    const { store } = fresh
    const cli = cliOn(fresh.databaseUrl)

    const first = [
      { args: ['invite', 'create', '--username', 'dave', '--role', 'editor', '--json'] },
      { args: ['invite', 'create', '--expires-in', '3600', '--json'] },
      { args: ['user', 'create', 'ann', '--password-stdin'], stdin: PASSWORD },
      { args: ['audit', '--since', 'yesterday'] },
    ] as const
    const [forDave, plain, ann, badSince] = await cli.all(first)
    const dave = json<InviteJson>(expectExit(first[0].args, forDave!, 0))
    assert.match(dave.code ?? '', /^rai_[A-Za-z0-9_-]{43}$/)
    assert.match(dave.id, /^inv_/)
    assert.equal(dave.username, 'dave')
    assert.deepEqual(dave.roles, ['editor'])
    assert.equal(dave.created_by, 'cli')
    assert.equal(dave.state, 'usable')
    assert.equal(dave.used_by, null)
    const open = json<InviteJson>(expectExit(first[1].args, plain!, 0))
    assert.equal(open.username, null)
    assert.equal(Date.parse(open.expires_at) - Date.parse(open.created_at), 3_600_000)
    expectExit(first[2].args, ann!, 0)
    expectExit(first[3].args, badSince!, 2, /--since must be a date-time/)
    // Only the hash is stored.
    const raw = await store.db.selectFrom('invites').select(['id', 'code_hash']).execute()
    assert.equal(raw.length, 2)
    assert.ok(raw.every((r) => r.code_hash !== dave.code && r.code_hash !== open.code && /^[0-9a-f]{64}$/.test(r.code_hash)))

    const listArgs = ['invite', 'list', '--json']
    const listed = json<{ invites: InviteJson[] }>(expectExit(listArgs, await cli.one(listArgs), 0)).invites
    assert.deepEqual(listed.map((i) => i.id).sort(), [dave.id, open.id].sort())
    assert.ok(listed.every((i) => i.state === 'usable' && i.code === undefined), 'a listed invite never shows its code')

    // The code works over HTTP, once, under closed registration, with its roles.
    const srv = await startServer(t, { databaseUrl: fresh.databaseUrl, env: { AUTH_REGISTRATION: 'closed' } })
    assert.ok(srv !== undefined)
    const register = (username: string, invite: string) => srv.post('/api/users', { json: { username, password: PASSWORD, invite } })
    const registered = await register('dave', dave.code!)
    const registeredText = await registered.text()
    assert.equal(registered.status, 201, registeredText)
    const daveId = (JSON.parse(registeredText) as { id: number }).id
    assert.deepEqual((await store.findUserById(daveId))?.roles, ['editor'])
    assert.equal((await register('dave2', dave.code!)).status, 400, 'single use')

    const revokeArgs = ['invite', 'revoke', open.id]
    assert.equal(expectExit(revokeArgs, await cli.one(revokeArgs), 0).stdout, `revoked invite ${open.id}\n`)
    assert.equal((await register('erin', open.code!)).status, 400, 'a revoked code no longer registers')

    const last = [
      ['invite', 'revoke', open.id],
      ['invite', 'list', '--all', '--json'],
      ['audit', '--json'],
      ['audit', '--event', 'user.*', '--json'],
    ] as const
    const [revokeAgain, everything, audit, userFamily] = await cli.all(last)
    expectExit(last[0], revokeAgain!, 1, /^rest-auth: invite_not_found: /)
    const states = json<{ invites: InviteJson[] }>(expectExit(last[1], everything!, 0)).invites.map((i) => [i.id, i.state, i.used_by])
    assert.deepEqual(
      states.sort(),
      [
        [dave.id, 'used', daveId],
        [open.id, 'revoked', null],
      ].sort(),
    )

    const entries = json<{ entries: AuditJson[] }>(expectExit(last[2], audit!, 0)).entries
    const ids = entries.map((e) => e.id)
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first')
    const byCli = entries.filter((e) => e.actor === 'cli')
    assert.deepEqual(byCli.map((e) => e.event).sort(), ['invite.created', 'invite.created', 'invite.revoked', 'user.created'])
    assert.ok(byCli.every((e) => e.actor_id === null))
    assert.deepEqual(byCli.find((e) => e.event === 'invite.revoked')?.detail, { invite: open.id })
    assert.deepEqual(
      entries.filter((e) => e.event === 'user.registered').map((e) => e.subject),
      ['dave'],
      'the registration over HTTP is in the same log',
    )
    for (const code of [dave.code!, open.code!]) assert.ok(!audit!.stdout.includes(code), 'never an invite code')
    const family = json<{ entries: AuditJson[] }>(expectExit(last[3], userFamily!, 0)).entries.map((e) => e.event)
    assert.ok(family.every((e) => e.startsWith('user.')), family.join(' '))
    assert.deepEqual(
      family,
      entries.map((e) => e.event).filter((e) => e.startsWith('user.')),
      'the user.* family: every user event, no invite event',
    )
    assert.ok(family.includes('user.created') && family.includes('user.registered'))
  })
})
