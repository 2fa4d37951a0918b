/**
 * Roles (pure): role names, parsing a list from the wire, route requirements (all of / any of) and
 * the public text of a refusal. No server.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  ADMIN_ROLE,
  describeRequirement,
  isRoleName,
  MAX_ROLES_PER_USER,
  parseRoles,
  requireAll,
  requireAny,
  satisfies,
} from '../../src/auth/roles.ts'
import { RestAuthError } from '../../src/errors.ts'

function refused(value: unknown, field?: string): RestAuthError {
  let caught: unknown
  try {
    if (field === undefined) parseRoles(value)
    else parseRoles(value, field)
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof RestAuthError, `expected invalid_request for ${JSON.stringify(value)}`)
  assert.equal(caught.code, 'invalid_request')
  assert.equal(caught.status, 400)
  return caught
}

test('roles: parseRoles returns the names sorted and unique', () => {
  assert.deepEqual(parseRoles(['ops', 'admin', 'editor', 'admin', 'ops']), ['admin', 'editor', 'ops'])
  assert.deepEqual(parseRoles([]), [])
  assert.deepEqual(parseRoles(['billing:read', 'a.b', 'x_y', 'z-9']), ['a.b', 'billing:read', 'x_y', 'z-9'])
  assert.equal(ADMIN_ROLE, 'admin')
})

test('roles: parseRoles refuses invalid role names with invalid_request naming the field', () => {
  for (const bad of ['Admin', 'ADMIN', '1ops', '_ops', '-ops', '', 'two words', 'a/b', 'é', 'a'.repeat(33), 'ops\u0000']) {
    const error = refused(['editor', bad])
    assert.equal(error.extensions['field'], 'roles', JSON.stringify(bad))
  }
  for (const notAString of [1, null, true, {}, ['nested']]) refused([notAString])
  // 32 characters is the longest name
  assert.deepEqual(parseRoles(['a'.repeat(32)]), ['a'.repeat(32)])
})

test('roles: parseRoles refuses a value that is not an array, and names the field it was given', () => {
  for (const value of ['admin', undefined, null, 3, { 0: 'admin' }]) refused(value)
  assert.equal(refused('admin', 'invite.roles').extensions['field'], 'invite.roles')
  assert.equal(refused(['Bad'], 'invite.roles').extensions['field'], 'invite.roles')
})

test(`roles: at most ${MAX_ROLES_PER_USER} roles per user (more → invalid_request)`, () => {
  const names = (n: number) => Array.from({ length: n }, (_, i) => `role${String(i).padStart(2, '0')}`)
  assert.equal(parseRoles(names(MAX_ROLES_PER_USER)).length, MAX_ROLES_PER_USER)
  const error = refused(names(MAX_ROLES_PER_USER + 1))
  assert.match(error.message, /at most 32 roles/)
  assert.equal(error.extensions['field'], 'roles')
})

test('roles: isRoleName accepts only lower-case names that start with a letter', () => {
  assert.equal(isRoleName('admin'), true)
  assert.equal(isRoleName('team:blue.read-only_2'), true)
  assert.equal(isRoleName('Admin'), false)
  assert.equal(isRoleName('9lives'), false)
  assert.equal(isRoleName(''), false)
  assert.equal(isRoleName(42), false)
  assert.equal(isRoleName(undefined), false)
})

test('roles: requireAll is satisfied only when every listed role is held', () => {
  const req = requireAll('admin', 'ops')
  assert.equal(satisfies(['admin', 'ops'], req), true)
  assert.equal(satisfies(['admin', 'editor', 'ops'], req), true)
  assert.equal(satisfies(['admin'], req), false)
  assert.equal(satisfies(['ops'], req), false)
  assert.equal(satisfies([], req), false)
  assert.equal(satisfies(['admin'], requireAll('admin')), true)
  // no prefix or substring matches
  assert.equal(satisfies(['administrator', 'admins'], requireAll('admin')), false)
})

test('roles: requireAny is satisfied when at least one listed role is held', () => {
  const req = requireAny('editor', 'admin')
  assert.equal(satisfies(['admin'], req), true)
  assert.equal(satisfies(['editor'], req), true)
  assert.equal(satisfies(['ops', 'editor'], req), true)
  assert.equal(satisfies(['ops'], req), false)
  assert.equal(satisfies([], req), false)
  assert.equal(satisfies(['edit'], req), false)
})

test('roles: a requirement without roles, or with an invalid name, is a TypeError at construction (house style 2)', () => {
  assert.throws(() => requireAll(), TypeError)
  assert.throws(() => requireAny(), TypeError)
  assert.throws(() => requireAll('admin', 'Not Valid'), TypeError)
  assert.throws(() => requireAny(''), TypeError)
})

test('roles: describeRequirement names the roles a route needs', () => {
  assert.equal(describeRequirement(requireAll('admin')), 'the role "admin"')
  assert.equal(describeRequirement(requireAny('admin')), 'the role "admin"')
  assert.equal(describeRequirement(requireAll('admin', 'ops')), 'all of the roles "admin", "ops"')
  assert.equal(describeRequirement(requireAny('editor', 'admin', 'ops')), 'one of the roles "editor", "admin", "ops"')
})
