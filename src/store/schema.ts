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
  /** Seconds; access tokens with an earlier iat are revoked. */
  tokens_valid_after: Generated<number>
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

export interface RevokedTokensTable {
  jti: string
  subject: string
  expires_at: number
  revoked_at: number
}

export interface ServerSecretsTable {
  name: string
  /** Key material: never logged, never returned. */
  value: string
  created_at: number
}

export interface OAuthClientsTable {
  client_id: string
  name: string
  secret_hash: string
  scopes: string
  grant_types: string
  created_at: number
}

export interface RefreshFamiliesTable {
  id: string
  user_id: number
  client_id: string | null
  scope: string | null
  auth_time: number
  created_at: number
  expires_at: number
  revoked_at: number | null
  revoked_reason: string | null
}

export interface RefreshTokensTable {
  token_hash: string
  family_id: string
  created_at: number
  idle_expires_at: number
  rotated_at: number | null
}

export interface Database {
  users: UsersTable
  signing_keys: SigningKeysTable
  revoked_tokens: RevokedTokensTable
  server_secrets: ServerSecretsTable
  oauth_clients: OAuthClientsTable
  refresh_families: RefreshFamiliesTable
  refresh_tokens: RefreshTokensTable
}

export type UserRow = Selectable<UsersTable>
export type NewUserRow = Insertable<UsersTable>
export type SigningKeyRow = Selectable<SigningKeysTable>
export type OAuthClientRow = Selectable<OAuthClientsTable>
export type RefreshFamilyRow = Selectable<RefreshFamiliesTable>
