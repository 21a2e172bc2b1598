// The runner out of file descriptors, for real: a child process whose RLIMIT_NOFILE the test lowers (prlimit)
// fills every descriptor and runs commands. Each fails with a retryable E_SPAWN error naming EMFILE (before the
// fix: execa threw "subprocess.stdio is not iterable" and node's 'error' event on the ChildProcess ended the
// process), nothing crashes, and commands run again once descriptors are free. Also: a missing binary is E_SPAWN.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ProcessRunner, spawnErrorCode } from '../../netns/runner.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

test('out of descriptors: E_SPAWN (EMFILE, retryable), no crash, and recovery', { timeout: 60000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-emfile-'));
  const child = execa(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/emfile-child.ts')], {
    cwd: ROOT,
    env: { SECRET_DIR: dir },
    stdin: 'pipe',
    reject: false,
    timeout: 50000,
  });
  try {
    await new Promise<void>((res, rej) => {
      child.stdout!.once('data', () => res());
      child.once('exit', () => rej(new Error('child exited before it was ready')));
    });
    // Lowered from outside, after the child loaded its modules: node raises its soft limit to the hard one at
    // start, so both are set.
    await execa('prlimit', ['--pid', String(child.pid), '--nofile=128:128']);
    child.stdin!.end('go\n');
    const r = await child;
    assert.equal(r.exitCode, 0, `the child survived (stderr: ${r.stderr.slice(-2000)})`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.filled.code, 'EMFILE');
    for (const k of ['run', 'runNetns', 'secretFile', 'daemon']) {
      assert.equal(out[k].code, 'E_SPAWN', `${k}: ${JSON.stringify(out[k])}`);
      assert.equal(out[k].kind, 'retryable', k);
      assert.equal(out[k].name, 'CommandError', k);
      assert.match(out[k].message, /EMFILE/, k);
    }
    assert.match(out.run.message, /^true could not be started: .*EMFILE/);
    assert.equal(out.afterFree, 'back', 'commands run again once descriptors are free');
    assert.doesNotMatch(r.stderr, /Unhandled 'error' event|uncaught/i);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await child.catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing binary is E_SPAWN with ENOENT; spawnErrorCode reads spawn errors only', async () => {
  const r = new ProcessRunner();
  await assert.rejects(r.run(['/nonexistent/zmesh-binary'], { mutating: false }), (e: unknown) => {
    const err = e as { code: string; exitCode: number; message: string; hint: string };
    assert.equal(err.code, 'E_SPAWN');
    assert.equal(err.exitCode, -1);
    assert.match(err.message, /ENOENT/);
    assert.match(err.hint, /not installed/);
    return true;
  });
  assert.equal(spawnErrorCode(Object.assign(new Error('x'), { code: 'EMFILE', syscall: 'spawn ip' })), 'EMFILE');
  assert.equal(spawnErrorCode(Object.assign(new Error('x'), { code: 'EMFILE', syscall: 'open' })), null);
  assert.equal(spawnErrorCode(null), null);
});

test('daemons: a missing binary is E_SPAWN with ENOENT at once; a started one reports its exit', async (t) => {
  const r = new ProcessRunner();
  assert.throws(() => r.spawnDaemon(['/nonexistent/zmesh-daemon']), (e: unknown) => {
    const err = e as { code: string; message: string; hint: string };
    assert.equal(err.code, 'E_SPAWN');
    assert.match(err.message, /^\/nonexistent\/zmesh-daemon could not be started: .*ENOENT/);
    assert.match(err.hint, /not installed/);
    return true;
  });
  // Daemons are unreferenced (they must not keep the agent alive): this timer keeps the test's loop running.
  const keep = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keep));
  const d = r.spawnDaemon(['sh', '-c', 'exit 7']);
  assert.ok(d.pid > 0);
  assert.deepEqual(await d.exited, { exitCode: 7, signal: null });
  const k = r.spawnDaemon(['sleep', '30']);
  process.kill(k.pid, 'SIGTERM');
  assert.deepEqual(await k.exited, { exitCode: null, signal: 'SIGTERM' });
});
