import { type Kysely, Migrator, PostgresAdapter, sql, type Transaction } from 'kysely'
import { CHANGE_CHANNEL, createPostgresDb, watchChanges } from './dialects/postgres.ts'
import { createSqliteDb } from './dialects/sqlite.ts'
import { migrations } from './migrations/index.ts'
import type { AuditRow, Database, InviteRow, OAuthClientRow, RefreshFamilyRow, SigningKeyRow, UserRow } from './schema.ts'
import type {
  AuditEntry,
  AuditQuery,
  Invite,
  MigrationOutcome,
  NewAuditEntry,
  NewInvite,
  NewRefreshFamily,
  NewUser,
  OAuthClient,
  RefreshFamily,
  RefreshLookup,
  RefreshOutcome,
  RefreshRotation,
  RevocationState,
  SigningKey,
  Store,
  StoreDialect,
  User,
  UserChange,
  UserQuery,
  UserStatus,
  StateChange,
  StateChangeKind,
  HolderGuard,
} from './store.ts'
import { LastHolderError } from './store.ts'

type Db = Kysely<Database> | Transaction<Database>

// ---- repository functions (db or trx first) ----

export async function insertUser(db: Db, user: NewUser): Promise<UserRow | undefined> {
  return db
    .insertInto('users')
    .values({
      username: user.username,
      username_canonical: user.usernameCanonical,
      password_hash: user.passwordHash,
      created_at: user.now,
      updated_at: user.now,
      status: user.status ?? 'active',
      roles: joinRoles(user.roles ?? []),
    })
    .onConflict((oc) => oc.column('username_canonical').doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function findUserById(db: Db, id: number): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findUserByCanonicalName(db: Db, canonical: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('username_canonical', '=', canonical).executeTakeFirst()
}

function toUser(row: UserRow): User {
  return {
    id: Number(row.id),
    username: row.username,
    usernameCanonical: row.username_canonical,
    passwordHash: row.password_hash,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    tokensValidAfter: Number(row.tokens_valid_after),
    status: row.status as UserStatus,
    roles: words(row.roles),
  }
}

/** Roles are kept sorted and unique, space-separated (role names hold no spaces). */
function joinRoles(roles: readonly string[]): string {
  return [...new Set(roles)].sort().join(' ')
}

/** LIKE pattern that matches `text` literally (with `ESCAPE '\\'`). */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`)
}

function toInvite(row: InviteRow): Invite {
  return {
    id: row.id,
    username: row.username,
    usernameCanonical: row.username_canonical,
    roles: words(row.roles),
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    usedAt: row.used_at === null ? null : Number(row.used_at),
    usedBy: row.used_by === null ? null : Number(row.used_by),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  }
}

function toAuditEntry(row: AuditRow): AuditEntry {
  let detail: AuditEntry['detail'] = {}
  try {
    const parsed: unknown = JSON.parse(row.detail)
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) detail = parsed as AuditEntry['detail']
  } catch {
    // a row written by hand with bad JSON: shown without detail
  }
  return {
    id: Number(row.id),
    at: Number(row.at),
    event: row.event,
    outcome: row.outcome === 'failure' ? 'failure' : 'success',
    actorId: row.actor_id === null ? null : Number(row.actor_id),
    actor: row.actor,
    subjectId: row.subject_id === null ? null : Number(row.subject_id),
    subject: row.subject,
    ip: row.ip,
    detail,
  }
}

/** Key of the transaction-scoped advisory lock that orders change-log rows on PostgreSQL. */
const CHANGE_LOG_LOCK = 73_052_026

/**
 * Appends to the change log, in the caller's transaction (so the change and its record commit
 * together). Must be the transaction's last write. On PostgreSQL an identity value is taken at insert,
 * not at commit, so without care a reader could see id N+1 committed before N and skip N for good;
 * the advisory lock (held until commit) makes ids commit in order. SQLite has one writer anyway.
 */
async function logChange(db: Db, kind: StateChangeKind, ref: string | number, now: number = Date.now()): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`SELECT pg_advisory_xact_lock(${CHANGE_LOG_LOCK})`.execute(db)
    await db.insertInto('state_changes').values({ at: now, kind, ref: String(ref) }).execute()
    // delivered at commit (never for a rolled-back change) to every instance's ChangeFeed listener
    await sql`SELECT pg_notify(${CHANGE_CHANNEL}, current_schema())`.execute(db)
    return
  }
  await db.insertInto('state_changes').values({ at: now, kind, ref: String(ref) }).execute()
}

/** How long change-log rows are kept: instances read them within a second; an hour is plenty. */
const CHANGE_LOG_RETENTION_MS = 3_600_000

/** Thrown inside a transaction to roll it back with a known outcome. */
class Rollback extends Error {
  readonly outcome: 'invite_unusable' | 'taken'
  constructor(outcome: 'invite_unusable' | 'taken') {
    super(outcome)
    this.outcome = outcome
  }
}

function words(text: string): string[] {
  return text.split(' ').filter((w) => w !== '')
}

function toClient(row: OAuthClientRow): OAuthClient {
  return {
    clientId: row.client_id,
    name: row.name,
    secretHash: row.secret_hash,
    scopes: words(row.scopes),
    grantTypes: words(row.grant_types),
    createdAt: Number(row.created_at),
  }
}

function toFamily(row: RefreshFamilyRow): RefreshFamily {
  return {
    id: row.id,
    userId: Number(row.user_id),
    clientId: row.client_id,
    scope: row.scope,
    authTime: Number(row.auth_time),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  }
}

function toSigningKey(row: SigningKeyRow): SigningKey {
  return {
    kid: row.kid,
    alg: row.alg,
    publicJwk: row.public_jwk,
    privateJwk: row.private_jwk,
    createdAt: Number(row.created_at),
    activatesAt: Number(row.activates_at),
    retiresAt: row.retires_at === null ? null : Number(row.retires_at),
  }
}

/** First key of the advisory lock guarded user writes take (PostgreSQL); the second is the schema's hash. */
const GUARD_LOCK_CLASS = 0x72612d67 // 'ra-g'

/** Largest id SQLite and PostgreSQL both accept for our integer ids; anything above is "not found". */
const MAX_ID = Number.MAX_SAFE_INTEGER

export class KyselyStore implements Store {
  readonly db: Kysely<Database>
  readonly dialect: StoreDialect
  /** Runs before migrations; returns the schema that holds the migration tables, if the dialect has schemas. */
  readonly #prepare: () => Promise<string | undefined>

  readonly watchChanges: Store['watchChanges']

  constructor(
    db: Kysely<Database>,
    dialect: StoreDialect,
    prepare: () => Promise<string | undefined> = async () => undefined,
    watch?: Store['watchChanges'],
  ) {
    this.db = db
    this.dialect = dialect
    this.#prepare = prepare
    this.watchChanges = watch
  }

  async migrate(): Promise<readonly MigrationOutcome[]> {
    const migrationTableSchema = await this.#prepare()
    const migrator = new Migrator({
      db: this.db,
      provider: { getMigrations: async () => migrations },
      ...(migrationTableSchema === undefined ? {} : { migrationTableSchema }),
    })
    // The dialect's introspector reads our own schema only (SchemaScopedIntrospector), so other schemas
    // dropped meanwhile by other applications cannot fail this.
    const { error, results } = await migrator.migrateToLatest()
    const outcomes = (results ?? []).map((r) => ({ migrationName: r.migrationName, status: r.status }))
    if (error !== undefined) {
      throw new MigrationError(outcomes, error)
    }
    return outcomes
  }

  async ping(): Promise<void> {
    await sql`SELECT 1`.execute(this.db)
  }

  async createUser(user: NewUser): Promise<User | undefined> {
    const row = await insertUser(this.db, user)
    return row === undefined ? undefined : toUser(row)
  }

  async findUserById(id: number): Promise<User | undefined> {
    if (!Number.isSafeInteger(id) || id < 1 || id > MAX_ID) return undefined
    const row = await findUserById(this.db, id)
    return row === undefined ? undefined : toUser(row)
  }

  async findUserByCanonicalName(canonical: string): Promise<User | undefined> {
    // No username holds NUL (registration refuses controls) and PostgreSQL text cannot even be compared
    // with one (error 22021): a NUL from Basic credentials is simply no user, not a 500.
    if (canonical.includes('\u0000')) return undefined
    const row = await findUserByCanonicalName(this.db, canonical)
    return row === undefined ? undefined : toUser(row)
  }

  async listUsers(query: UserQuery): Promise<readonly User[]> {
    // No stored name or role holds NUL (and PostgreSQL text cannot even be compared with one): nothing matches.
    if (query.search?.includes('\u0000') === true || query.role?.includes('\u0000') === true) return []
    let q = this.db.selectFrom('users').selectAll().orderBy('id').limit(query.limit)
    if (query.afterId !== undefined) q = q.where('id', '>', query.afterId)
    if (query.status !== undefined) q = q.where('status', '=', query.status)
    if (query.search !== undefined && query.search !== '') {
      q = q.where(sql<boolean>`username_canonical LIKE ${`%${likeLiteral(query.search)}%`} ESCAPE '\\'`)
    }
    if (query.role !== undefined) q = q.where(this.#holdsRole(query.role))
    const rows = await q.execute()
    return rows.map(toUser)
  }

  async updateUser(id: number, change: UserChange, now: number, guard: HolderGuard = {}): Promise<User | undefined> {
    if (!Number.isSafeInteger(id) || id < 1 || id > MAX_ID) return undefined
    return this.db.transaction().execute(async (trx) => {
      await this.#serializeGuarded(trx, guard)
      const set: { updated_at: number; status?: string; roles?: string; password_hash?: string } = { updated_at: now }
      if (change.status !== undefined) set.status = change.status
      if (change.roles !== undefined) set.roles = joinRoles(change.roles)
      if (change.passwordHash !== undefined) set.password_hash = change.passwordHash
      const updated = await trx.updateTable('users').set(set).where('id', '=', id).executeTakeFirst()
      if (Number(updated.numUpdatedRows) === 0) return undefined
      if (change.revokeTokensBefore !== undefined) {
        await trx
          .updateTable('users')
          .set({ tokens_valid_after: change.revokeTokensBefore })
          .where('id', '=', id)
          .where('tokens_valid_after', '<', change.revokeTokensBefore)
          .execute()
        await trx
          .updateTable('refresh_families')
          .set({ revoked_at: now, revoked_reason: 'user_revoked_all' })
          .where('user_id', '=', id)
          .where('revoked_at', 'is', null)
          .execute()
      }
      await this.#checkGuard(trx, guard)
      await logChange(trx, 'user', id, now)
      const row = await findUserById(trx, id)
      return row === undefined ? undefined : toUser(row)
    })
  }

  async deleteUser(id: number, guard: HolderGuard = {}): Promise<boolean> {
    if (!Number.isSafeInteger(id) || id < 1 || id > MAX_ID) return false
    // refresh families and their tokens go with the user (ON DELETE CASCADE)
    return this.db.transaction().execute(async (trx) => {
      await this.#serializeGuarded(trx, guard)
      const result = await trx.deleteFrom('users').where('id', '=', id).executeTakeFirst()
      const deleted = Number(result.numDeletedRows) > 0
      if (deleted) {
        await this.#checkGuard(trx, guard)
        await logChange(trx, 'user', id)
      }
      return deleted
    })
  }

  /**
   * Guarded writes take turns. PostgreSQL: a transaction-scoped advisory lock per schema, taken before
   * anything is read, so the second of two concurrent writes counts after the first has committed.
   * SQLite: the transaction's first statement is the write itself, which takes the database's write
   * lock (other processes wait in busy_timeout), and this process's single connection runs one
   * transaction at a time.
   */
  async #serializeGuarded(trx: Db, guard: HolderGuard): Promise<void> {
    if (guard.keepActiveWithRole === undefined || this.dialect !== 'postgres') return
    await sql`SELECT pg_advisory_xact_lock(${GUARD_LOCK_CLASS}, hashtext(current_schema()))`.execute(trx)
  }

  /** After the write, inside its transaction: no active holder left → roll everything back. */
  async #checkGuard(trx: Db, guard: HolderGuard): Promise<void> {
    const role = guard.keepActiveWithRole
    if (role === undefined) return
    if ((await this.#countActiveWithRole(trx, role)) < 1) throw new LastHolderError(role)
  }

  /**
   * `roles` (space-separated) holds exactly `role`: a case-sensitive substring test on both dialects
   * (SQLite's LIKE folds ASCII case, so LIKE would make 'ADMIN' match 'admin' there only).
   */
  #holdsRole(role: string) {
    const needle = ` ${role} `
    return this.dialect === 'sqlite'
      ? sql<boolean>`instr(' ' || roles || ' ', ${needle}) > 0`
      : sql<boolean>`strpos(' ' || roles || ' ', ${needle}) > 0`
  }

  async countActiveWithRole(role: string): Promise<number> {
    return this.#countActiveWithRole(this.db, role)
  }

  async #countActiveWithRole(db: Db, role: string): Promise<number> {
    if (role.includes('\u0000')) return 0
    const row = await db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
      .where('status', '=', 'active')
      .where(this.#holdsRole(role))
      .executeTakeFirstOrThrow()
    return Number(row.n)
  }

  async createUserWithInvite(user: NewUser, inviteCodeHash: string): Promise<User | 'invite_unusable' | 'taken'> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        // Claim the invite first: on PostgreSQL the row lock makes a concurrent claim wait, then see it used.
        const claimed = await trx
          .updateTable('invites')
          .set({ used_at: user.now })
          .where('code_hash', '=', inviteCodeHash)
          .where('used_at', 'is', null)
          .where('revoked_at', 'is', null)
          .where('expires_at', '>', user.now)
          .executeTakeFirst()
        if (Number(claimed.numUpdatedRows) !== 1) throw new Rollback('invite_unusable')
        const row = await insertUser(trx, user)
        if (row === undefined) throw new Rollback('taken')
        await trx.updateTable('invites').set({ used_by: Number(row.id) }).where('code_hash', '=', inviteCodeHash).execute()
        return toUser(row)
      })
    } catch (error) {
      if (error instanceof Rollback) return error.outcome
      throw error
    }
  }

  // ---- invites ----

  async createInvite(invite: NewInvite): Promise<void> {
    await this.db
      .insertInto('invites')
      .values({
        id: invite.id,
        code_hash: invite.codeHash,
        username: invite.username,
        username_canonical: invite.usernameCanonical,
        roles: joinRoles(invite.roles),
        created_by: invite.createdBy,
        created_at: invite.createdAt,
        expires_at: invite.expiresAt,
        used_at: null,
        used_by: null,
        revoked_at: null,
      })
      .execute()
  }

  async findInviteByCodeHash(codeHash: string): Promise<Invite | undefined> {
    const row = await this.db.selectFrom('invites').selectAll().where('code_hash', '=', codeHash).executeTakeFirst()
    return row === undefined ? undefined : toInvite(row)
  }

  async listInvites(includeSpent: boolean, now: number): Promise<readonly Invite[]> {
    let q = this.db.selectFrom('invites').selectAll().orderBy('created_at', 'desc').orderBy('id')
    if (!includeSpent) q = q.where('used_at', 'is', null).where('revoked_at', 'is', null).where('expires_at', '>', now)
    const rows = await q.execute()
    return rows.map(toInvite)
  }

  async revokeInvite(id: string, now: number): Promise<boolean> {
    if (id.includes('\u0000')) return false
    const result = await this.db
      .updateTable('invites')
      .set({ revoked_at: now })
      .where('id', '=', id)
      .where('used_at', 'is', null)
      .where('revoked_at', 'is', null)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  // ---- audit log ----

  async appendAudit(entries: readonly NewAuditEntry[]): Promise<void> {
    if (entries.length === 0) return
    // one multi-row INSERT: one statement, one commit
    await this.db
      .insertInto('audit_log')
      .values(
        entries.map((entry) => ({
          at: entry.at,
          event: entry.event,
          outcome: entry.outcome,
          actor_id: entry.actorId,
          actor: entry.actor,
          subject_id: entry.subjectId,
          subject: entry.subject,
          ip: entry.ip,
          detail: JSON.stringify(entry.detail),
        })),
      )
      .execute()
  }

  async queryAudit(query: AuditQuery): Promise<readonly AuditEntry[]> {
    if (query.event?.includes('\u0000') === true) return []
    let q = this.db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(query.limit)
    if (query.event !== undefined) {
      // 'user.*' matches every event of that family
      q = query.event.endsWith('.*')
        ? q.where(sql<boolean>`event LIKE ${`${likeLiteral(query.event.slice(0, -1))}%`} ESCAPE '\\'`)
        : q.where('event', '=', query.event)
    }
    if (query.outcome !== undefined) q = q.where('outcome', '=', query.outcome)
    if (query.userId !== undefined) {
      const userId = query.userId
      q = q.where((eb) => eb.or([eb('actor_id', '=', userId), eb('subject_id', '=', userId)]))
    }
    if (query.since !== undefined) q = q.where('at', '>=', query.since)
    if (query.until !== undefined) q = q.where('at', '<', query.until)
    if (query.beforeId !== undefined) q = q.where('id', '<', query.beforeId)
    const rows = await q.execute()
    return rows.map(toAuditEntry)
  }

  async replacePasswordHash(id: number, expected: string, next: string, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('users')
        .set({ password_hash: next, updated_at: now })
        .where('id', '=', id)
        .where('password_hash', '=', expected)
        .executeTakeFirst()
      const replaced = Number(result.numUpdatedRows) === 1
      if (replaced) await logChange(trx, 'user', id, now)
      return replaced
    })
  }

  async listSigningKeys(): Promise<readonly SigningKey[]> {
    const rows = await this.db.selectFrom('signing_keys').selectAll().orderBy('activates_at').orderBy('kid').execute()
    return rows.map(toSigningKey)
  }

  async insertSigningKey(key: SigningKey): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.#insertSigningKey(trx, key)
      await logChange(trx, 'keys', '', key.createdAt)
    })
  }

  async #insertSigningKey(db: Db, key: SigningKey): Promise<void> {
    await db
      .insertInto('signing_keys')
      .values({
        kid: key.kid,
        alg: key.alg,
        public_jwk: key.publicJwk,
        private_jwk: key.privateJwk,
        created_at: key.createdAt,
        activates_at: key.activatesAt,
        retires_at: key.retiresAt,
      })
      .execute()
  }

  async updateSigningKey(kid: string, times: { activatesAt?: number; retiresAt?: number | null }): Promise<void> {
    const set: { activates_at?: number; retires_at?: number | null } = {}
    if (times.activatesAt !== undefined) set.activates_at = times.activatesAt
    if (times.retiresAt !== undefined) set.retires_at = times.retiresAt
    if (Object.keys(set).length === 0) return
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable('signing_keys').set(set).where('kid', '=', kid).execute()
      await logChange(trx, 'keys', '')
    })
  }

  async deleteSigningKey(kid: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('signing_keys').where('kid', '=', kid).execute()
      await logChange(trx, 'keys', '')
    })
  }

  async serverSecret(name: string, create: () => string, now: number): Promise<string> {
    await this.db
      .insertInto('server_secrets')
      .values({ name, value: create(), created_at: now })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute()
    const row = await this.db.selectFrom('server_secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow()
    return row.value
  }

  // ---- revocation ----

  async revokeJti(jti: string, subject: string, expiresAt: number, now: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('revoked_tokens')
        .values({ jti, subject, expires_at: expiresAt, revoked_at: now })
        .onConflict((oc) => oc.column('jti').doNothing())
        .execute()
      await logChange(trx, 'jti', jti, now)
    })
  }

  async revocationState(jti: string, familyId: string | undefined): Promise<RevocationState> {
    const denied = await this.db.selectFrom('revoked_tokens').select('jti').where('jti', '=', jti).executeTakeFirst()
    let familyRevoked = false
    if (familyId !== undefined) {
      const family = await this.db
        .selectFrom('refresh_families')
        .select('revoked_at')
        .where('id', '=', familyId)
        .executeTakeFirst()
      // a family that no longer exists (user deleted, data purged) cannot vouch for its tokens
      familyRevoked = family === undefined || family.revoked_at !== null
    }
    return { jtiRevoked: denied !== undefined, familyRevoked }
  }

  async revokeAllForUser(userId: number, validAfter: number, now: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('users')
        .set({ tokens_valid_after: validAfter, updated_at: now })
        .where('id', '=', userId)
        .where('tokens_valid_after', '<', validAfter)
        .execute()
      await trx
        .updateTable('refresh_families')
        .set({ revoked_at: now, revoked_reason: 'user_revoked_all' })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .execute()
      await logChange(trx, 'user', userId, now)
    })
  }

  async purgeExpired(now: number, auditBefore?: number): Promise<number> {
    const denied = await this.db.deleteFrom('revoked_tokens').where('expires_at', '<', now).executeTakeFirst()
    // refresh_tokens rows go with their family (ON DELETE CASCADE needs foreign_keys=ON on SQLite: set)
    const families = await this.db.deleteFrom('refresh_families').where('expires_at', '<', now).executeTakeFirst()
    await this.db.deleteFrom('state_changes').where('at', '<', now - CHANGE_LOG_RETENTION_MS).execute()
    let audit = 0
    if (auditBefore !== undefined) {
      const result = await this.db.deleteFrom('audit_log').where('at', '<', auditBefore).executeTakeFirst()
      audit = Number(result.numDeletedRows)
    }
    return Number(denied.numDeletedRows) + Number(families.numDeletedRows) + audit
  }

  // ---- OAuth clients ----

  async createClient(client: OAuthClient): Promise<void> {
    await this.db
      .insertInto('oauth_clients')
      .values({
        client_id: client.clientId,
        name: client.name,
        secret_hash: client.secretHash,
        scopes: client.scopes.join(' '),
        grant_types: client.grantTypes.join(' '),
        created_at: client.createdAt,
      })
      .execute()
  }

  async findClient(clientId: string): Promise<OAuthClient | undefined> {
    // Client ids come from the wire; PostgreSQL text cannot hold NUL (error 22021): no such client.
    if (clientId.includes('\u0000')) return undefined
    const row = await this.db.selectFrom('oauth_clients').selectAll().where('client_id', '=', clientId).executeTakeFirst()
    return row === undefined ? undefined : toClient(row)
  }

  async listClients(): Promise<readonly OAuthClient[]> {
    const rows = await this.db.selectFrom('oauth_clients').selectAll().orderBy('created_at').orderBy('client_id').execute()
    return rows.map(toClient)
  }

  async deleteClient(clientId: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx.deleteFrom('oauth_clients').where('client_id', '=', clientId).executeTakeFirst()
      const deleted = Number(result.numDeletedRows) > 0
      if (deleted) await logChange(trx, 'client', clientId)
      return deleted
    })
  }

  // ---- refresh tokens ----

  async createRefreshFamily(input: NewRefreshFamily): Promise<void> {
    const f = input.family
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('refresh_families')
        .values({
          id: f.id,
          user_id: f.userId,
          client_id: f.clientId,
          scope: f.scope,
          auth_time: f.authTime,
          created_at: f.createdAt,
          expires_at: f.expiresAt,
          revoked_at: null,
          revoked_reason: null,
        })
        .execute()
      await trx
        .insertInto('refresh_tokens')
        .values({ token_hash: input.tokenHash, family_id: f.id, created_at: f.createdAt, idle_expires_at: input.idleExpiresAt, rotated_at: null })
        .execute()
    })
  }

  async findRefreshToken(tokenHash: string): Promise<RefreshLookup | undefined> {
    const row = await this.db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst()
    if (row === undefined) return undefined
    const family = await this.db.selectFrom('refresh_families').selectAll().where('id', '=', row.family_id).executeTakeFirst()
    if (family === undefined) return undefined
    return {
      family: toFamily(family),
      rotatedAt: row.rotated_at === null ? null : Number(row.rotated_at),
      idleExpiresAt: Number(row.idle_expires_at),
    }
  }

  async revokeRefreshFamily(familyId: string, reason: string, now: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('refresh_families')
        .set({ revoked_at: now, revoked_reason: reason })
        .where('id', '=', familyId)
        .where('revoked_at', 'is', null)
        .execute()
      await logChange(trx, 'family', familyId, now)
    })
  }

  // ---- change log ----

  async changesSince(afterId: number, limit: number): Promise<readonly StateChange[]> {
    const rows = await this.db
      .selectFrom('state_changes')
      .select(['id', 'kind', 'ref'])
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(limit)
      .execute()
    return rows.map((r) => ({ id: Number(r.id), kind: r.kind as StateChangeKind, ref: r.ref }))
  }

  async latestChangeId(): Promise<number> {
    const row = await this.db
      .selectFrom('state_changes')
      .select((eb) => eb.fn.max('id').as('id'))
      .executeTakeFirst()
    return row?.id == null ? 0 : Number(row.id)
  }

  /**
   * One transaction: lock the presented token's row and its family (SELECT … FOR UPDATE on
   * PostgreSQL; SQLite serialises transactions on its one connection), ask the policy, apply it.
   */
  async rotateRefreshToken(r: RefreshRotation): Promise<RefreshOutcome> {
    const lock = this.dialect === 'postgres'
    return this.db.transaction().execute(async (trx) => {
      const readToken = (hash: string) => {
        const q = trx.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', hash)
        return (lock ? q.forUpdate() : q).executeTakeFirst()
      }
      const row = await readToken(r.hash(r.presented))
      let familyRow: RefreshFamilyRow | undefined
      if (row !== undefined) {
        const q = trx.selectFrom('refresh_families').selectAll().where('id', '=', row.family_id)
        familyRow = await (lock ? q.forUpdate() : q).executeTakeFirst()
      }
      const family = familyRow === undefined ? undefined : toFamily(familyRow)
      const state = row === undefined ? undefined : { rotatedAt: row.rotated_at === null ? null : Number(row.rotated_at), idleExpiresAt: Number(row.idle_expires_at) }
      const decision = r.decide(state, family)
      const revokeFamily = async (f: RefreshFamily): Promise<RefreshOutcome> => {
        await trx
          .updateTable('refresh_families')
          .set({ revoked_at: r.now, revoked_reason: 'reuse' })
          .where('id', '=', f.id)
          .where('revoked_at', 'is', null)
          .execute()
        await logChange(trx, 'family', f.id, r.now)
        return { kind: 'refused', reason: 'reuse', family: f }
      }
      if (family === undefined || decision.kind === 'unknown') return { kind: 'refused', reason: 'unknown' }
      switch (decision.kind) {
        case 'wrong_client':
        case 'revoked':
        case 'expired':
          return { kind: 'refused', reason: decision.kind, family }
        case 'reuse':
          return revokeFamily(family)
        case 'rotate': {
          const next = r.successor(r.presented)
          await trx.updateTable('refresh_tokens').set({ rotated_at: r.now }).where('token_hash', '=', r.hash(r.presented)).execute()
          await trx
            .insertInto('refresh_tokens')
            .values({ token_hash: r.hash(next), family_id: family.id, created_at: r.now, idle_expires_at: r.now + r.idleMs, rotated_at: null })
            .execute()
          return { kind: 'issued', token: next, family, rotated: true }
        }
        case 'grace': {
          // Walk the chain of successors (derivable from the presented token) to the current one.
          let current = r.presented
          for (let step = 0; step < 16; step++) {
            const next = r.successor(current)
            const nextRow = await readToken(r.hash(next))
            if (nextRow === undefined) return revokeFamily(family) // inconsistent chain: fail closed
            if (nextRow.rotated_at === null) return { kind: 'issued', token: next, family, rotated: false }
            const d = r.decide({ rotatedAt: Number(nextRow.rotated_at), idleExpiresAt: Number(nextRow.idle_expires_at) }, family)
            if (d.kind !== 'grace') return revokeFamily(family)
            current = next
          }
          return revokeFamily(family)
        }
      }
    })
  }

  async close(): Promise<void> {
    await this.db.destroy()
  }
}

/** PostgreSQL "schema/relation does not exist" and "could not open relation": a concurrent DROP elsewhere. */
export class MigrationError extends Error {
  readonly outcomes: readonly MigrationOutcome[]

  constructor(outcomes: readonly MigrationOutcome[], cause: unknown) {
    super('database migration failed', { cause })
    this.outcomes = outcomes
    this.name = 'MigrationError'
  }
}

/** Opens the store named by `DATABASE_URL` (`sqlite:<path>` or `postgres://...`). Does not migrate. */
export function createStore(databaseUrl: string): Store {
  if (databaseUrl.startsWith('sqlite:')) return new KyselyStore(createSqliteDb(databaseUrl), 'sqlite')
  if (databaseUrl.startsWith('postgres://') || databaseUrl.startsWith('postgresql://')) {
    const pg = createPostgresDb(databaseUrl)
    return new KyselyStore(pg.db, 'postgres', pg.prepare, (onWake, onState) => watchChanges(databaseUrl, onWake, onState))
  }
  throw new TypeError('database URL must start with sqlite: or postgres://')
}

const UNAVAILABLE_CODES = new Set([
  // Node / pg connection errors
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  // PostgreSQL SQLSTATE: connection exceptions, admin shutdown, too many connections, cannot connect now
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  // SQLite
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
  'SQLITE_FULL',
  'SQLITE_READONLY',
])

/**
 * SQLite's extended result codes (SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_TIMEOUT, SQLITE_LOCKED_SHAREDCACHE,
 * SQLITE_IOERR_FSYNC, SQLITE_READONLY_DBMOVED, ...) → their primary code; other codes unchanged.
 */
function primaryCode(code: string): string {
  if (!code.startsWith('SQLITE_')) return code
  const end = code.indexOf('_', 'SQLITE_'.length)
  return end === -1 ? code : code.slice(0, end)
}

/** True for errors that mean "the database is unreachable or busy" (503), not a bug (500). */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(primaryCode(code))) return true
    if (/Connection terminated|timeout exceeded when trying to connect|Cannot use a pool after calling end|driver has already been destroyed/i.test(e.message)) return true
  }
  return false
}
