/**
 * Where the CLI gets a password: never from argv (visible in `ps` and shell history). From stdin
 * (`--password-stdin`, for scripts), generated (`--generate-password`), or typed at a prompt without echo.
 */
import { randomBytes } from 'node:crypto'

export class PasswordInputError extends Error {}

export async function readStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  // one trailing newline is the end of the line, not part of the password
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
}

/** 24 random bytes as base64url: 32 characters, 192 bits. */
export function generatePassword(): string {
  return randomBytes(24).toString('base64url')
}

/** Reads one line from a TTY with echo off. */
export function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt)
    let value = ''
    stdin.setRawMode(true)
    stdin.resume()
    const finish = (error?: Error) => {
      stdin.setRawMode(false)
      stdin.pause()
      stdin.removeListener('data', onData)
      process.stderr.write('\n')
      if (error) reject(error)
      else resolve(value)
    }
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish()
        if (ch === '\u0003') return finish(new PasswordInputError('cancelled'))
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('')
        else if (ch >= ' ') value += ch
      }
    }
    stdin.on('data', onData)
  })
}

export interface PasswordSource {
  readonly passwordStdin: boolean
  readonly generatePassword: boolean
}

/** `generated` is true when the caller must show the password (once). */
export async function obtainPassword(source: PasswordSource): Promise<{ password: string; generated: boolean }> {
  if (source.passwordStdin && source.generatePassword) throw new PasswordInputError('use either --password-stdin or --generate-password')
  if (source.generatePassword) return { password: generatePassword(), generated: true }
  if (source.passwordStdin) {
    const password = await readStdin()
    if (password === '') throw new PasswordInputError('no password on stdin')
    return { password, generated: false }
  }
  if (!process.stdin.isTTY) throw new PasswordInputError('no terminal to ask for the password: use --password-stdin or --generate-password')
  const first = await promptHidden('Password: ')
  const again = await promptHidden('Repeat password: ')
  if (first !== again) throw new PasswordInputError('the passwords do not match')
  return { password: first, generated: false }
}
