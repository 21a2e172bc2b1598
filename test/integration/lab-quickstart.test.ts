// The quickstart lab end to end (as root, real namespaces, agents, wireguard-go, NAT, a dockerd per node with
// two web servers each): up to a green matrix,
// the CLI around it (matrix --json, socket + peers/diagnose, status, exec, graph), `up` again reconciles,
// and `lab down` leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { downLab, labDir, labUp, leftovers, processesOf, readState } from '../../labs/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SPEC = fileURLToPath(new URL('../../labs/quickstart.yaml', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
const name = `qs-${randomBytes(3).toString('hex')}`;

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ZMESH_LAB_DIR: root, NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('quickstart: green matrix, the commands around it, reconcile, and a clean down', { timeout: 240_000 }, async (t) => {
  const dir = labDir(name);
  const procs: { pid: number; start: number }[] = [];
  let left: string[];
  try {
    const s = await labUp(SPEC, { name });
    t.diagnostic(`quickstart green in ${s.secondsToGreen?.toFixed(1)} s`);
    assert.ok(s.green, `not green: ${JSON.stringify(s.matrix.filter((p) => !p.ok).slice(0, 5))}`);
    assert.ok(s.secondsToGreen! < 45, `green only after ${s.secondsToGreen} s`);
    // 6 tenant resources + 1 laptop + 6 web servers: 156 ordered pairs. Red (no policy): 6 · 5 = 30 pairs reach,
    // one row each (ping + identity); the 84 pairs across tenants are isolated. Blue has a policy: per pair one
    // ICMP row and one TCP row per port (echo 7777 and the rule-named 80 on nodes and the laptop, 80 on web
    // servers): 42 pairs → 108 rows, of which 80 reach (every ping, the laptop's and the nodes' TCP, web-a and
    // web-c to web-b on 80) and 28 are denied (the web servers' other TCP).
    // Both networks are dual-stack: every check is made in IPv4 and again in IPv6 (`family`), with the same
    // expectations. Names: 72 pairs inside a network (the target's name resolves to its addresses) and 84 across
    // (no answer); skipped, not passed, on nodes without a resolver.
    const m4 = s.matrix.filter((p) => p.family === 4 && p.proto !== 'dns');
    const m6 = s.matrix.filter((p) => p.family === 6);
    const names = s.matrix.filter((p) => p.proto === 'dns');
    assert.equal(s.matrix.length, 2 * (108 + 30 + 84) + 72 + 84);
    assert.equal(m4.length, 108 + 30 + 84);
    assert.equal(m4.filter((p) => p.expect === 'reach').length, 80 + 30);
    assert.equal(m4.filter((p) => p.expect === 'denied').length, 28);
    assert.equal(m4.filter((p) => p.expect === 'isolated').length, 84);
    assert.deepEqual(
      m6.map((p) => [p.from, p.to, p.proto, p.port, p.expect, p.ok]),
      m4.map((p) => [p.from, p.to, p.proto, p.port, p.expect, p.ok]),
    );
    assert.deepEqual([names.filter((p) => p.expect === 'reach').length, names.filter((p) => p.expect === 'isolated').length], [72, 84]);
    assert.ok(names.every((p) => p.ok || p.skip === 'resolver not running'), JSON.stringify(names.filter((p) => !p.ok && !p.skip).slice(0, 3)));
    const row = (from: string, to: string, proto: string, port: number | null) => m4.find((p) => p.from.endsWith(from) && p.to.endsWith(to) && p.proto === proto && p.port === port);
    assert.deepEqual(row('lan/web-a@node-a', 'lan/web-b@node-b', 'tcp', 80), { ...row('lan/web-a@node-a', 'lan/web-b@node-b', 'tcp', 80), expect: 'reach', ok: true, rule: 0, seen: 'blue/office/lan/web-b@node-b' });
    assert.deepEqual(row('lan/web-c@node-c', 'lan/web-b@node-b', 'tcp', 80), { ...row('lan/web-c@node-c', 'lan/web-b@node-b', 'tcp', 80), expect: 'reach', ok: true, rule: 0 });
    assert.deepEqual(row('lan/web-b@node-b', 'lan/web-a@node-a', 'tcp', 80), { ...row('lan/web-b@node-b', 'lan/web-a@node-a', 'tcp', 80), expect: 'denied', ok: true, rule: null, reached: false, seen: null });
    assert.deepEqual(row('lan/web-a@node-a', 'lan/web-b@node-b', 'icmp', null), { ...row('lan/web-a@node-a', 'lan/web-b@node-b', 'icmp', null), expect: 'reach', ok: true, rule: 3 });
    assert.deepEqual(row('lan/web-a@node-a', 'lan@node-a', 'tcp', 7777), { ...row('lan/web-a@node-a', 'lan@node-a', 'tcp', 7777), expect: 'denied', ok: true });
    assert.ok(s.matrix.filter((p) => p.from.endsWith('lan@laptop') && p.to.startsWith('blue/')).every((p) => p.expect === 'reach' && p.ok));
    assert.ok(s.matrix.filter((p) => p.from.startsWith('red/') && p.to.startsWith('red/') && p.proto !== 'dns').every((p) => p.proto === 'icmp+tcp' && p.expect === 'reach'));
    // Both tenants use 10.1.0.0/16: cross-tenant probes hit an endpoint of the prober's own network at the same
    // address (its resource, or its own web server there).
    const netOf = (id: string) => id.split('@')[0].split('/').slice(0, 3).join('/');
    const sameAddr = m4.filter((p) => p.expect === 'isolated' && p.seen !== null);
    assert.ok(sameAddr.length > 0 && sameAddr.every((p) => netOf(p.seen!) === netOf(p.from)), JSON.stringify(sameAddr.filter((p) => netOf(p.seen!) !== netOf(p.from)).slice(0, 3)));

    const st = readState(dir)!;
    assert.equal(Object.keys(st.holders).length, 4);
    assert.equal(Object.keys(st.agents).length, 3);
    assert.equal(Object.keys(st.dockerd).length, 3);
    // Echo services: blue's 3 nodes and laptop on 7777 and on 80 (the policy names tcp/80), red's 3 nodes on 7777.
    assert.equal(Object.keys(st.echo).length, 4 * 2 + 3);

    const m = cli(['lab', 'matrix', name, '--json']);
    assert.equal(m.status, 0, m.stderr);
    const pairs = JSON.parse(m.stdout) as { from: string; to: string; expect: string; ok: boolean; rttMs: number | null; proto: string; port: number | null; family: number }[];
    assert.equal(pairs.length, 600);
    for (const p of pairs) {
      assert.deepEqual(Object.keys(p).slice(0, 8), ['from', 'to', 'expect', 'ok', 'rttMs', 'proto', 'port', 'family']);
      assert.ok(p.proto === 'icmp' ? p.port === null : typeof p.port === 'number', JSON.stringify(p));
      if (p.expect === 'reach' && p.proto !== 'tcp' && p.proto !== 'dns') assert.ok(typeof p.rttMs === 'number' && p.rttMs > 0);
    }
    assert.equal(pairs.filter((p) => p.expect === 'denied' && p.ok && p.family === 4).length, 28);
    assert.equal(pairs.filter((p) => p.expect === 'denied' && p.ok && p.family === 6).length, 28);

    const sock = cli(['lab', 'socket', name, 'node-a']).stdout.trim();
    assert.equal(sock, `${dir}/nodes/node-a/admin.sock`);
    const peers = cli(['--socket', sock, 'peers', 'blue/office/lan', '--json']);
    assert.equal(peers.status, 0, peers.stderr);
    const pj = JSON.parse(peers.stdout) as { peers: { peer: string; handshakeAgeSec: number | null }[] };
    assert.ok(pj.peers.length >= 2 && pj.peers.every((p) => p.handshakeAgeSec !== null), peers.stdout);
    const diag = cli(['--socket', sock, 'diagnose', 'red/shop/backend']);
    assert.equal(diag.status, 0, diag.stdout + diag.stderr);
    const ps = cli(['--socket', sock, 'ps']);
    assert.equal(ps.status, 0, ps.stderr);
    assert.match(ps.stdout, /blue\/office\/web-a\s+node-a\s+running\s+10\.1\.\d+\.\d+\/24/);
    assert.match(ps.stdout, /red\/shop\/web-a\s+node-a\s+running/);

    const status = cli(['lab', 'status', name]);
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /node-c\s+node\s+nat home\s+198\.51\.100\.\d+/);
    assert.match(status.stdout, /2\/2 applied\s+2\/2 running/);

    const ex = cli(['lab', 'exec', name, 'node-c', '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.equal(ex.status, 0, ex.stderr);
    assert.match(ex.stdout, /inet 198\.51\.100\.\d+\/27/);
    assert.notEqual(cli(['lab', 'exec', name, 'node-a', '--', 'false']).status, 0);

    const dot = cli(['lab', 'graph', name]);
    assert.equal(dot.status, 0, dot.stderr);
    assert.match(dot.stdout, /^graph "lab /);
    assert.match(dot.stdout, /"node-a" -- "node-b" \[color=green3/);
    assert.match(dot.stdout, /cluster_home/);

    // Running `up` again on the running lab reconciles: nothing to push, still green.
    const again = await labUp(SPEC, { name });
    assert.ok(again.green);
    assert.equal(again.pushed.reduce((n, p) => n + p.pushed.length, 0), 0);
    t.diagnostic(`up again (reconcile, no change) green in ${again.secondsToGreen?.toFixed(1)} s`);
  } finally {
    // Everything inside the lab now: holders, agents, wireguard-go daemons, echo services, the laptop's tunnel.
    procs.push(...processesOf(name, dir));
    const t0 = Date.now();
    const d = cli(['lab', 'down', name]);
    t.diagnostic(`lab down in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${d.stdout.trim()}`);
    if (d.status !== 0) await downLab(name, dir);
    left = leftovers(name, dir, { procs });
    rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'lab down left things behind');
  // 4 holders, 3 agents, 11 echo services, 6 + 1 wireguard-go, 3 dockerd + 3 containerd, 6 shims, 6 web servers.
  assert.ok(procs.length >= 25 + 18, `tracked ${procs.length} processes`);
});
