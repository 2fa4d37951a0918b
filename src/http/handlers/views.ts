/** Wire shapes of accounts, invites and audit entries (pure). Never a hash or a secret. */
import type { AuditEntry, Invite, User } from '../../store/store.ts'

const iso = (ms: number) => new Date(ms).toISOString()

export function accountView(user: User) {
  return {
    id: user.id,
    username: user.username,
    status: user.status,
    roles: [...user.roles],
    created_at: iso(user.createdAt),
    updated_at: iso(user.updatedAt),
  }
}

export function inviteState(invite: Invite, now: number): 'usable' | 'used' | 'revoked' | 'expired' {
  if (invite.usedAt !== null) return 'used'
  if (invite.revokedAt !== null) return 'revoked'
  return now >= invite.expiresAt ? 'expired' : 'usable'
}

export function inviteView(invite: Invite, now: number) {
  return {
    id: invite.id,
    username: invite.username,
    roles: [...invite.roles],
    created_by: invite.createdBy,
    created_at: iso(invite.createdAt),
    expires_at: iso(invite.expiresAt),
    state: inviteState(invite, now),
    used_by: invite.usedBy,
  }
}

export function auditView(entry: AuditEntry) {
  return {
    id: entry.id,
    at: iso(entry.at),
    event: entry.event,
    outcome: entry.outcome,
    actor_id: entry.actorId,
    actor: entry.actor,
    subject_id: entry.subjectId,
    subject: entry.subject,
    ip: entry.ip,
    detail: entry.detail,
  }
}
