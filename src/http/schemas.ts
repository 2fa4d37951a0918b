/** JSON schemas of the routes: they validate requests, shape replies, and make the OpenAPI document. */

export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details. `code` is stable; see /errors.',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    field: { type: 'string' },
  },
  required: ['type', 'title', 'status', 'detail', 'code'],
  additionalProperties: true,
} as const

export const problemRef = { $ref: 'Problem#' } as const

export const userSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer', description: 'Never reused.' },
    username: { type: 'string', description: 'As registered.' },
  },
  required: ['id', 'username'],
} as const

export const registerSchema = {
  tags: ['REST-auth'],
  summary: 'Register a user',
  description:
    'Creates a user. The username is unique case-insensitively and after Unicode normalisation (RFC 8265). The password is checked against the configured policy and stored as an argon2id hash.',
  body: {
    type: 'object',
    required: ['username', 'password'],
    properties: {
      username: { type: 'string', description: '1 to 32 characters: letters, digits, `.`, `_`, `-`, `@`, `+`.' },
      password: { type: 'string', description: 'Checked against `AUTH_PASSWORD_POLICY`; at most 1024 bytes.' },
      invite: {
        type: 'string',
        description: 'An invite code from an administrator: needed under `AUTH_REGISTRATION=closed`; skips approval and may grant roles.',
      },
    },
  },
  response: {
    201: {
      description: 'Created; `Location` is the user URL. `status: "pending"` is added when the account waits for approval (`AUTH_REGISTRATION=approval`).',
      type: 'object',
      properties: { ...userSchema.properties, status: { type: 'string', enum: ['pending'] } },
      required: ['id', 'username'],
    },
    400: problemRef,
    403: problemRef,
    413: problemRef,
    415: problemRef,
    503: problemRef,
  },
} as const

export const getUserSchema = {
  tags: ['REST-auth'],
  summary: 'Get a user',
  params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
  response: { 200: userSchema, 404: problemRef },
} as const

export const authResponses = { 400: problemRef, 401: problemRef, 431: problemRef, 503: problemRef } as const
export const security: Array<Record<string, string[]>> = [{ basicAuth: [] }, { bearerAuth: [] }]

export const tokenSchema = {
  tags: ['REST-auth'],
  summary: 'Get an access token',
  description:
    'Trades a password (or a valid token, REST-auth style) for a signed access token. A token renewed with a token keeps the original `auth_time`; renewal stops `AUTH_TOKEN_RENEWAL_LIMIT` seconds after the password was presented. Send the token as `Authorization: Bearer <token>` or as the Basic username with any password.',
  security,
  response: {
    200: {
      type: 'object',
      properties: {
        token: { type: 'string', description: 'JWT (ES256, typ at+jwt).' },
        duration: { type: 'integer', description: 'Seconds until it expires.' },
      },
      required: ['token', 'duration'],
    },
    ...authResponses,
  },
} as const

export const resourceSchema = {
  tags: ['REST-auth'],
  summary: 'A protected resource',
  security,
  response: {
    200: { type: 'object', properties: { data: { type: 'string' } }, required: ['data'] },
    ...authResponses,
  },
} as const

export const healthSchema = {
  tags: ['Operations'],
  summary: 'Liveness',
  response: { 200: { type: 'object', properties: { status: { type: 'string' } } } },
} as const

export const readySchema = {
  tags: ['Operations'],
  summary: 'Readiness: the database answers',
  response: { 200: { type: 'object', properties: { status: { type: 'string' } } }, 503: problemRef },
} as const

export const revokeTokenSchema = {
  tags: ['Tokens'],
  summary: 'Log out: revoke the presented token',
  description:
    'Revokes the token used to authenticate this request (by its `jti`), and its refresh-token family when it came from a refresh grant. The token is refused from the next request on. Authenticate with the token (Bearer or as the Basic username).',
  security,
  response: { 204: { description: 'Revoked.', type: 'null' }, ...authResponses },
} as const

export const revokeAllSchema = {
  tags: ['Tokens'],
  summary: 'Log out everywhere: revoke every token of the user',
  description: 'Every access token issued to the user until now and every refresh-token family are revoked.',
  security,
  response: { 204: { description: 'Revoked.', type: 'null' }, ...authResponses, 403: problemRef },
} as const

const oauthError = {
  type: 'object',
  description: 'RFC 6749 §5.2 error.',
  properties: { error: { type: 'string' }, error_description: { type: 'string' } },
  required: ['error'],
} as const

const clientSecurity: Array<Record<string, string[]>> = [{ clientBasic: [] }, {}]

export const oauthTokenSchema = {
  tags: ['OAuth 2'],
  summary: 'Token endpoint (RFC 6749)',
  description:
    'Form-encoded. `grant_type=password` (username, password; first-party clients, with or without client authentication), `grant_type=refresh_token` (refresh_token; rotated on every use), `grant_type=client_credentials` (client authentication required; scope optional). Clients authenticate with HTTP Basic (client_secret_basic) or client_id/client_secret fields.',
  security: clientSecurity,
  consumes: ['application/x-www-form-urlencoded'],
  body: {
    type: 'object',
    properties: {
      grant_type: { type: 'string', description: '`password`, `refresh_token` or `client_credentials`.' },
      username: { type: 'string' },
      password: { type: 'string' },
      refresh_token: { type: 'string' },
      scope: { type: 'string' },
      client_id: { type: 'string' },
      client_secret: { type: 'string' },
    },
  },
  response: {
    200: {
      type: 'object',
      properties: {
        access_token: { type: 'string' },
        token_type: { type: 'string' },
        expires_in: { type: 'integer' },
        refresh_token: { type: 'string' },
        scope: { type: 'string' },
      },
      required: ['access_token', 'token_type', 'expires_in'],
    },
    400: oauthError,
    401: oauthError,
    503: oauthError,
  },
} as const

export const revokeSchema = {
  tags: ['OAuth 2'],
  summary: 'Token revocation (RFC 7009)',
  description:
    'Form-encoded `token` (an access token or a refresh token) and optional `token_type_hint`. Always 200 for unknown or invalid tokens (RFC 7009 §2.2). A token issued to a client can only be revoked by that client; revoking a refresh token revokes its family and the access tokens issued from it.',
  security: clientSecurity,
  consumes: ['application/x-www-form-urlencoded'],
  body: { type: 'object', properties: { token: { type: 'string' }, token_type_hint: { type: 'string' } } },
  response: { 200: { description: 'Revoked or unknown.', type: 'null' }, 400: oauthError, 401: oauthError },
} as const

export const introspectSchema = {
  tags: ['OAuth 2'],
  summary: 'Token introspection (RFC 7662)',
  description:
    'Form-encoded `token`. The caller must authenticate as a client. An inactive token (unknown, expired, revoked) answers only `{"active": false}`.',
  security: [{ clientBasic: [] }],
  consumes: ['application/x-www-form-urlencoded'],
  body: { type: 'object', properties: { token: { type: 'string' }, token_type_hint: { type: 'string' } } },
  response: {
    200: {
      type: 'object',
      properties: { active: { type: 'boolean' } },
      required: ['active'],
      additionalProperties: true,
    },
    400: oauthError,
    401: oauthError,
  },
} as const

export const metadataSchema = {
  tags: ['OAuth 2'],
  summary: 'Authorization server metadata (RFC 8414)',
  response: { 200: { type: 'object', additionalProperties: true } },
} as const

export const jwksSchema = {
  tags: ['OAuth 2'],
  summary: 'JSON Web Key Set (RFC 7517) of the token signing keys',
  description: 'Public keys only. Cache-Control max-age is `AUTH_JWKS_MAX_AGE`; new keys appear here that long before they sign.',
  response: { 200: { type: 'object', additionalProperties: true } },
} as const
