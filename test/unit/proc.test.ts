// netns/proc.ts: what /proc says of a process, and when a daemon of ours still holds on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { holdsOn, procArgv, procStat } from '../../netns/proc.ts';

test('procStat, procArgv and holdsOn for a live process, a gone one and a zombie', async () => {
  assert.equal(procStat(process.pid)?.ppid, process.ppid);
  assert.deepEqual(procArgv(process.pid)?.[0], process.execPath);
  assert.equal(holdsOn(process.pid, (a) => a[0] === process.execPath), true, 'running with the argv we look for');
  assert.equal(holdsOn(process.pid, () => false), false, 'running with another argv: not ours');
  assert.equal(procArgv(2 ** 22 + 7), null);
  assert.equal(holdsOn(2 ** 22 + 7, () => true), false, 'no such process');
  // A zombie (exited, not reaped yet: a shell that execs sleep in its child and waits on nothing).
  const sh = spawn('sh', ['-c', 'sleep 0 & exec sleep 2'], { stdio: 'ignore' });
  try {
    let zombie: number | null = null;
    for (let i = 0; i < 200 && zombie === null; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const kids = readFileSync(`/proc/${sh.pid}/task/${sh.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      zombie = kids.find((k) => procStat(k)?.state === 'Z') ?? null;
    }
    assert.notEqual(zombie, null, 'a zombie child to look at');
    assert.equal(procArgv(zombie!), null);
    assert.equal(holdsOn(zombie!, () => true), false, 'a zombie holds nothing');
  } finally {
    sh.kill('SIGKILL');
  }
});
