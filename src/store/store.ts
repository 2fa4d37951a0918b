/** The storage port the application sees. One implementation (Kysely) over two dialects. */

export interface User {
  readonly id: number
  readonly username: string
  readonly usernameCanonical: string
  readonly passwordHash: string
  readonly createdAt: number
  readonly updatedAt: number
}

export interface NewUser {
  readonly username: string
  readonly usernameCanonical: string
  readonly passwordHash: string
  readonly now: number
}

export interface SigningKey {
  readonly kid: string
  readonly alg: string
  readonly publicJwk: string
  readonly privateJwk: string
  readonly createdAt: number
  readonly activatesAt: number
  readonly retiresAt: number | null
}

export interface MigrationOutcome {
  readonly migrationName: string
  readonly status: 'Success' | 'Error' | 'NotExecuted'
}

export type StoreDialect = 'sqlite' | 'postgres'

export interface Store {
  readonly dialect: StoreDialect
  /** Brings the schema to the latest version. Throws (after reporting each step) on failure. */
  migrate(): Promise<readonly MigrationOutcome[]>
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>
  /** Inserts the user unless the canonical username is taken; `undefined` means taken. Race-safe. */
  createUser(user: NewUser): Promise<User | undefined>
  findUserById(id: number): Promise<User | undefined>
  findUserByCanonicalName(canonical: string): Promise<User | undefined>
  /** Compare-and-set of the hash (rehash on login); false when the hash changed meanwhile. */
  replacePasswordHash(id: number, expected: string, next: string, now: number): Promise<boolean>
  listSigningKeys(): Promise<readonly SigningKey[]>
  insertSigningKey(key: SigningKey): Promise<void>
  close(): Promise<void>
}
