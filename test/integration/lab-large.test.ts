// The six-node example lab: 3 public and 3 hidden nodes behind 2 NAT routers (two sharing one), 3 tenants
// with overlapping ranges (one with two networks), 2 devices (one behind a NAT), shaped underlays. It reaches a
// green matrix; `up` again with one node more and one less reconciles (kept members keep addresses and
// plans) and is green again; then `lab down` leaves nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { downAndCheck, labDir, labUp, openLab } from '../../labs/index.ts';

const SPEC = fileURLToPath(new URL('../../labs/examples/six-nodes.yaml', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
const name = `six-${randomBytes(3).toString('hex')}`;

test('six nodes, two NAT routers, three tenants with overlapping ranges: green, reconcile, down', { timeout: 400_000 }, async (t) => {
  const dir = labDir(name);
  const left: string[] = [];
  try {
    const s = await labUp(SPEC, { name });
    t.diagnostic(`six-node lab green in ${s.secondsToGreen?.toFixed(1)} s (${s.matrix.length} pairs)`);
    assert.ok(s.green, `not green: ${JSON.stringify(s.matrix.filter((p) => !p.ok).slice(0, 5))}`);
    assert.ok(s.secondsToGreen! < 120);
    // 7 amber (6 nodes + phone), 4 blue, 4 cyan store (3 + tablet), 2 cyan backup = 17 endpoints.
    assert.equal(s.endpoints, 17);
    // Every network is dual-stack: each pair is checked over IPv4 and IPv6 (\`family\`), and by name (proto dns).
    const m4 = s.matrix.filter((p) => p.family === 4 && p.proto !== 'dns');
    assert.equal(m4.length, 17 * 16);
    assert.equal(s.matrix.filter((p) => p.family === 6 && p.proto !== 'dns').length, 17 * 16);
    assert.equal(s.matrix.filter((p) => p.proto === 'dns').length, 17 * 16);
    assert.equal(m4.filter((p) => p.expect === 'reach').length, 7 * 6 + 4 * 3 + 4 * 3 + 2);
    // Same tenant, other network: isolated too.
    const sameTenant = s.matrix.filter((p) => p.from.startsWith('cyan/data/store@') && p.to.startsWith('cyan/data/backup@'));
    assert.ok(sameTenant.length > 0 && sameTenant.every((p) => p.expect === 'isolated' && p.ok));

    const before = openLab(name);
    // Reconcile: hid-3 leaves amber's network, a new public node pub-4 joins it.
    const text = readFileSync(SPEC, 'utf8')
      .replace(/^ {2}- name: pub-3$/m, '  - name: pub-3\n  - name: pub-4')
      .replace('nodes: [pub-1, pub-2, pub-3, hid-1, hid-2, hid-3]', 'nodes: [pub-1, pub-2, pub-3, pub-4, hid-1, hid-2]');
    const spec2 = join(root, 'six-2.yaml');
    writeFileSync(spec2, text);
    const r = await labUp(spec2, { name });
    t.diagnostic(`reconciled (+pub-4, hid-3 out of amber) green in ${r.secondsToGreen?.toFixed(1)} s`);
    assert.ok(r.green, `not green after reconcile: ${JSON.stringify(r.matrix.filter((p) => !p.ok).slice(0, 5))}`);
    const after = openLab(name);
    for (const n of before.layout.nodes) {
      const m = after.layout.nodes.find((x) => x.name === n.name)!;
      assert.deepEqual([m.address, m.port, m.ns], [n.address, n.port, n.ns], `${n.name} keeps its underlay`);
    }
    const amber0 = before.plans.find((p) => p.plan.tenant === 'amber')!.plan.networks[0];
    const amber1 = after.plans.find((p) => p.plan.tenant === 'amber')!.plan.networks[0];
    for (const res of amber1.resources) {
      const old = amber0.resources.find((x) => x.node === res.node);
      if (old) assert.deepEqual([res.subnet, res.listenPort, res.publicKey], [old.subnet, old.listenPort, old.publicKey], `${res.node} keeps its resource`);
    }
    assert.ok(!amber1.resources.some((x) => x.node === 'hid-3'));
    assert.equal(after.state.blueprints['amber/mesh'].version, 2);
  } finally {
    left.push(...(await downAndCheck(name, dir)));
    rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});
