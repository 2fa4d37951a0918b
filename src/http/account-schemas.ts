/** Route schemas of self-service (`/api/users/me`) and the admin API (`/api/admin`). */
import { authResponses, problemRef, security } from './schemas.ts'

export const accountSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    username: { type: 'string' },
    status: { type: 'string', enum: ['active', 'pending', 'disabled'] },
    roles: { type: 'array', items: { type: 'string' } },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
  },
  required: ['id', 'username', 'status', 'roles', 'created_at', 'updated_at'],
} as const

const roleResponses = { ...authResponses, 403: problemRef } as const
const idParams = {
  type: 'object',
  properties: { id: { type: 'string', description: 'User id.' } },
  required: ['id'],
} as const
const rolesProperty = {
  type: 'array',
  items: { type: 'string' },
  maxItems: 32,
  description: 'Role names: 1 to 32 characters of a-z, 0-9, `_`, `.`, `:`, `-`, starting with a letter.',
} as const
const noContent = { description: 'Done.', type: 'null' } as const
const passwordProperty = { type: 'string', description: 'Checked against `AUTH_PASSWORD_POLICY`.' } as const

// ---- self-service ----

export const meSchema = {
  tags: ['Account'],
  summary: 'The authenticated user',
  security,
  response: { 200: accountSchema, ...roleResponses },
} as const

export const changePasswordSchema = {
  tags: ['Account'],
  summary: 'Change one\'s own password',
  description:
    'Needs the current password. Every token and refresh token of the user is revoked; the answer carries a fresh token for the caller.',
  security,
  body: {
    type: 'object',
    required: ['current_password', 'new_password'],
    properties: { current_password: { type: 'string' }, new_password: passwordProperty },
  },
  response: {
    200: {
      type: 'object',
      properties: { token: { type: 'string' }, duration: { type: 'integer' } },
      required: ['token', 'duration'],
    },
    ...roleResponses,
    409: problemRef,
  },
} as const

export const deleteMeSchema = {
  tags: ['Account'],
  summary: 'Delete one\'s own account',
  description: 'Needs the password. Every token of the user stops working at once; the id is never reused.',
  security,
  body: { type: 'object', required: ['password'], properties: { password: { type: 'string' } } },
  response: { 204: noContent, ...roleResponses, 409: problemRef },
} as const

// ---- admin: users ----

const adminTags = ['Admin'] as const
const adminDescription = 'Needs the `admin` role.'

export const listUsersSchema = {
  tags: adminTags,
  summary: 'List and search users',
  description: `${adminDescription} Ordered by id; page with \`after\` = the \`next_after\` of the previous page.`,
  security,
  querystring: {
    type: 'object',
    properties: {
      search: { type: 'string', maxLength: 64, description: 'Part of the username (compared in canonical form).' },
      status: { type: 'string', enum: ['active', 'pending', 'disabled'] },
      role: { type: 'string', maxLength: 32 },
      limit: { type: 'string', pattern: '^[0-9]{1,3}$', description: '1 to 200, default 50.' },
      after: { type: 'string', pattern: '^[0-9]{1,16}$', description: 'Users with a greater id.' },
    },
    additionalProperties: false,
  },
  response: {
    200: {
      type: 'object',
      properties: {
        users: { type: 'array', items: accountSchema },
        next_after: { type: ['integer', 'null'], description: 'Pass as `after` for the next page; null on the last.' },
      },
      required: ['users', 'next_after'],
    },
    ...roleResponses,
  },
} as const

export const getAccountSchema = {
  tags: adminTags,
  summary: 'Show a user',
  description: adminDescription,
  security,
  params: idParams,
  response: { 200: accountSchema, ...roleResponses, 404: problemRef },
} as const

export const createUserSchema = {
  tags: adminTags,
  summary: 'Create a user',
  description: `${adminDescription} Works under every registration policy; the password policy applies, the username allow-list does not.`,
  security,
  body: {
    type: 'object',
    required: ['username', 'password'],
    properties: {
      username: { type: 'string' },
      password: passwordProperty,
      roles: rolesProperty,
      status: { type: 'string', enum: ['active', 'pending'], description: 'Default `active`.' },
    },
  },
  response: { 201: accountSchema, ...roleResponses },
} as const

function userAction(summary: string, description: string) {
  return {
    tags: adminTags,
    summary,
    description: `${adminDescription} ${description}`,
    security,
    params: idParams,
    response: { 200: accountSchema, ...roleResponses, 404: problemRef, 409: problemRef },
  } as const
}

export const approveSchema = userAction('Approve a pending user', 'A pending user becomes active and can get tokens.')
export const disableSchema = userAction('Disable a user', 'Every token of the user stops working at once; logins get 403 `account_disabled`.')
export const enableSchema = userAction('Enable a user', 'A disabled (or pending) user becomes active.')

export const deleteUserSchema = {
  tags: adminTags,
  summary: 'Delete a user',
  description: `${adminDescription} Its tokens stop working at once; the id is never reused.`,
  security,
  params: idParams,
  response: { 204: noContent, ...roleResponses, 404: problemRef, 409: problemRef },
} as const

export const setRolesSchema = {
  ...userAction('Set the roles of a user', 'Replaces the whole set; applies at once, also to tokens already issued.'),
  body: { type: 'object', required: ['roles'], properties: { roles: rolesProperty } },
} as const

export const setPasswordSchema = {
  ...userAction('Set a new password', 'The password policy applies; every token of the user is revoked.'),
  body: { type: 'object', required: ['password'], properties: { password: passwordProperty } },
} as const

export const revokeUserTokensSchema = {
  tags: adminTags,
  summary: 'Revoke every token of a user',
  description: `${adminDescription} Access tokens and refresh tokens; the user can log in again.`,
  security,
  params: idParams,
  response: { 204: noContent, ...roleResponses, 404: problemRef },
} as const

// ---- admin: invites ----

const inviteSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    username: { type: ['string', 'null'], description: 'The only username the invite can register, if fixed.' },
    roles: { type: 'array', items: { type: 'string' } },
    created_by: { type: 'string' },
    created_at: { type: 'string', format: 'date-time' },
    expires_at: { type: 'string', format: 'date-time' },
    state: { type: 'string', enum: ['usable', 'used', 'revoked', 'expired'] },
    used_by: { type: ['integer', 'null'] },
  },
  required: ['id', 'username', 'roles', 'created_by', 'created_at', 'expires_at', 'state', 'used_by'],
} as const

export const createInviteSchema = {
  tags: adminTags,
  summary: 'Issue an invite code',
  description: `${adminDescription} The code is single-use and shown only in this answer (stored as a hash). A user registers with it as \`invite\` in \`POST /api/users\`.`,
  security,
  body: {
    type: 'object',
    properties: {
      expires_in: { type: 'integer', minimum: 60, description: 'Seconds; default `AUTH_INVITE_TTL`.' },
      username: { type: 'string', description: 'Fix the username the invite can register.' },
      roles: rolesProperty,
    },
  },
  response: {
    201: {
      type: 'object',
      properties: { ...inviteSchema.properties, code: { type: 'string' } },
      required: [...inviteSchema.required, 'code'],
    },
    ...roleResponses,
  },
} as const

export const listInvitesSchema = {
  tags: adminTags,
  summary: 'List invites',
  description: `${adminDescription} Usable invites; \`all=true\` adds used, revoked and expired ones.`,
  security,
  querystring: { type: 'object', properties: { all: { type: 'string', enum: ['true', 'false'] } }, additionalProperties: false },
  response: {
    200: { type: 'object', properties: { invites: { type: 'array', items: inviteSchema } }, required: ['invites'] },
    ...roleResponses,
  },
} as const

export const revokeInviteSchema = {
  tags: adminTags,
  summary: 'Revoke an invite',
  description: adminDescription,
  security,
  params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
  response: { 204: noContent, ...roleResponses, 404: problemRef },
} as const

// ---- admin: audit ----

const auditEntrySchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    at: { type: 'string', format: 'date-time' },
    event: { type: 'string' },
    outcome: { type: 'string', enum: ['success', 'failure'] },
    actor_id: { type: ['integer', 'null'] },
    actor: { type: 'string' },
    subject_id: { type: ['integer', 'null'] },
    subject: { type: ['string', 'null'] },
    ip: { type: ['string', 'null'] },
    detail: { type: 'object', additionalProperties: true },
  },
  required: ['id', 'at', 'event', 'outcome', 'actor_id', 'actor', 'subject_id', 'subject', 'ip', 'detail'],
} as const

export const auditSchema = {
  tags: adminTags,
  summary: 'Query the audit log',
  description: `${adminDescription} Newest first; page with \`before\` = the \`next_before\` of the previous page.`,
  security,
  querystring: {
    type: 'object',
    properties: {
      event: { type: 'string', maxLength: 64, description: 'An event name, or a family such as `user.*`.' },
      outcome: { type: 'string', enum: ['success', 'failure'] },
      user_id: { type: 'string', pattern: '^[0-9]{1,16}$', description: 'Entries where this user acted or was acted upon.' },
      since: { type: 'string', format: 'date-time' },
      until: { type: 'string', format: 'date-time' },
      limit: { type: 'string', pattern: '^[0-9]{1,3}$', description: '1 to 200, default 50.' },
      before: { type: 'string', pattern: '^[0-9]{1,16}$' },
    },
    additionalProperties: false,
  },
  response: {
    200: {
      type: 'object',
      properties: { entries: { type: 'array', items: auditEntrySchema }, next_before: { type: ['integer', 'null'] } },
      required: ['entries', 'next_before'],
    },
    ...roleResponses,
  },
} as const
