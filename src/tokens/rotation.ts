/**
 * Signing-key lifecycle (OWASP JWT CS key management): a new key is *staged* (published in the JWKS,
 * not signing) for at least the JWKS cache lifetime, then *active* (signing); the key it replaces is
 * *retired* (no longer signs, still verifies) until every token it signed has expired, then
 * *expired* (gone from the JWKS, pruned).
 */
import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair } from 'jose'
import type { SigningKey, Store } from '../store/store.ts'

export const TOKEN_ALG = 'ES256'

export type KeyState = 'staged' | 'active' | 'retired' | 'expired'

/** `verifyWindowMs`: how long a retired key must still verify: token TTL + clock leeway. */
export function keyState(key: SigningKey, now: number, verifyWindowMs: number): KeyState {
  if (key.activatesAt > now) return 'staged'
  if (key.retiresAt === null || key.retiresAt > now) return 'active'
  return key.retiresAt + verifyWindowMs > now ? 'retired' : 'expired'
}

export async function generateSigningKey(now: number, activatesAt: number): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true })
  return {
    kid: randomUUID(),
    alg: TOKEN_ALG,
    publicJwk: JSON.stringify(await exportJWK(publicKey)),
    privateJwk: JSON.stringify(await exportJWK(privateKey)),
    createdAt: now,
    activatesAt,
    retiresAt: null,
  }
}

export class RotationError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RotationError'
  }
}

/**
 * Stages a new key that starts signing `activateInMs` from now; every key signing now retires at
 * that moment. Refused while another key is staged. Expired keys are pruned.
 */
export async function rotateSigningKey(
  store: Store,
  now: number,
  activateInMs: number,
  verifyWindowMs: number,
): Promise<SigningKey> {
  const keys = await store.listSigningKeys()
  const staged = keys.find((k) => keyState(k, now, verifyWindowMs) === 'staged')
  if (staged !== undefined) {
    throw new RotationError(`key ${staged.kid} is already staged and activates at ${new Date(staged.activatesAt).toISOString()}`)
  }
  const next = await generateSigningKey(now, now + activateInMs)
  await store.insertSigningKey(next) // published first ...
  for (const key of keys) {
    const state = keyState(key, now, verifyWindowMs)
    if (state === 'active') await store.updateSigningKey(key.kid, { retiresAt: next.activatesAt }) // ... then the old one retires
    if (state === 'expired') await store.deleteSigningKey(key.kid)
  }
  return next
}
