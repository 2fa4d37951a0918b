/**
 * A migrated store over a fresh database of one kind (SQLite file or PostgreSQL schema), closed
 * after the test. `openAnother` opens a second connection (pool) to the same database, as a second
 * instance of the service would.
 */
import type { TestContext } from 'node:test'
import { createStore, type KyselyStore } from '../../src/store/kysely-store.ts'
import { freshDatabaseUrl, type StoreKind } from './stores.ts'

export interface FreshStore {
  readonly store: KyselyStore
  readonly databaseUrl: string
  /** Another store on the same database (not migrated again), closed after the test. */
  openAnother(): KyselyStore
}

export async function freshStore(t: TestContext, kind: StoreKind, options: { migrate?: boolean } = {}): Promise<FreshStore | undefined> {
  const databaseUrl = await freshDatabaseUrl(t, kind)
  if (databaseUrl === undefined) return undefined
  const open = () => {
    const store = createStore(databaseUrl) as KyselyStore
    t.after(() => store.close())
    return store
  }
  const store = open()
  if (options.migrate !== false) await store.migrate()
  return { store, databaseUrl, openAnother: open }
}
