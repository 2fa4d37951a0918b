/**
 * The audit log: authentication and administration events (who, what, when, from where, outcome),
 * kept in the database. Never a secret: callers pass names and ids, never passwords, hashes or tokens.
 */
import { USERNAME_MAX_CODE_POINTS } from '../auth/username.ts'
import type { Clock } from '../clock.ts'
import type { AuditEntry, Store } from '../store/store.ts'

/** Who acted. The CLI is `{ id: null, name: 'cli' }`; an unauthenticated caller `{ id: null, name: 'anonymous' }`. */
export interface Actor {
  readonly id: number | null
  readonly name: string
  readonly ip: string | null
}

export const CLI_ACTOR: Actor = { id: null, name: 'cli', ip: null }

export function anonymous(ip: string | null): Actor {
  return { id: null, name: 'anonymous', ip }
}

/**
 * The username an attempt named, as the audit log may keep it: only something that could be a
 * username. A token, refresh token or invite code sent in the username position (REST-auth teaches
 * `curl -u TOKEN:x`) is longer than any username and is never written.
 */
export function attemptedName(name: string): string {
  const points = [...name]
  if (points.length === 0) return ''
  if (points.length > USERNAME_MAX_CODE_POINTS) return '[not a username]'
  return name
}

export interface AuditEvent {
  readonly event: string
  readonly outcome?: AuditEntry['outcome']
  readonly actor: Actor
  readonly subject?: { readonly id: number; readonly username: string } | { readonly id: null; readonly username: string }
  readonly detail?: AuditEntry['detail']
}

export class AuditLog {
  readonly #store: Store
  readonly #clock: Clock
  readonly #onError: (error: unknown, event: string) => void

  constructor(store: Store, clock: Clock, onError: (error: unknown, event: string) => void = () => {}) {
    this.#store = store
    this.#clock = clock
    this.#onError = onError
  }

  /**
   * Appends one entry. A failed write is reported to `onError` and does not undo or fail the action
   * it records (that action has already happened).
   */
  async record(e: AuditEvent): Promise<void> {
    try {
      await this.#store.appendAudit({
        at: this.#clock.now(),
        event: e.event,
        outcome: e.outcome ?? 'success',
        actorId: e.actor.id,
        actor: e.actor.name,
        subjectId: e.subject?.id ?? null,
        subject: e.subject?.username ?? null,
        ip: e.actor.ip,
        detail: e.detail ?? {},
      })
    } catch (error) {
      this.#onError(error, e.event)
    }
  }
}
