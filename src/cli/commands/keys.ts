import { loadConfig } from '../../config/load.ts'
import { createStore } from '../../store/kysely-store.ts'
import { keyState, rotateSigningKey, RotationError } from '../../tokens/rotation.ts'
import { table } from '../table.ts'
import type { CommandIo } from './migrate.ts'

export interface KeysOptions {
  readonly activateIn?: string
  readonly now: boolean
  readonly json: boolean
}

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString())

/** `keys list` and `keys rotate`. Exit codes: 0 ok, 1 refused (e.g. a key is already staged), 2 usage. */
export async function keysCommand(
  sub: string | undefined,
  overrides: Record<string, string>,
  options: KeysOptions,
  io: CommandIo,
): Promise<number> {
  if (sub !== 'list' && sub !== 'rotate') {
    io.err('usage: rest-auth keys list | keys rotate [--activate-in SECONDS] [--now]')
    return 2
  }
  const { config } = loadConfig({ overrides })
  const verifyWindowMs = (config.tokenTtl + config.clockLeeway) * 1000
  let activateIn = config.jwksMaxAge
  if (options.now) activateIn = 0
  if (options.activateIn !== undefined) {
    if (!/^\d+$/.test(options.activateIn)) {
      io.err('--activate-in must be a whole number of seconds')
      return 2
    }
    activateIn = Number(options.activateIn)
  }
  const store = createStore(config.databaseUrl)
  try {
    await store.migrate()
    const now = Date.now()
    if (sub === 'rotate') {
      try {
        const key = await rotateSigningKey(store, now, activateIn * 1000, verifyWindowMs)
        if (options.json) io.out(JSON.stringify({ kid: key.kid, alg: key.alg, activatesAt: iso(key.activatesAt) }))
        else {
          io.out(`staged key ${key.kid} (${key.alg}); it is published now and signs from ${iso(key.activatesAt)}`)
          if (activateIn < config.jwksMaxAge) {
            io.out(`note: it signs before JWKS caches (max-age ${config.jwksMaxAge} s) have expired; verifiers must refetch on an unknown kid`)
          }
        }
        return 0
      } catch (error) {
        if (error instanceof RotationError) {
          io.err(`refused: ${error.message}`)
          return 1
        }
        throw error
      }
    }
    const keys = (await store.listSigningKeys()).map((k) => ({
      kid: k.kid,
      alg: k.alg,
      state: keyState(k, now, verifyWindowMs),
      createdAt: iso(k.createdAt),
      activatesAt: iso(k.activatesAt),
      retiresAt: iso(k.retiresAt),
    }))
    if (options.json) io.out(JSON.stringify({ keys }))
    else io.out(table(['KID', 'ALG', 'STATE', 'CREATED', 'SIGNS FROM', 'RETIRES'], keys.map((k) => [k.kid, k.alg, k.state, k.createdAt, k.activatesAt, k.retiresAt])))
    return 0
  } finally {
    await store.close()
  }
}
