import { type Kysely, Migrator, sql, type Transaction } from 'kysely'
import { createPostgresDb } from './dialects/postgres.ts'
import { createSqliteDb } from './dialects/sqlite.ts'
import { migrations } from './migrations/index.ts'
import type { Database, SigningKeyRow, UserRow } from './schema.ts'
import type { MigrationOutcome, NewUser, SigningKey, Store, StoreDialect, User } from './store.ts'

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

/** Largest id SQLite and PostgreSQL both accept for our integer ids; anything above is "not found". */
const MAX_ID = Number.MAX_SAFE_INTEGER

export class KyselyStore implements Store {
  readonly db: Kysely<Database>
  readonly dialect: StoreDialect
  readonly #prepare: () => Promise<void>

  constructor(db: Kysely<Database>, dialect: StoreDialect, prepare: () => Promise<void> = async () => {}) {
    this.db = db
    this.dialect = dialect
    this.#prepare = prepare
  }

  async migrate(): Promise<readonly MigrationOutcome[]> {
    await this.#prepare()
    const migrator = new Migrator({ db: this.db, provider: { getMigrations: async () => migrations } })
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
    const row = await findUserByCanonicalName(this.db, canonical)
    return row === undefined ? undefined : toUser(row)
  }

  async replacePasswordHash(id: number, expected: string, next: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('users')
      .set({ password_hash: next, updated_at: now })
      .where('id', '=', id)
      .where('password_hash', '=', expected)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  async listSigningKeys(): Promise<readonly SigningKey[]> {
    const rows = await this.db.selectFrom('signing_keys').selectAll().orderBy('activates_at').orderBy('kid').execute()
    return rows.map(toSigningKey)
  }

  async insertSigningKey(key: SigningKey): Promise<void> {
    await this.db
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

  async close(): Promise<void> {
    await this.db.destroy()
  }
}

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
    return new KyselyStore(pg.db, 'postgres', pg.prepare)
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

/** True for errors that mean "the database is unreachable or busy" (503), not a bug (500). */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('SQLITE_IOERR'))) return true
    if (/Connection terminated|timeout exceeded when trying to connect|Cannot use a pool after calling end/i.test(e.message)) return true
  }
  return false
}
