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
  /** 'active' | 'pending' | 'disabled' */
  status: Generated<string>
  /** Space-separated role names. */
  roles: Generated<string>
}

export interface InvitesTable {
  id: string
  /** SHA-256 (hex) of the single-use code. Never the code. */
  code_hash: string
  username: string | null
  username_canonical: string | null
  roles: Generated<string>
  created_by: string
  created_at: number
  expires_at: number
  used_at: number | null
  used_by: number | null
  revoked_at: number | null
}

export interface AuditLogTable {
  id: Generated<number>
  at: number
  event: string
  outcome: string
  actor_id: number | null
  actor: string
  subject_id: number | null
  subject: string | null
  ip: string | null
  /** JSON object; never a secret. */
  detail: Generated<string>
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
  invites: InvitesTable
  audit_log: AuditLogTable
  state_changes: StateChangesTable
}

export interface StateChangesTable {
  id: Generated<number>
  at: number
  kind: string
  ref: string
}

export type UserRow = Selectable<UsersTable>
export type NewUserRow = Insertable<UsersTable>
export type SigningKeyRow = Selectable<SigningKeysTable>
export type OAuthClientRow = Selectable<OAuthClientsTable>
export type RefreshFamilyRow = Selectable<RefreshFamiliesTable>
export type InviteRow = Selectable<InvitesTable>
export type AuditRow = Selectable<AuditLogTable>
