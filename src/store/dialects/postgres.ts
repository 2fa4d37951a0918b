import {
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type DatabaseMetadataOptions,
  type SchemaMetadata,
  type TableMetadata,
  Kysely,
  PostgresDialect,
  sql,
} from 'kysely'
import type pg from 'pg'
import type { Database } from '../schema.ts'

export interface PostgresTarget {
  /** The connection string without our own `schema` parameter. */
  readonly connectionString: string
  readonly schema: string | undefined
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

/** Splits our `?schema=NAME` parameter off a PostgreSQL URL. */
export function parsePostgresUrl(databaseUrl: string): PostgresTarget {
  const url = new URL(databaseUrl)
  const schema = url.searchParams.get('schema') ?? undefined
  url.searchParams.delete('schema')
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new TypeError('DATABASE_URL schema must be a lower-case SQL identifier')
  }
  return { connectionString: url.toString(), schema }
}

const INT8_OID = 20

export interface PostgresDb {
  readonly db: Kysely<Database>
  /**
   * Creates the schema when one is named (before migrations) and returns the schema our tables live in,
   * so the migrator looks for its own tables there and not in whatever schema happens to hold a table of
   * that name (Kysely's introspection spans every schema of the database).
   */
  prepare(): Promise<string | undefined>
}

/**
 * The `pg` driver, loaded on first use: a server on SQLite never pays for it (about 14 MB of RSS and
 * its start-up time). Kysely takes the pool as a factory for the same reason.
 */
let pgModule: Promise<typeof pg> | undefined
function loadPg(): Promise<typeof pg> {
  pgModule ??= import('pg').then((module) => module.default)
  return pgModule
}

export function createPostgresDb(databaseUrl: string, poolSize = 10): PostgresDb {
  const { connectionString, schema } = parsePostgresUrl(databaseUrl)
  const db = new Kysely<Database>({
    dialect: new SchemaScopedPostgresDialect({ pool: async () => createPool(await loadPg(), connectionString, schema, poolSize) }),
  })
  return {
    db,
    async prepare() {
      if (schema !== undefined) {
        await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(db)
        return schema
      }
      const { rows } = await sql<{ schema: string | null }>`SELECT current_schema() AS schema`.execute(db)
      return rows[0]?.schema ?? undefined
    },
  }
}

function createPool(driver: typeof pg, connectionString: string, schema: string | undefined, poolSize: number): pg.Pool {
  const pool = new driver.Pool({
    connectionString,
    max: poolSize,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // statement_timeout keeps one stuck query from holding a pooled connection for ever
    options: `-c statement_timeout=15000${schema === undefined ? '' : ` -c search_path=${schema}`}`,
    types: {
      // bigint columns hold millisecond times and ids, all far below 2^53
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (value: string) => Number(value) : driver.types.getTypeParser(oid, format as 'text')) as typeof driver.types.getTypeParser,
    },
  })
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {})
  // Nor may a checked-out client's: pg-pool drops its own listener while a client is lent out, and a
  // connection cut mid-query would emit 'error' with no listener and kill the process. The query
  // itself still fails (→ 503 database_unavailable) and pg-pool discards the broken client.
  pool.on('connect', (client) => {
    client.on('error', () => {})
  })
  return pool
}

/**
 * Kysely's PostgreSQL introspector (which its Migrator asks whether the migration tables exist) reads
 * the columns of every table in every schema, calling pg_get_serial_sequence on each. When another
 * application or another instance's tenant drops a schema meanwhile, that query fails ("relation ...
 * does not exist", "cache lookup failed"), and so did our migration, at random. Our store only ever
 * needs its own schema, so this introspector reads `current_schema()` alone (the search_path names it).
 */
class SchemaScopedPostgresDialect extends PostgresDialect {
  // any: Kysely's Dialect interface hands the introspector an untyped Kysely<any>
  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SchemaScopedIntrospector(db)
  }
}

interface ColumnRow {
  readonly table: string
  readonly table_type: string
  readonly schema: string
  readonly column: string
  readonly not_null: boolean
  readonly has_default: boolean
  readonly type: string
  readonly type_schema: string
  readonly column_description: string | null
  readonly auto_incrementing: string | null
}

const KYSELY_TABLES = new Set(['kysely_migration', 'kysely_migration_lock'])

export class SchemaScopedIntrospector implements DatabaseIntrospector {
  // any: see SchemaScopedPostgresDialect
  readonly #db: Kysely<any>

  // any: see SchemaScopedPostgresDialect
  constructor(db: Kysely<any>) {
    this.#db = db
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`SELECT nspname AS name FROM pg_catalog.pg_namespace`.execute(this.#db)
    return rows.map((row) => ({ name: row.name }))
  }

  async getTables(options: DatabaseMetadataOptions = { withInternalKyselyTables: false }): Promise<TableMetadata[]> {
    const { rows } = await sql<ColumnRow>`
      SELECT c.relname AS table, c.relkind AS table_type, ns.nspname AS schema, a.attname AS column,
             a.attnotnull AS not_null, a.atthasdef AS has_default, typ.typname AS type, tns.nspname AS type_schema,
             col_description(a.attrelid, a.attnum) AS column_description,
             pg_get_serial_sequence(quote_ident(ns.nspname) || '.' || quote_ident(c.relname), a.attname) AS auto_incrementing
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_class c ON a.attrelid = c.oid
      JOIN pg_catalog.pg_namespace ns ON c.relnamespace = ns.oid
      JOIN pg_catalog.pg_type typ ON a.atttypid = typ.oid
      JOIN pg_catalog.pg_namespace tns ON typ.typnamespace = tns.oid
      WHERE ns.nspname = current_schema()
        AND c.relkind IN ('r', 'v', 'p')
        AND a.attnum >= 0 AND NOT a.attisdropped
      ORDER BY c.relname, a.attnum`.execute(this.#db)
    const tables = new Map<string, { name: string; isView: boolean; schema: string; columns: TableMetadata['columns'][number][] }>()
    for (const row of rows) {
      if (!options.withInternalKyselyTables && KYSELY_TABLES.has(row.table)) continue
      let table = tables.get(row.table)
      if (table === undefined) {
        table = { name: row.table, isView: row.table_type === 'v', schema: row.schema, columns: [] }
        tables.set(row.table, table)
      }
      table.columns.push({
        name: row.column,
        dataType: row.type,
        dataTypeSchema: row.type_schema,
        isAutoIncrementing: row.auto_incrementing !== null,
        isNullable: !row.not_null,
        hasDefaultValue: row.has_default,
        ...(row.column_description === null ? {} : { comment: row.column_description }),
      })
    }
    return [...tables.values()]
  }

  async getMetadata(options?: DatabaseMetadataOptions): Promise<DatabaseMetadata> {
    return { tables: await this.getTables(options) }
  }
}

/** The channel every write to the change log notifies, with the schema's name as the payload. */
export const CHANGE_CHANNEL = 'rest_auth_changes'
/** Shown in pg_stat_activity for the listening connection (PostgreSQL keeps 63 bytes of it). */
export function listenerApplicationName(schema: string | undefined): string {
  return `rest-auth listener${schema === undefined ? '' : ` ${schema}`}`.slice(0, 63)
}
const RELISTEN_DELAY_MS = 1_000

/** Tells a ChangeFeed when to read the change log now, and whether it can count on being told. */
export interface ChangeWatch {
  close(): Promise<void>
}

/**
 * PostgreSQL LISTEN on a connection of its own (outside the pool): `onWake` is called for every
 * commit that wrote a change-log row of this schema, so instances read the log within milliseconds
 * instead of at their next poll. A lost connection is reported (`onState(false)`) and opened again
 * every second; on every (re)connect `onWake` runs once, to read what was missed meanwhile. Polling
 * goes on regardless: this only makes changes arrive sooner.
 */
export function watchChanges(
  databaseUrl: string,
  onWake: () => void,
  onState: (listening: boolean, error?: unknown) => void = () => {},
): ChangeWatch {
  const { connectionString, schema } = parsePostgresUrl(databaseUrl)
  let current: pg.Client | undefined
  let closed = false
  let retry: NodeJS.Timeout | undefined

  const lost = (client: pg.Client, error?: unknown) => {
    if (current !== client) return
    current = undefined
    client.end().catch(() => {})
    if (closed) return
    onState(false, error)
    retry = setTimeout(connect, RELISTEN_DELAY_MS)
    retry.unref()
  }

  const connect = () => {
    if (closed) return
    loadPg().then(listen, (error: unknown) => {
      onState(false, error)
      retry = setTimeout(connect, RELISTEN_DELAY_MS)
      retry.unref()
    })
  }

  const listen = (driver: typeof pg) => {
    if (closed) return
    const client = new driver.Client({
      connectionString,
      connectionTimeoutMillis: 5_000,
      application_name: listenerApplicationName(schema),
      ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
    })
    current = client
    client.on('error', (error) => lost(client, error))
    client.on('end', () => lost(client))
    let channelSchema: string | undefined
    client.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL && (channelSchema === undefined || n.payload === channelSchema)) onWake()
    })
    client
      .connect()
      .then(() => client.query<{ schema: string | null }>('SELECT current_schema() AS schema'))
      .then(async (result) => {
        channelSchema = result.rows[0]?.schema ?? undefined
        await client.query(`LISTEN ${CHANGE_CHANNEL}`)
        if (current !== client) return
        onState(true)
        onWake()
      })
      .catch((error: unknown) => lost(client, error))
  }

  connect()
  return {
    async close() {
      closed = true
      if (retry !== undefined) clearTimeout(retry)
      const client = current
      current = undefined
      await client?.end().catch(() => {})
    },
  }
}
