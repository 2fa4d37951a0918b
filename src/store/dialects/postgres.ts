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
    const client = new pg.Client({
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
