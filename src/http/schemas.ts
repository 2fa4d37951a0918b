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

const problemRef = { $ref: 'Problem#' } as const

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
    },
  },
  response: {
    201: { description: 'Created; `Location` is the user URL.', ...userSchema },
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

const authResponses = { 400: problemRef, 401: problemRef, 431: problemRef, 503: problemRef } as const
const security: Array<Record<string, string[]>> = [{ basicAuth: [] }, { bearerAuth: [] }]

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
