/**
 * The benchmark's child processes (scripts/bench/processes.ts): a server runs in a process group of
 * its own, in the benchmark's session (so the kernel's autogroup scheduling does not hold the server
 * to a share of the machine apart from the load generator's), and stopping it stops its whole group.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnChild, stopChild } from '../../scripts/bench/processes.ts'

/** Process group and session of a pid, from /proc/<pid>/stat (fields 5 and 6). */
function groupAndSession(pid: number | 'self'): { pgrp: number; session: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { pgrp: Number(fields[2]), session: Number(fields[3]) }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('spawnChild: node itself (same pid), leading a group of its own in our session; stopChild ends the group, grandchildren too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rest-auth-proc-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  // a parent that starts a grandchild ignoring SIGTERM (as a busy worker might), and prints its pid
  const script = [
    "const { spawn } = require('node:child_process')",
    "const g = spawn(process.execPath, ['-e', \"process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)\"], { stdio: 'ignore' })",
    "console.log('grandchild ' + g.pid)",
    'setInterval(() => {}, 1000)',
  ].join('\n')
  const child = spawnChild('test child', ['-e', script], process.env, dir, join(dir, 'child.log'))
  let grandchildPid = 0
  t.after(async () => {
    // whatever failed above: nothing left running (the child's pipes would hold the test process open)
    await stopChild(child, 1_000)
    if (grandchildPid > 0 && alive(grandchildPid)) process.kill(grandchildPid, 'SIGKILL')
  })
  let grandchild = 0
  for (let i = 0; i < 100 && grandchild === 0; i++) {
    await sleep(50)
    grandchild = Number(/grandchild (\d+)/.exec(child.tail())?.[1] ?? 0)
  }
  grandchildPid = grandchild
  assert.ok(grandchild > 0, `the child printed its grandchild's pid: ${child.tail()}`)
  assert.equal(readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim(), 'node', 'the pid is node itself (perl exec-ed it)')
  const own = groupAndSession('self')
  const its = groupAndSession(child.pid)
  assert.equal(its.pgrp, child.pid, 'the child leads its own process group')
  assert.notEqual(its.pgrp, own.pgrp)
  assert.equal(its.session, own.session, 'in our session, not a new one')
  assert.equal(groupAndSession(grandchild).pgrp, child.pid, 'the grandchild is in the group')

  await stopChild(child, 1_000)
  assert.equal(alive(child.pid), false)
  for (let i = 0; i < 40 && alive(grandchild); i++) await sleep(50)
  assert.equal(alive(grandchild), false, 'the grandchild that ignored SIGTERM went down with the group')
})
