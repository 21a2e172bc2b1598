// The admin socket listener: 0600 from creation (root only), a read-only socket 0660 for a group, a stale socket
// replaced, a non-socket file never clobbered; an unprivileged user is refused by the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildAdminApp } from '../../src/admin/app.ts';
import { listenUnix } from '../../src/admin/listen.ts';
import { call } from '../../src/admin/client.ts';
import { agentBed } from '../helpers/agent-fixtures.ts';

test('admin and read-only sockets: modes, access, stale sockets', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-sock-'));
  chmodSync(dir, 0o755);
  const bed = agentBed();
  const admin = buildAdminApp({ agent: bed.agent });
  const ro = buildAdminApp({ agent: bed.agent, readOnly: true });
  try {
    const a = join(dir, 'admin.sock');
    const r = join(dir, 'read.sock');
    await listenUnix(admin, a);
    await listenUnix(ro, r, { group: '65534' });
    assert.equal(lstatSync(a).mode & 0o777, 0o600);
    assert.equal(lstatSync(r).mode & 0o777, 0o660);
    assert.equal(lstatSync(r).gid, 65534);
    assert.equal((await call<{ node: string }>(a, 'GET', '/v1/status')).node, 'node-a');
    await assert.rejects(call(r, 'DELETE', '/v1/blueprints/a/b'), { code: 'E_READ_ONLY' });
    // nobody (uid 65534, group 65534) may read through the group socket, not through the admin socket.
    const script = `const h=require('node:http');for (const p of ['${a}','${r}']) h.get({socketPath:p,path:'/v1/status'},res=>console.log(p.endsWith('read.sock')?'read':'admin',res.statusCode)).on('error',e=>console.log(p.endsWith('read.sock')?'read':'admin',e.code));`;
    const out = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script]);
    assert.deepEqual(out.stdout.split('\n').sort(), ['admin EACCES', 'read 200']);
    // A stale socket (its process killed -9, nobody listening) is replaced; a regular file is never clobbered.
    const stale = join(dir, 'stale.sock');
    const child = execa(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`]);
    await new Promise<void>((res) => child.stdout!.once('data', () => res()));
    child.kill('SIGKILL');
    await child.catch(() => undefined);
    assert.ok(lstatSync(stale).isSocket(), 'the killed process left its socket behind');
    const again = buildAdminApp({ agent: bed.agent });
    await listenUnix(again, stale);
    assert.equal(lstatSync(stale).mode & 0o777, 0o600);
    assert.equal((await call<{ node: string }>(stale, 'GET', '/v1/status')).node, 'node-a');
    await again.close();
    const f = join(dir, 'not-a-socket');
    writeFileSync(f, 'keep');
    await assert.rejects(listenUnix(buildAdminApp({ agent: bed.agent }), f), /not a socket/);
  } finally {
    await ro.close();
    await admin.close().catch(() => undefined);
    bed.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
