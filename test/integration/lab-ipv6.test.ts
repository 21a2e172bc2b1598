// A lab over an IPv6-only underlay (labs/examples/ipv6.yaml, `underlay: ipv6`): two public nodes, a hidden node
// and a laptop behind a NAT66 home router, two tenants with dual-stack networks. Up to a green matrix in both
// families (every check made in IPv4 and in IPv6), names asked at each node's resolver (skipped, not passed,
// where no resolver runs), the underlay really IPv6 only, peers dialled at [v6]:port and the hidden node seen
// at its router's WAN address; `lab down` leaves nothing behind. Bounded: 120 s in all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { downAndCheck, labDir, labExecArgv, labUp, openLab, type PairResult } from '../../labs/index.ts';
import { SKIP_NO_RESOLVER } from '../../labs/matrix.ts';

const run = promisify(execFile);
const SPEC = fileURLToPath(new URL('../../labs/examples/ipv6.yaml', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const name = `h4-${randomBytes(3).toString('hex')}`;

async function exec(host: string, argv: string[]): Promise<string> {
  const a = labExecArgv(name, host, argv);
  return (await run(a[0], a.slice(1), { encoding: 'utf8', timeout: 10_000 })).stdout;
}

const bad = (rows: PairResult[]) => JSON.stringify(rows.filter((r) => !r.ok && !r.skip).slice(0, 5));

test('IPv6-only underlay: green in both families, NAT66, endpoints [v6]:port, names', { timeout: 120_000 }, async (t) => {
  const dir = labDir(name);
  let left: string[];
  try {
    const s = await labUp(SPEC, { name });
    t.diagnostic(`green in ${s.secondsToGreen?.toFixed(1)} s`);
    assert.ok(s.green, `not green: ${bad(s.matrix)}`);
    assert.ok(s.secondsToGreen! < 60, `green only after ${s.secondsToGreen} s`);

    // 7 endpoints (blue: 3 resources + laptop, red: 3 resources), 42 ordered pairs, none with a policy: one row
    // per pair and family; every network is dual-stack, so IPv6 has as many rows as IPv4.
    const v4 = s.matrix.filter((r) => r.proto !== 'dns' && r.family === 4);
    const v6 = s.matrix.filter((r) => r.proto !== 'dns' && r.family === 6);
    assert.equal(v4.length, 42);
    assert.equal(v6.length, 42);
    assert.equal(v6.filter((r) => r.expect === 'reach').length, 4 * 3 + 3 * 2);
    assert.equal(v6.filter((r) => r.expect === 'isolated').length, 24);
    assert.ok(v6.every((r) => r.ok), bad(v6));
    assert.ok(v6.filter((r) => r.expect === 'reach').every((r) => typeof r.rttMs === 'number' && r.seen === r.to));

    // Names: one row per pair (a name the source's own network has too is not asked; here none is shared).
    const names = s.matrix.filter((r) => r.proto === 'dns');
    assert.equal(names.length, 42);
    const skipped = names.filter((r) => r.skip);
    t.diagnostic(`names: ${names.length - skipped.length} checked, ${skipped.length} skipped (${[...new Set(skipped.map((r) => r.skip))].join(', ') || '-'})`);
    assert.ok(skipped.every((r) => r.skip === SKIP_NO_RESOLVER && !r.ok));
    assert.ok(names.filter((r) => !r.skip).every((r) => r.ok), bad(names));
    const laptopB = names.find((r) => r.from === 'blue/office/lan@laptop' && r.to === 'blue/office/lan@node-b')!;
    assert.equal(laptopB.name, 'node-b.lan');
    assert.equal(names.find((r) => r.from === 'red/shop/backend@node-a' && r.to === 'blue/office/lan@node-b')!.expect, 'isolated');

    // The underlay is IPv6 only: no IPv4 address on the nodes' eth0, the internet's /64 on the public ones.
    const { layout, plans } = openLab(name);
    assert.equal(layout.underlay, 'ipv6');
    assert.equal((await exec('node-a', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).trim(), '');
    const a = layout.nodes.find((n) => n.name === 'node-a')!;
    assert.match(a.address6!, /^2001:db8:cb00:7100::[0-9a-f]+$/);
    assert.match(await exec('node-a', ['ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global']), new RegExp(`inet6 ${a.address6}/64`));

    // Peers dial public nodes at [v6]:port; node-a knows node-c (behind NAT66) at its router's WAN address.
    const blue = plans.find((p) => p.key === 'blue/office')!.plan.networks[0];
    const toA = blue.resources.find((r) => r.node === 'node-c')!.peers.find((p) => p.node === 'node-a')!;
    assert.equal(toA.endpoint, `[${a.address6}]:${blue.resources.find((r) => r.node === 'node-a')!.listenPort}`);
    const endpoints = await exec('node-a', ['ip', 'netns', 'exec', `n-${blue.id}`, 'wg', 'show', 'all', 'endpoints']);
    const cKey = blue.resources.find((r) => r.node === 'node-c')!.publicKey;
    const seen = endpoints.split('\n').find((l) => l.includes(cKey))?.trim().split('\t').pop() ?? '';
    assert.match(seen, new RegExp(`^\\[${layout.nats[0].wanAddress6}\\]:\\d+$`), endpoints);
  } finally {
    left = await downAndCheck(name, dir);
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});
