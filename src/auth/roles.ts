/**
 * Roles (pure): names, parsing and the rule a route requires, as Flask-HTTPAuth's
 * `login_required(role=...)`: one role, any of a set, or all of a set.
 */
import { RestAuthError } from '../errors.ts'

export const ADMIN_ROLE = 'admin'

/** Lower-case ASCII, starting with a letter, up to 32 characters: safe in a space-separated list and a URL. */
const ROLE_NAME = /^[a-z][a-z0-9_.:-]{0,31}$/

export const MAX_ROLES_PER_USER = 32

export function isRoleName(value: unknown): value is string {
  return typeof value === 'string' && ROLE_NAME.test(value)
}

/** Validates a list of role names from the wire or the CLI: sorted, unique. Throws `invalid_request`. */
export function parseRoles(value: unknown, field = 'roles'): string[] {
  if (!Array.isArray(value)) {
    throw new RestAuthError('invalid_request', `\`${field}\` must be an array of role names.`, { extensions: { field } })
  }
  for (const role of value) {
    if (!isRoleName(role)) {
      throw new RestAuthError(
        'invalid_request',
        `\`${field}\` holds an invalid role name: use 1 to 32 characters of a-z, 0-9, '_', '.', ':', '-', starting with a letter.`,
        { extensions: { field } },
      )
    }
  }
  const roles = [...new Set(value as string[])].sort()
  if (roles.length > MAX_ROLES_PER_USER) {
    throw new RestAuthError('invalid_request', `A user can hold at most ${MAX_ROLES_PER_USER} roles.`, { extensions: { field } })
  }
  return roles
}

/** What a route requires: every role listed (`all`), or at least one of them (`any`). */
export type RoleRequirement = { readonly all: readonly string[] } | { readonly any: readonly string[] }

export function requireAll(...roles: string[]): RoleRequirement {
  return checked({ all: roles })
}

export function requireAny(...roles: string[]): RoleRequirement {
  return checked({ any: roles })
}

function checked(req: RoleRequirement): RoleRequirement {
  const roles = 'all' in req ? req.all : req.any
  if (roles.length === 0 || !roles.every(isRoleName)) throw new TypeError('a role requirement needs valid role names')
  return req
}

export function satisfies(held: readonly string[], req: RoleRequirement): boolean {
  return 'all' in req ? req.all.every((r) => held.includes(r)) : req.any.some((r) => held.includes(r))
}

/** The public text of a refusal: names the roles, never the caller's. */
export function describeRequirement(req: RoleRequirement): string {
  if ('all' in req) return req.all.length === 1 ? `the role "${req.all[0]}"` : `all of the roles ${req.all.map((r) => `"${r}"`).join(', ')}`
  return req.any.length === 1 ? `the role "${req.any[0]}"` : `one of the roles ${req.any.map((r) => `"${r}"`).join(', ')}`
}
