import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
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

export function createPostgresDb(databaseUrl: string, poolSize = 10): PostgresDb {
  const { connectionString, schema } = parsePostgresUrl(databaseUrl)
  const pool = new pg.Pool({
    connectionString,
    max: poolSize,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // statement_timeout keeps one stuck query from holding a pooled connection for ever
    options: `-c statement_timeout=15000${schema === undefined ? '' : ` -c search_path=${schema}`}`,
    types: {
      // bigint columns hold millisecond times and ids, all far below 2^53
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
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
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
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
