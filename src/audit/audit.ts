/**
 * The audit log: authentication and administration events (who, what, when, from where, outcome),
 * kept in the database. Never a secret: callers pass names and ids, never passwords, hashes or tokens.
 */
import { USERNAME_MAX_CODE_POINTS } from '../auth/username.ts'
import type { Clock } from '../clock.ts'
import type { AuditEntry, NewAuditEntry, Store } from '../store/store.ts'

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

export interface AuditLogOptions {
  /**
   * Entries wait up to this long (ms) and are written together in one transaction: on SQLite each
   * commit is an fsync on the event loop (synchronous=FULL), which one row per login would pay in
   * full. 0 writes each entry before `record` resolves (the CLI). `flush()` and `close()` write what waits.
   */
  readonly batchMs?: number
  readonly maxBatch?: number
}

export class AuditLog {
  readonly #store: Store
  readonly #clock: Clock
  readonly #onError: (error: unknown, event: string) => void
  readonly #batchMs: number
  readonly #maxBatch: number
  #pending: NewAuditEntry[] = []
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> = Promise.resolve()

  constructor(store: Store, clock: Clock, onError: (error: unknown, event: string) => void = () => {}, options: AuditLogOptions = {}) {
    this.#store = store
    this.#clock = clock
    this.#onError = onError
    this.#batchMs = options.batchMs ?? 0
    this.#maxBatch = options.maxBatch ?? 500
  }

  /**
   * Appends one entry (at once, or with the next batch). A failed write is reported to `onError` and
   * does not undo or fail the action it records (that action has already happened).
   */
  async record(e: AuditEvent): Promise<void> {
    const entry: NewAuditEntry = {
      at: this.#clock.now(),
      event: e.event,
      outcome: e.outcome ?? 'success',
      actorId: e.actor.id,
      actor: e.actor.name,
      subjectId: e.subject?.id ?? null,
      subject: e.subject?.username ?? null,
      ip: e.actor.ip,
      detail: e.detail ?? {},
    }
    if (this.#batchMs <= 0) {
      try {
        await this.#store.appendAudit([entry])
      } catch (error) {
        this.#onError(error, e.event)
      }
      return
    }
    this.#pending.push(entry)
    if (this.#pending.length >= this.#maxBatch) void this.flush()
    else this.#timer ??= setTimeout(() => void this.flush(), this.#batchMs)
  }

  /** Writes every waiting entry; resolves when they are in the database (or reported as failed). */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    const batch = this.#pending
    this.#pending = []
    this.#flushing = this.#flushing.then(async () => {
      if (batch.length === 0) return
      try {
        await this.#store.appendAudit(batch)
      } catch (error) {
        this.#onError(error, batch.map((b) => b.event).join(','))
      }
    })
    return this.#flushing
  }
}
