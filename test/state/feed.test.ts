/**
 * The change feed's shutdown: a server closes its feed and then its store, so no read of the change
 * log may run (or start) after stop() has resolved. A read left running used to fail against the
 * closed PostgreSQL pool and log "change log unreadable" on every shutdown that raced a wake-up.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { systemClock } from '../../src/clock.ts'
import { ChangeFeed } from '../../src/state/feed.ts'
import { createStore, type KyselyStore } from '../../src/store/kysely-store.ts'
import { freshDatabaseUrl, STORES } from '../helpers/stores.ts'

const NEVER_BY_ITSELF = 3_600_000

for (const kind of STORES) {
  test(`${kind}: stop() waits for a read in flight, so closing the store next loses nothing and logs no error`, async (t) => {
    const url = await freshDatabaseUrl(t, kind)
    if (url === undefined) return
    const store = createStore(url) as KyselyStore
    await store.migrate()
    const errors: unknown[] = []
    const feed = new ChangeFeed(store, systemClock, { pollMs: NEVER_BY_ITSELF, staleMs: NEVER_BY_ITSELF, onError: (error) => errors.push(error) })
    await feed.start()
    const seen: string[] = []
    feed.onChange((change) => seen.push(change.ref))
    await store.db.insertInto('state_changes').values({ at: Date.now(), kind: 'user', ref: '42' }).execute()
    const reading = feed.poll()
    await feed.stop()
    assert.deepEqual(seen, ['42'], 'the read in flight finished before stop() resolved')
    await store.close()
    await reading
    assert.deepEqual(errors, [], 'no read failed against the closed store')
  })

  test(`${kind}: after stop(), poll() reads nothing and fails nothing, even with the store closed`, async (t) => {
    const url = await freshDatabaseUrl(t, kind)
    if (url === undefined) return
    const store = createStore(url) as KyselyStore
    await store.migrate()
    const errors: unknown[] = []
    const feed = new ChangeFeed(store, systemClock, { pollMs: NEVER_BY_ITSELF, staleMs: NEVER_BY_ITSELF, onError: (error) => errors.push(error) })
    await feed.start()
    const seen: string[] = []
    feed.onChange((change) => seen.push(change.ref))
    await store.db.insertInto('state_changes').values({ at: Date.now(), kind: 'user', ref: '7' }).execute()
    await feed.stop()
    await store.close()
    await feed.poll()
    assert.deepEqual(errors, [])
    assert.deepEqual(seen, [])
  })
}
