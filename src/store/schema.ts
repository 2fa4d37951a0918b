import type { Generated, Insertable, Selectable } from 'kysely'

/** Times are milliseconds since the epoch (JavaScript numbers; PostgreSQL `bigint`). */
export interface UsersTable {
  id: Generated<number>
  /** As registered (shown back to the user). */
  username: string
  /** RFC 8265 UsernameCaseMapped form; unique. */
  username_canonical: string
  /** PHC string. Never logged, never returned. */
  password_hash: string
  created_at: number
  updated_at: number
}

export interface SigningKeysTable {
  kid: string
  alg: string
  /** Public JWK as JSON text. */
  public_jwk: string
  /** Private JWK as JSON text. Key material: never logged, never returned. */
  private_jwk: string
  created_at: number
  /** Signs from this time on (published before). */
  activates_at: number
  /** Stops signing from this time on; null while current. */
  retires_at: number | null
}

export interface Database {
  users: UsersTable
  signing_keys: SigningKeysTable
}

export type UserRow = Selectable<UsersTable>
export type NewUserRow = Insertable<UsersTable>
export type SigningKeyRow = Selectable<SigningKeysTable>
