/**
 * AUTH_USERNAME_ALLOW (pure): glob patterns over the RFC 8265 canonical username. `*` is any run,
 * `?` one character, everything else is literal. No server.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { canonicalizeUsername } from '../../src/auth/username.ts'
import { compileAllowList } from '../../src/users/username-allow.ts'

const allowed = (patterns: readonly string[], username: string): boolean =>
  compileAllowList(patterns)(canonicalizeUsername(username))

test('username allow-list: an empty list allows every username', () => {
  const allow = compileAllowList([])
  for (const name of ['miguel', 'a@example.com', 'x', 'ｍｉｇｕｅｌ', '']) assert.equal(allow(name), true, name)
})

test("username allow-list: '*@example.com' matches the whole domain and nothing that only contains it", () => {
  const allow = compileAllowList(['*@example.com'])
  assert.equal(allow('a@example.com'), true)
  assert.equal(allow('first.last@example.com'), true)
  assert.equal(allow('@example.com'), true, '* also matches the empty run')
  assert.equal(allow('a@example.com.evil'), false, 'anchored at the end')
  assert.equal(allow('a@xexample.com'), false, 'the @ is part of the pattern')
  assert.equal(allow('a@sub.example.com'), false)
  assert.equal(allow('a@example.org'), false)
  assert.equal(allow('example.com'), false)
  assert.equal(allow('a@example.com\nb'), false, 'anchored against newlines')
})

test("username allow-list: '?' matches exactly one character", () => {
  const allow = compileAllowList(['user?'])
  assert.equal(allow('user1'), true)
  assert.equal(allow('usera'), true)
  assert.equal(allow('useré'), true, 'one code point, not one byte')
  assert.equal(allow('user'), false)
  assert.equal(allow('user12'), false)
})

test("username allow-list: regex metacharacters in patterns are literal ('a.b' does not match 'axb')", () => {
  assert.equal(allowed(['a.b'], 'a.b'), true)
  assert.equal(allowed(['a.b'], 'axb'), false)
  assert.equal(allowed(['a+b'], 'a+b'), true)
  assert.equal(allowed(['a+b'], 'aab'), false)
  assert.equal(allowed(['(a|b)'], 'a'), false)
  assert.equal(allowed(['[ab]'], 'a'), false)
  assert.equal(allowed(['^a$'], '^a$'), true)
  assert.equal(allowed(['a{2}'], 'aa'), false)
  assert.equal(allowed(['a\\d'], 'a1'), false)
  assert.equal(allowed(['*@example.com'], 'a@example-com'), false)
})

test("username allow-list: '-' in a pattern is literal ('*@my-company.com', 'first-*')", () => {
  // '-' is allowed in usernames and common in domains, so it must be usable in a pattern.
  const allow = compileAllowList(['*@my-company.com', 'first-*'])
  assert.equal(allow('a@my-company.com'), true)
  assert.equal(allow('first-last'), true)
  assert.equal(allow('a@my_company.com'), false)
  assert.equal(allow('firstxlast'), false)
})

test('username allow-list: patterns are compared case- and width-insensitively (RFC 8265 §3.4)', () => {
  assert.equal(allowed(['*@EXAMPLE.COM'], 'a@example.com'), true)
  assert.equal(compileAllowList(['*@EXAMPLE.COM'])('a@example.com'), true)
  assert.equal(allowed(['*@Example.Com'], 'Bob@EXAMPLE.com'), true)
  assert.equal(allowed(['*@ｅｘａｍｐｌｅ.com'], 'a@example.com'), true, 'full-width pattern')
  assert.equal(allowed(['*@example.com'], 'ａ@ＥＸＡＭＰＬＥ.com'), true, 'full-width username')
  assert.equal(allowed(['*@EXAMPLE.COM'], 'a@example.org'), false)
})

test('username allow-list: a username is allowed when any pattern matches', () => {
  const allow = compileAllowList(['*@example.com', '*@example.org', 'ops'])
  assert.equal(allow('a@example.com'), true)
  assert.equal(allow('b@example.org'), true)
  assert.equal(allow('ops'), true)
  assert.equal(allow('ops2'), false)
  assert.equal(allow('c@example.net'), false)
})
