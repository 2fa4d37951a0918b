/** Generators of docs/errors.md and docs/configuration.md (pure; a test checks the files match). */
import { SETTINGS, flagName } from '../config/schema.ts'
import { ERROR_CATALOGUE, type ErrorCode } from '../errors.ts'

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

export function errorsMarkdown(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from src/errors.ts by `npm run docs`. Do not edit by hand. -->',
    '',
    'Every error is an RFC 9457 `application/problem+json` body with `type`, `title`, `status`, `detail` and a',
    'stable `code` from this table. `type` is `/errors#<code>`, relative to the server. Codes are never',
    'renamed or reused.',
    '',
    '| Code | Status | Meaning | How to fix |',
    '|---|---|---|---|',
  ]
  for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
    const e = ERROR_CATALOGUE[code]
    lines.push(`| \`${code}\` | ${e.status} | ${cell(e.meaning)} | ${cell(e.fix)} |`)
  }
  return `${lines.join('\n')}\n`
}

export function configurationMarkdown(): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs`. Do not edit by hand. -->',
    '',
    'Every setting is an environment variable; `npx rest-auth serve` and `npx rest-auth migrate` also take it',
    'as a flag (`--database-url sqlite:./x.db`), which wins over the environment. Values are checked at start;',
    'a bad value stops the server with a message naming the variable.',
    '',
    '| Variable | Flag | Default | Meaning |',
    '|---|---|---|---|',
  ]
  for (const s of SETTINGS) {
    const def = s.defaultDoc ?? (s.default === undefined ? 'unset' : `\`${s.default}\``)
    lines.push(`| \`${s.env}\` | \`--${flagName(s)}\` | ${def} | ${cell(s.doc)} |`)
  }
  return `${lines.join('\n')}\n`
}
