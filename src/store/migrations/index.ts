import type { Migration } from 'kysely'
import * as m0001 from './2026_11_28_0001_create_users.ts'
import * as m0002 from './2026_11_28_0002_create_signing_keys.ts'
import * as m0003 from './2026_11_28_0003_token_lifecycle.ts'
import * as m0004 from './2026_12_01_0004_accounts.ts'
import * as m0005 from './2026_12_01_0005_state_changes.ts'

/** Static map (survives bundling and build output paths). Names sort in the order they run. */
export const migrations: Record<string, Migration> = {
  '2026_11_28_0001_create_users': m0001,
  '2026_11_28_0002_create_signing_keys': m0002,
  '2026_11_28_0003_token_lifecycle': m0003,
  '2026_12_01_0004_accounts': m0004,
  '2026_12_01_0005_state_changes': m0005,
}
