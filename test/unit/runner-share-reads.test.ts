// ProcessRunner.shareReads (issue #18, no-op reconcile cost): within a scope a read-only command run again with the
// same argv, namespace, input and exit codes answers from its first run; a mutating command forgets every read;
// secrets are never kept; a failed read is run again; a task started inside a scope and still running after it reads
// for itself. Real processes (`date +%N` differs on every run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ProcessRunner } from '../../netns/runner.ts';

const NOW = ['date', '+%s%N'];
const read = (r: ProcessRunner, opts: { input?: string; okCodes?: number[] } = {}) => r.run(NOW, { mutating: false, ...opts }).then((x) => x.stdout);

test('in a scope a read runs once; a mutating command forgets it; outside every read runs', async () => {
  const r = new ProcessRunner();
  assert.notEqual(await read(r), await read(r), 'outside a scope');
  await r.shareReads(async () => {
    const a = await read(r);
    assert.equal(await read(r), a, 'the same read answers from its first run');
    assert.equal(r.sharedRead(NOW, {}) !== undefined, true);
    assert.equal(r.sharedRead(NOW, { okCodes: [0, 1] }), undefined, 'other accepted exit codes: another read');
    assert.notEqual(await read(r, { input: 'x' }), a, 'another input: another read');
    await r.run(['true'], { mutating: true });
    assert.equal(r.sharedRead(NOW, {}), undefined, 'forgotten after a mutating command');
    assert.notEqual(await read(r), a);
    // Concurrent callers share one process.
    const before = r.counts.reads;
    await r.run(['true'], { mutating: true });
    const [x, y] = await Promise.all([read(r), read(r)]);
    assert.equal(x, y);
    assert.equal(r.counts.reads - before, 1);
  });
  assert.equal(r.sharedRead(NOW, {}), undefined, 'nothing outside');
});

test('secrets are never kept; a failed read runs again; a task outliving its scope reads for itself', async () => {
  const r = new ProcessRunner();
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-share-'));
  const flag = join(dir, 'ok');
  try {
    let later: Promise<string[]> | null = null;
    let first = '';
    await r.shareReads(async () => {
      const s1 = await r.run(NOW, { mutating: false, input: 'k', secretInput: true });
      const s2 = await r.run(NOW, { mutating: false, input: 'k', secretInput: true });
      assert.notEqual(s1.stdout, s2.stdout, 'a secret-input read is not kept');
      assert.equal(r.sharedRead(NOW, { input: 'k' }), undefined);
      const probe = ['test', '-f', flag];
      await assert.rejects(r.run(probe, { mutating: false }));
      writeFileSync(flag, '');
      assert.equal((await r.run(probe, { mutating: false })).exitCode, 0, 'the failed read was not kept');
      first = await read(r);
      // Started inside, finishing after the scope ended: it must not answer from the scope's reads.
      later = new Promise<void>((res) => setTimeout(res, 30)).then(async () => [await read(r), await read(r)]);
      assert.equal(await read(r), first);
    });
    const [a, b] = await later!;
    assert.notEqual(a, first, 'the task that outlived the scope ran its own read');
    assert.notEqual(b, a, 'and does not share its reads among themselves either (the scope is over)');
    assert.ok(existsSync(flag));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forgetReads and a daemon started in the scope forget every shared read', async () => {
  const r = new ProcessRunner();
  await r.shareReads(async () => {
    const a = await read(r);
    r.forgetReads();
    assert.equal(r.sharedRead(NOW, {}), undefined);
    const b = await read(r);
    assert.notEqual(b, a);
    assert.notEqual(r.sharedRead(NOW, {}), undefined);
    // `true` ends at once by itself (the handle is unreferenced: nothing waits for it).
    r.spawnDaemon(['true'], { newSession: false });
    assert.equal(r.sharedRead(NOW, {}), undefined, 'a daemon is a change like a mutating command');
  });
});
