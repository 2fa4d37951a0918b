/**
 * `user`, `invite` and `audit`: account administration straight on the database, with no server
 * running (this is how the first admin is created). The same AccountService as the admin API, so the
 * same rules and the same audit entries (actor `cli`).
 * Exit codes: 0 ok, 1 refused or not found, 2 usage or configuration error.
 */
import { CLI_ACTOR } from '../../audit/audit.ts'
import { ADMIN_ROLE } from '../../auth/roles.ts'
import { canonicalizeUsername } from '../../auth/username.ts'
import { loadConfig } from '../../config/load.ts'
import { RestAuthError } from '../../errors.ts'
import { accountView, auditView, inviteView } from '../../http/handlers/views.ts'
import { PasswordHasher } from '../../passwords/hash.ts'
import { BoundedLimiter } from '../../passwords/limiter.ts'
import { createStore } from '../../store/kysely-store.ts'
import { USER_STATUSES, type Store, type User, type UserStatus } from '../../store/store.ts'
import { systemClock } from '../../clock.ts'
import { AuditLog } from '../../audit/audit.ts'
import { AccountService } from '../../users/accounts.ts'
import type { ParsedCli } from '../args.ts'
import { obtainPassword, PasswordInputError } from '../password.ts'
import { table } from '../table.ts'
import type { CommandIo } from './migrate.ts'

type Options = ParsedCli['options'] & { readonly json: boolean }

class UsageError extends Error {}

const USER_USAGE = `usage: rest-auth user create USERNAME [--admin] [--role R]... [--status pending] [--password-stdin | --generate-password]
       rest-auth user list [--status S] [--role R] [--search TEXT] [--limit N] [--after ID]
       rest-auth user show|approve|disable|enable|delete|revoke-tokens USER
       rest-auth user set-role USER ROLE... | USER --none
       rest-auth user set-password USER [--password-stdin | --generate-password]`
const INVITE_USAGE = 'usage: rest-auth invite create [--expires-in S] [--username U] [--role R]... | invite list [--all] | invite revoke ID'

interface Context {
  readonly store: Store
  readonly accounts: AccountService
}

async function withAccounts(overrides: Record<string, string>, run: (ctx: Context) => Promise<number>): Promise<number> {
  const { config } = loadConfig({ overrides })
  const store = createStore(config.databaseUrl)
  try {
    await store.migrate()
    const hasher = new PasswordHasher(
      { memoryKib: config.argon2MemoryKib, iterations: config.argon2Iterations, parallelism: config.argon2Parallelism },
      new BoundedLimiter(1, 1),
    )
    const audit = new AuditLog(store, systemClock, (error) => {
      throw error
    })
    const accounts = new AccountService({ store, hasher, clock: systemClock, audit, passwordPolicy: config.passwordPolicy, inviteTtl: config.inviteTtl })
    return await run({ store, accounts })
  } finally {
    await store.close()
  }
}

/** Runs a subcommand and turns its refusals into messages and exit codes. */
async function guarded(io: CommandIo, usage: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run()
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`rest-auth: ${error.message}`)
      io.err(usage)
      return 2
    }
    if (error instanceof PasswordInputError) {
      io.err(`rest-auth: ${error.message}`)
      return 2
    }
    if (error instanceof RestAuthError && error.status < 500) {
      io.err(`rest-auth: ${error.code}: ${error.message}`)
      return 1
    }
    throw error
  }
}

function one(args: readonly string[], what: string): string {
  const [value, ...rest] = args
  if (value === undefined || rest.length > 0) throw new UsageError(`expected exactly one ${what}`)
  return value
}

async function userArg(accounts: AccountService, arg: string): Promise<User> {
  const user = await accounts.find(arg)
  if (user === undefined) throw new RestAuthError('user_not_found', `no user "${arg}"`)
  return user
}

function statusOf(raw: string | undefined): UserStatus | undefined {
  if (raw === undefined) return undefined
  const status = USER_STATUSES.find((s) => s === raw)
  if (status === undefined) throw new UsageError(`--status must be one of ${USER_STATUSES.join(', ')}`)
  return status
}

function limitOf(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 10_000) throw new UsageError('--limit must be between 1 and 10000')
  return Number(raw)
}

const iso = (ms: number) => new Date(ms).toISOString()

function showUser(io: CommandIo, user: User, json: boolean): void {
  if (json) {
    io.out(JSON.stringify(accountView(user)))
    return
  }
  io.out(table(['ID', 'USERNAME', 'STATUS', 'ROLES', 'CREATED'], [[String(user.id), user.username, user.status, user.roles.join(' '), iso(user.createdAt)]]))
}

export async function userCommand(args: readonly string[], overrides: Record<string, string>, options: Options, io: CommandIo): Promise<number> {
  const [sub, ...rest] = args
  return guarded(io, USER_USAGE, () =>
    withAccounts(overrides, async ({ store, accounts }) => {
      switch (sub) {
        case 'create': {
          const username = one(rest, 'USERNAME')
          const status = statusOf(options.status)
          if (status === 'disabled') throw new UsageError('a user is created active or pending')
          const roles = [...options.role, ...(options.admin ? [ADMIN_ROLE] : [])]
          const { password, generated } = await obtainPassword(options)
          const user = await accounts.create(CLI_ACTOR, { username, password, roles, ...(status === undefined ? {} : { status }) })
          if (options.json) io.out(JSON.stringify({ ...accountView(user), ...(generated ? { password } : {}) }))
          else {
            io.out(`created user ${user.id} ${user.username} (${user.status}${user.roles.length > 0 ? `, roles: ${user.roles.join(' ')}` : ''})`)
            if (generated) io.out(`password: ${password}\nThe password is shown once: keep it now.`)
          }
          return 0
        }
        case 'list': {
          if (rest.length > 0) throw new UsageError('user list takes no arguments')
          const status = statusOf(options.status)
          const after = options.after === undefined ? undefined : Number(options.after)
          if (after !== undefined && !Number.isSafeInteger(after)) throw new UsageError('--after must be a user id')
          const users = await store.listUsers({
            limit: limitOf(options.limit, 1000),
            ...(status === undefined ? {} : { status }),
            ...(options.role[0] === undefined ? {} : { role: options.role[0] }),
            ...(options.search === undefined ? {} : { search: canonicalizeUsername(options.search) }),
            ...(after === undefined ? {} : { afterId: after }),
          })
          if (options.json) io.out(JSON.stringify({ users: users.map(accountView) }))
          else io.out(table(['ID', 'USERNAME', 'STATUS', 'ROLES', 'CREATED'], users.map((u) => [String(u.id), u.username, u.status, u.roles.join(' '), iso(u.createdAt)])))
          return 0
        }
        case 'show':
          showUser(io, await userArg(accounts, one(rest, 'USER')), options.json)
          return 0
        case 'approve':
        case 'disable':
        case 'enable': {
          const user = await userArg(accounts, one(rest, 'USER'))
          const updated = await accounts[sub](CLI_ACTOR, user.id)
          if (options.json) io.out(JSON.stringify(accountView(updated)))
          else io.out(`${updated.username}: ${updated.status}${sub === 'disable' ? ' (every token revoked)' : ''}`)
          return 0
        }
        case 'delete': {
          const user = await userArg(accounts, one(rest, 'USER'))
          await accounts.delete(CLI_ACTOR, user.id)
          io.out(options.json ? JSON.stringify({ deleted: user.id }) : `deleted user ${user.id} ${user.username}`)
          return 0
        }
        case 'revoke-tokens': {
          const user = await userArg(accounts, one(rest, 'USER'))
          await accounts.revokeTokens(CLI_ACTOR, user.id)
          io.out(options.json ? JSON.stringify({ revoked: user.id }) : `revoked every token of ${user.username}`)
          return 0
        }
        case 'set-role': {
          const [target, ...roles] = rest
          if (target === undefined) throw new UsageError('expected USER and the roles')
          if (roles.length === 0 && !options.none) throw new UsageError('name the roles, or --none to remove every role')
          if (roles.length > 0 && options.none) throw new UsageError('either roles or --none')
          const user = await userArg(accounts, target)
          const updated = await accounts.setRoles(CLI_ACTOR, user.id, roles)
          if (options.json) io.out(JSON.stringify(accountView(updated)))
          else io.out(`${updated.username}: roles ${updated.roles.length === 0 ? '(none)' : updated.roles.join(' ')}`)
          return 0
        }
        case 'set-password': {
          const user = await userArg(accounts, one(rest, 'USER'))
          const { password, generated } = await obtainPassword(options)
          await accounts.setPassword(CLI_ACTOR, user.id, password)
          if (options.json) io.out(JSON.stringify({ id: user.id, ...(generated ? { password } : {}) }))
          else {
            io.out(`${user.username}: password set, every token revoked`)
            if (generated) io.out(`password: ${password}\nThe password is shown once: keep it now.`)
          }
          return 0
        }
        default:
          throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`)
      }
    }),
  )
}

export async function inviteCommand(args: readonly string[], overrides: Record<string, string>, options: Options, io: CommandIo): Promise<number> {
  const [sub, ...rest] = args
  return guarded(io, INVITE_USAGE, () =>
    withAccounts(overrides, async ({ accounts }) => {
      const now = Date.now()
      switch (sub) {
        case 'create': {
          if (rest.length > 0) throw new UsageError('invite create takes no arguments')
          let expiresIn: number | undefined
          if (options.expiresIn !== undefined) {
            if (!/^\d+$/.test(options.expiresIn)) throw new UsageError('--expires-in must be a whole number of seconds')
            expiresIn = Number(options.expiresIn)
          }
          const { invite, code } = await accounts.createInvite(CLI_ACTOR, {
            ...(expiresIn === undefined ? {} : { expiresIn }),
            ...(options.username === undefined ? {} : { username: options.username }),
            roles: options.role,
          })
          if (options.json) io.out(JSON.stringify({ ...inviteView(invite, now), code }))
          else {
            io.out(`invite:  ${invite.id}`)
            io.out(`code:    ${code}`)
            io.out(`expires: ${iso(invite.expiresAt)}${invite.username === null ? '' : `  username: ${invite.username}`}${invite.roles.length > 0 ? `  roles: ${invite.roles.join(' ')}` : ''}`)
            io.out('The code is shown once and stored only as a hash: send it to the person now.')
          }
          return 0
        }
        case 'list': {
          if (rest.length > 0) throw new UsageError('invite list takes no arguments')
          const invites = await accounts.listInvites(options.all)
          if (options.json) io.out(JSON.stringify({ invites: invites.map((i) => inviteView(i, now)) }))
          else {
            io.out(
              table(
                ['ID', 'STATE', 'USERNAME', 'ROLES', 'EXPIRES', 'CREATED BY'],
                invites.map((i) => {
                  const v = inviteView(i, now)
                  return [v.id, v.state, v.username ?? '-', v.roles.join(' '), v.expires_at, v.created_by]
                }),
              ),
            )
          }
          return 0
        }
        case 'revoke': {
          const id = one(rest, 'invite ID')
          await accounts.revokeInvite(CLI_ACTOR, id)
          io.out(options.json ? JSON.stringify({ revoked: id }) : `revoked invite ${id}`)
          return 0
        }
        default:
          throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`)
      }
    }),
  )
}

function timeArg(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined
  const ms = Date.parse(raw)
  if (Number.isNaN(ms)) throw new UsageError(`${flag} must be a date-time such as 2026-12-01T00:00:00Z`)
  return ms
}

export async function auditCommand(args: readonly string[], overrides: Record<string, string>, options: Options, io: CommandIo): Promise<number> {
  const usage = 'usage: rest-auth audit [--event E] [--outcome success|failure] [--user USER] [--since T] [--until T] [--limit N]'
  return guarded(io, usage, () =>
    withAccounts(overrides, async ({ store, accounts }) => {
      if (args.length > 0) throw new UsageError('audit takes no arguments')
      if (options.outcome !== undefined && options.outcome !== 'success' && options.outcome !== 'failure') {
        throw new UsageError('--outcome must be success or failure')
      }
      const since = timeArg(options.since, '--since')
      const until = timeArg(options.until, '--until')
      const user = options.user === undefined ? undefined : await userArg(accounts, options.user)
      const entries = await store.queryAudit({
        limit: limitOf(options.limit, 100),
        ...(options.event === undefined ? {} : { event: options.event }),
        ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
        ...(user === undefined ? {} : { userId: user.id }),
        ...(since === undefined ? {} : { since }),
        ...(until === undefined ? {} : { until }),
      })
      if (options.json) io.out(JSON.stringify({ entries: entries.map(auditView) }))
      else {
        io.out(
          table(
            ['TIME', 'EVENT', 'OUTCOME', 'ACTOR', 'SUBJECT', 'IP', 'DETAIL'],
            entries.map((e) => [iso(e.at), e.event, e.outcome, e.actor, e.subject ?? '-', e.ip ?? '-', JSON.stringify(e.detail)]),
          ),
        )
      }
      return 0
    }),
  )
}
