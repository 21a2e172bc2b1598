// The command runner: argv only, LC_ALL=C, acceptable exit codes, CommandError fields, counting, recording,
// secrets never recorded, secret files removed at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, ProcessRunner, SECRET_FILE, TallyRunner, inNetns } from '../../netns/runner.ts';

const dir = mkdtempSync(join(tmpdir(), 'zmesh-runner-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('runs argv with LC_ALL=C, counts reads and mutating commands, records them', async () => {
  const r = new ProcessRunner({ record: true, secretDir: dir });
  const env = await r.run(['env'], { mutating: false });
  assert.match(env.stdout, /^LC_ALL=C$/m);
  await r.run(['true'], { mutating: true });
  assert.deepEqual(r.counts, { reads: 1, mutating: 1 });
  assert.deepEqual(
    r.log.map((c) => [c.argv.join(' '), c.mutating, c.exitCode]),
    [
      ['env', false, 0],
      ['true', true, 0],
    ],
  );
  r.resetCounts();
  assert.deepEqual(r.counts, { reads: 0, mutating: 0 });
});

test('acceptable exit codes; otherwise a CommandError with argv, exit code, stderr and cause', async () => {
  const r = new ProcessRunner();
  assert.equal((await r.run(['false'], { mutating: false, okCodes: [0, 1] })).exitCode, 1);
  await assert.rejects(r.run(['ls', '/nonexistent-zmesh-path'], { mutating: false }), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.deepEqual(e.argv, ['ls', '/nonexistent-zmesh-path']);
    assert.equal(e.exitCode, 2);
    assert.match(e.stderr, /No such file or directory/);
    assert.equal(e.code, 'E_NETNS_COMMAND');
    assert.match(e.message, /^ls \/nonexistent-zmesh-path failed with exit code 2: /);
    assert.deepEqual({ message: (e.cause as Error).message, ...(e.cause as object) }, { message: 'exited with 2', exitCode: 2, signal: null, timedOut: false });
    return true;
  });
  await assert.rejects(r.run(['/nonexistent/binary'], { mutating: false }), (e: unknown) => e instanceof CommandError && e.exitCode === -1);
  await assert.rejects(r.run(['sleep', '5'], { mutating: false, timeoutMs: 100 }), /timed out/);
  await assert.rejects(r.run([], { mutating: false }), TypeError);
});

test('secret input is passed but never recorded; secret files are 0600 and gone afterwards', async () => {
  const r = new ProcessRunner({ record: true, secretDir: dir });
  const out = await r.run(['cat'], { input: 'top-secret', secretInput: true, mutating: true });
  assert.equal(out.stdout, 'top-secret');
  const f = await r.run(['stat', '-c', '%a', SECRET_FILE], { secretFile: 'key-material', mutating: true });
  assert.equal(f.stdout.trim(), '600');
  const c = await r.run(['cat', SECRET_FILE], { secretFile: 'key-material\n', mutating: true });
  assert.equal(c.stdout, 'key-material\n');
  assert.deepEqual(readdirSync(dir), [], 'secret files removed');
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const text = JSON.stringify(r.log);
  assert.ok(!text.includes('top-secret') && !text.includes('key-material'));
  assert.equal(r.log[0].input, '<secret>');
  assert.equal(r.log[2].secretFile, true);
  assert.deepEqual(r.log[2].argv, ['cat', SECRET_FILE]);
});

test('namespaces are entered with nsenter (setns only); the tally counts per apply', async () => {
  assert.deepEqual(inNetns('n-abcdefghij', ['nft', '-j', 'list', 'ruleset']), ['nsenter', '--net=/run/netns/n-abcdefghij', '--', 'nft', '-j', 'list', 'ruleset']);
  assert.throws(() => inNetns('../x', ['true']), /bad namespace/);
  const t = new TallyRunner(new ProcessRunner());
  await t.run(['true'], { mutating: false });
  await t.run(['true', 'x'], { mutating: true, netns: undefined });
  assert.deepEqual(t.counts, { reads: 1, mutating: 1 });
  assert.deepEqual(t.mutations, ['true x']);
});
