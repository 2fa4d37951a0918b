/**
 * The one error base of rest-auth and its catalogue of stable wire codes.
 *
 * Every failure that reaches a client is a `RestAuthError` with a `code` from `ERROR_CATALOGUE`.
 * `message` is public (it becomes the problem's `detail`); `internal` and `cause` go to the log only.
 * Codes are frozen: a retired code is never reused, and a wire name is never renamed.
 * `docs/errors.md` is generated from this table and checked against it by a test.
 */

export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 429 | 431 | 500 | 503

interface CatalogueEntry {
  readonly status: ErrorStatus
  readonly title: string
  readonly meaning: string
  readonly fix: string
}

export const ERROR_CATALOGUE = {
  invalid_request: {
    status: 400,
    title: 'Invalid request',
    meaning: 'A field is missing, has the wrong type, or the request is otherwise malformed.',
    fix: 'Read `detail`: it names the field. Send the fields the OpenAPI document lists.',
  },
  invalid_json: {
    status: 400,
    title: 'Invalid JSON',
    meaning: 'The body is not valid JSON, nests deeper than 32 levels, or has more than 100 keys in one object.',
    fix: 'Send a small, well-formed JSON object.',
  },
  invalid_encoding: {
    status: 400,
    title: 'Invalid encoding',
    meaning: 'The body is not valid UTF-8.',
    fix: 'Encode the body as UTF-8 (RFC 8259 §8.1).',
  },
  unsupported_media_type: {
    status: 415,
    title: 'Unsupported media type',
    meaning: 'The body is not `application/json` (or the `Content-Type` header is missing).',
    fix: 'Send `Content-Type: application/json`.',
  },
  payload_too_large: {
    status: 413,
    title: 'Payload too large',
    meaning: 'The body exceeds the 16 KiB limit of the authentication routes.',
    fix: 'Send a smaller body.',
  },
  header_too_large: {
    status: 431,
    title: 'Request header too large',
    meaning: 'The `Authorization` header exceeds 8 KiB, or all request headers together exceed 16 KiB.',
    fix: 'Send a token or credentials of normal size.',
  },
  username_invalid: {
    status: 400,
    title: 'Invalid username',
    meaning:
      'The username is empty, longer than 32 characters, or holds characters that are not allowed (`:`, spaces, controls, invisible characters, mixed scripts), or is reserved.',
    fix: 'Choose a username of letters, digits and `.`, `_`, `-`, `@`, `+` from one script.',
  },
  username_taken: {
    status: 400,
    title: 'Username taken',
    meaning:
      'Another account already has this username, compared case-insensitively and after Unicode normalization (RFC 8265).',
    fix: 'Choose another username.',
  },
  password_too_short: {
    status: 400,
    title: 'Password too short',
    meaning: 'The password has fewer characters than the password policy requires.',
    fix: 'Use a longer password; a passphrase of several words works well.',
  },
  password_too_long: {
    status: 400,
    title: 'Password too long',
    meaning: 'The password is longer than 1024 bytes of UTF-8.',
    fix: 'Use a shorter password.',
  },
  password_too_common: {
    status: 400,
    title: 'Password too common',
    meaning: 'The password is on the list of commonly used passwords that attackers try first.',
    fix: 'Choose a password that is not a common word or sequence.',
  },
  password_contains_context: {
    status: 400,
    title: 'Password too easy to guess',
    meaning: 'The password is, or contains, the username or the name of this service.',
    fix: 'Choose a password unrelated to the username and the service.',
  },
  registration_closed: {
    status: 403,
    title: 'Registration closed',
    meaning: 'This server does not accept self-registration (`AUTH_REGISTRATION=closed`) and the request carried no invite code.',
    fix: 'Ask an administrator to create the account, or for an invite code (send it as `invite`).',
  },
  username_not_allowed: {
    status: 400,
    title: 'Username not allowed',
    meaning: 'The username does not match any pattern of `AUTH_USERNAME_ALLOW` (for example, an e-mail domain this server accepts).',
    fix: 'Register with a username that matches one of the patterns named in `detail`.',
  },
  invite_invalid: {
    status: 400,
    title: 'Invalid invite',
    meaning: 'The invite code is unknown, expired, revoked or already used, or it was issued for another username.',
    fix: 'Ask an administrator for a new invite code.',
  },
  invite_not_found: {
    status: 404,
    title: 'Invite not found',
    meaning: 'No unused, unrevoked invite has this id.',
    fix: 'List the invites to find the id.',
  },
  account_pending: {
    status: 403,
    title: 'Account pending approval',
    meaning: 'The password is right, but the account waits for an administrator to approve it (`AUTH_REGISTRATION=approval`).',
    fix: 'Wait for the approval, or ask an administrator.',
  },
  account_disabled: {
    status: 403,
    title: 'Account disabled',
    meaning: 'The password is right, but an administrator disabled the account.',
    fix: 'Ask an administrator to enable it.',
  },
  role_required: {
    status: 403,
    title: 'Role required',
    meaning: 'The caller is authenticated but lacks the role this route needs (for example `admin`).',
    fix: 'Ask an administrator for the role named in `detail`.',
  },
  current_password_incorrect: {
    status: 400,
    title: 'Current password incorrect',
    meaning: 'Changing the password or deleting the account needs the current password, and the one sent is wrong.',
    fix: 'Send the current password in `current_password` (or `password` to delete the account).',
  },
  last_admin: {
    status: 409,
    title: 'Last administrator',
    meaning: 'The change would leave no active user with the `admin` role.',
    fix: 'Give another user the `admin` role first.',
  },
  https_required: {
    status: 403,
    title: 'HTTPS required',
    meaning: 'The request carried credentials over plain HTTP and this server refuses them (`AUTH_REQUIRE_HTTPS=on`). Nothing was checked. On `/oauth/` routes the body is RFC 6749 §5.2 JSON, `error` `invalid_request`.',
    fix: 'Use the `https://` address. The credentials may have been seen on the way: change the password or revoke the token.',
  },
  authentication_required: {
    status: 401,
    title: 'Authentication required',
    meaning: 'The route needs credentials and the request carried none.',
    fix: 'Send `Authorization: Bearer <token>` or HTTP Basic credentials.',
  },
  invalid_credentials: {
    status: 401,
    title: 'Invalid credentials',
    meaning: 'The username and password do not match an account.',
    fix: 'Check the username and password.',
  },
  authorization_malformed: {
    status: 401,
    title: 'Malformed Authorization header',
    meaning:
      'The `Authorization` header could not be parsed (unknown scheme, bad base64, or no `:` in Basic credentials).',
    fix: 'Send `Bearer <token>` or `Basic base64(username:password)` (RFC 7617).',
  },
  bearer_malformed: {
    status: 400,
    title: 'Malformed Bearer credentials',
    meaning: 'The Bearer token is empty or holds characters a token cannot have (RFC 6750 §2.1).',
    fix: 'Send the token exactly as `/api/token` returned it.',
  },
  duplicate_authorization: {
    status: 400,
    title: 'Duplicate Authorization header',
    meaning: 'The request carried more than one `Authorization` header.',
    fix: 'Send exactly one `Authorization` header.',
  },
  token_invalid: {
    status: 401,
    title: 'Invalid token',
    meaning:
      'The token is malformed, its signature does not verify, it was not issued by this server for this audience, or its user no longer exists.',
    fix: 'Get a new token from `/api/token`.',
  },
  token_expired: {
    status: 401,
    title: 'Token expired',
    meaning: 'The token is past its `exp` time.',
    fix: 'Get a new token from `/api/token`.',
  },
  token_renewal_limit: {
    status: 401,
    title: 'Token renewal limit reached',
    meaning:
      'A token can renew itself at `/api/token` only until `AUTH_TOKEN_RENEWAL_LIMIT` seconds after the password was last presented.',
    fix: 'Present the username and password again.',
  },
  token_revoked: {
    status: 401,
    title: 'Token revoked',
    meaning:
      'The token was revoked: logged out, all tokens of the user were revoked, or its refresh-token family was revoked.',
    fix: 'Log in again.',
  },
  insufficient_scope: {
    status: 403,
    title: 'Insufficient scope',
    meaning:
      'The token is valid but does not allow this request: a service-client token on a route that needs a user, or a token without the scope the route needs (RFC 6750 §3.1).',
    fix: 'Use a token of a user, or one issued with the scope named in `WWW-Authenticate`.',
  },
  invalid_client: {
    status: 401,
    title: 'Client authentication failed',
    meaning: 'Unknown client, wrong client secret, or no client authentication where it is required (RFC 6749 §5.2).',
    fix: 'Send the client id and secret with HTTP Basic (preferred) or as `client_id`/`client_secret` form fields.',
  },
  invalid_grant: {
    status: 400,
    title: 'Invalid grant',
    meaning:
      'The password is wrong, or the refresh token is unknown, expired, revoked, already used, or was issued to another client (RFC 6749 §5.2).',
    fix: 'Log in again with the password grant.',
  },
  unauthorized_client: {
    status: 400,
    title: 'Grant not allowed for this client',
    meaning: 'The authenticated client is not registered for this grant type (RFC 6749 §5.2).',
    fix: 'Use a grant the client was created with, or create the client with `--grant`.',
  },
  unsupported_grant_type: {
    status: 400,
    title: 'Unsupported grant type',
    meaning:
      'The `grant_type` is not one this server supports, or it is switched off (`AUTH_PASSWORD_GRANT=off` for `password`).',
    fix: 'Use `password`, `refresh_token` or `client_credentials`.',
  },
  invalid_scope: {
    status: 400,
    title: 'Invalid scope',
    meaning: 'The requested scope is malformed or exceeds what the client may ask for (RFC 6749 §3.3).',
    fix: 'Request only scopes the client was created with.',
  },
  unsupported_token_type: {
    status: 400,
    title: 'Unsupported token type',
    meaning: 'RFC 7009 §2.2.1: the server cannot revoke this type of token.',
    fix: 'Send an access token or a refresh token.',
  },
  user_not_found: {
    status: 404,
    title: 'User not found',
    meaning: 'No user has this id.',
    fix: 'Check the id; ids are never reused.',
  },
  not_found: {
    status: 404,
    title: 'Not found',
    meaning: 'No route matches this method and path.',
    fix: 'See `/openapi.json` for the routes.',
  },
  too_many_attempts: {
    status: 429,
    title: 'Too many attempts',
    meaning:
      'Too many failed password attempts for this username from this address, for this username, or from this address; the attempt was not checked. There is no permanent lockout.',
    fix: 'Wait the number of seconds in `Retry-After`, or use a token instead of the password.',
  },
  rate_limited: {
    status: 429,
    title: 'Too many requests',
    meaning: 'This address (or client) sent more registrations, refreshes or introspections than the limit allows.',
    fix: 'Wait the number of seconds in `Retry-After`.',
  },
  overloaded: {
    status: 503,
    title: 'Overloaded',
    meaning: 'Too many password checks are waiting; the server refuses more rather than slow every request down.',
    fix: 'Retry after the number of seconds in `Retry-After`, or use a token instead of the password.',
  },
  database_unavailable: {
    status: 503,
    title: 'Service unavailable',
    meaning: 'The database cannot be reached.',
    fix: 'Retry later; operators should check `/readyz` and the database.',
  },
  internal_error: {
    status: 500,
    title: 'Internal server error',
    meaning: 'An unexpected failure. Nothing about it is sent to the client; the server log has the details.',
    fix: 'Retry; if it persists, report it with the time of the request.',
  },
} as const satisfies Record<string, CatalogueEntry>

export type ErrorCode = keyof typeof ERROR_CATALOGUE

export interface RestAuthErrorOptions {
  /** Text for the log only, never sent to the client. Must not hold secrets. */
  readonly internal?: string
  readonly cause?: unknown
  /** Extra problem+json members (RFC 9457 §3.2), e.g. `field`. Public. */
  readonly extensions?: Readonly<Record<string, string | number | boolean>>
  /** Extra response headers, e.g. `Retry-After`. */
  readonly headers?: Readonly<Record<string, string>>
}

export class RestAuthError extends Error {
  readonly code: ErrorCode
  readonly status: ErrorStatus
  readonly internal: string | undefined
  readonly extensions: Readonly<Record<string, string | number | boolean>>
  readonly headers: Readonly<Record<string, string>>

  /** `message` is public: it becomes the problem's `detail`. */
  constructor(code: ErrorCode, message?: string, options: RestAuthErrorOptions = {}) {
    const entry: CatalogueEntry | undefined = ERROR_CATALOGUE[code]
    if (entry === undefined) throw new TypeError(`unknown error code: ${String(code)}`)
    super(message ?? entry.meaning, { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.status = entry.status
    this.internal = options.internal
    this.extensions = options.extensions ?? {}
    this.headers = options.headers ?? {}
  }

  get title(): string {
    return ERROR_CATALOGUE[this.code].title
  }
}

export function isRestAuthError(value: unknown): value is RestAuthError {
  return value instanceof RestAuthError
}
