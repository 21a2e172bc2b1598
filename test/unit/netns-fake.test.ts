// Convergence against a fake OS (test/helpers/fake-os.ts): random sequences of desired states, with random
// drift in between, must each leave exactly the state expected for that desired state (compared as text);
// a re-apply issues no mutating command; the fake fails on any command it did not expect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom, x25519KeyPair, type Key } from '../../src/crypto/index.ts';
import { Driver, allocateEgressBlock, canonicalCidr, egressBlocked, type ApplyReport, type DesiredResource } from '../../netns/index.ts';
import { egressStartIndex } from '../../netns/ip.ts';
import { FakeOs } from '../helpers/fake-os.ts';
import { handPlan } from '../helpers/plan.ts';

const stateDir = mkdtempSync(join(tmpdir(), 'zmesh-fake-'));
test.after(() => rmSync(stateDir, { recursive: true, force: true }));

function driverFor(os: FakeOs, clock: () => number = () => 1_700_000_000_000): Driver {
  return new Driver({ runner: os, backend: 'kernel', stateDir, socketDir: join(stateDir, 'wg'), clock });
}

function ok(r: ApplyReport, os: FakeOs): void {
  assert.deepEqual(os.unexpected, [], 'the fake saw only expected commands');
  const failures = [...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)];
  assert.ok(r.ok, JSON.stringify(failures, null, 1));
}

/**
 * The dump the fake must show for a desired state: written from the layout rules, not from the driver. The
 * egress sets come from what the fake host is (eth0 192.0.2.2/24, default via 192.0.2.1) and the peers' endpoints.
 */
function expectedDump(desired: DesiredResource[]): string {
  const host: string[] = ['host'];
  const nss: string[] = [];
  const sorted = [...desired].sort((a, b) => (a.networkId < b.networkId ? -1 : 1));
  const hostTables: string[] = [];
  const blocked = egressBlocked({
    addresses: ['192.0.2.2/24'],
    routes: ['192.0.2.0/24'],
    peerEndpoints: desired.flatMap((d) => d.resource.peers.flatMap((p) => (p.endpoint ? [p.endpoint] : []))),
  });
  for (const d of sorted) {
    const id = d.networkId;
    const r = d.resource;
    const eg = d.egress ? allocateEgressBlock(id, ['192.0.2.2/24']) : null;
    if (eg) {
      host.push(`  link ze-${id} veth mtu 1500 up alias zmesh:${id} addrs ${eg.hostAddr} peer n-${id}/eg-${id}`);
      hostTables.push(
        `  nft inet zmesh_h_${id}`,
        `    set blocked4 ipv4_addr: ${blocked.v4.join(',')}`,
        `    set blocked6 ipv6_addr: ${blocked.v6.join(',')}`,
        '    input filter/input: tenant-to-host',
        '    forward filter/forward: egress-spoof tenant-to-tenant egress-uplink egress-conns egress-blocked egress-blocked6 egress-v6 replies-in no-new-inbound',
        '    postrouting nat/postrouting: egress-masquerade',
      );
    }
    const prefix = r.subnet.split('/')[1];
    const lines = [`netns n-${id}`, `  link b-${id} bridge mtu 1420 up alias zmesh:${id} addrs ${r.gateway}/${prefix}`];
    if (eg) lines.push(`  link eg-${id} veth mtu 1500 up alias zmesh:${id} addrs ${eg.tenantAddr} peer host/ze-${id}`);
    lines.push(`  link lo loopback mtu 65536 up alias zmesh:${id} addrs -`);
    lines.push(`  link w-${id} wireguard mtu 1420 up alias zmesh:${id} addrs ${r.wgAddress}`);
    lines.push(`    wg key ${r.publicKey} port ${r.listenPort}`);
    for (const p of [...r.peers].sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1))) {
      const allowed = [...new Set(p.allowedIps.map((c) => canonicalCidr(c)))].sort().join(',') || '-';
      lines.push(`    peer ${p.publicKey} endpoint ${p.endpoint ?? '-'} allowed ${allowed} keepalive ${p.persistentKeepalive || 'off'}`);
    }
    const routes = [`${canonicalCidr(d.ipRange)} dev w-${id} static`, `${canonicalCidr(r.subnet)} dev b-${id} kernel`];
    if (eg) routes.push(`default via ${eg.hostAddr.split('/')[0]} dev eg-${id} static`, `${eg.block} dev eg-${id} kernel`);
    for (const x of routes.sort()) lines.push(`  route ${x}`);
    lines.push(
      '  forwarding on',
      `  nft inet zmesh_${id}`,
      // Connection tracking (the outside rules) only in namespaces with an egress veth.
      `    input filter/input: ${d.ipRange6 ? '' : 'in-ra '}in-spoof${d.ipRange6 ? ' in-spoof6' : ''}${eg ? ' in-established in-drop-outside' : ''}`,
      `    forward filter/forward: mss-clamp fwd-spoof${eg ? ' tunnel-egress fwd-established fwd-drop-outside' : ''}`,
      '    output filter/output: out-spoof',
    );
    if (eg) lines.push('    postrouting nat/postrouting: egress-masquerade');
    nss.push(...lines);
  }
  return [...host, ...hostTables, ...nss].join('\n') + '\n';
}

/** A small deterministic PRNG over seededRandom. */
function prng(seed: string): (n: number) => number {
  const bytes = seededRandom(seed);
  return (n) => bytes(4).reduce((acc, b) => acc * 256 + b, 0) % n;
}

interface Pool {
  identity: Key;
  variants: DesiredResource[][];
}

/** Four networks on node "h", each in five variants (peers, endpoints, keepalive, egress, a new key). */
function makePool(seed: string): Pool {
  const base = handPlan({ ipRange: '10.10.0.0/16', nodes: [{ node: 'h', underlay: '198.51.100.1' }], seed: `${seed}-id` });
  const identity = base.identity.get('h')!;
  const variants: DesiredResource[][] = [];
  const starts = new Set<number>();
  for (let n = 0; n < 4; n++) {
    const nodes = [
      { node: 'h', underlay: '198.51.100.1' },
      { node: 'p1', underlay: '198.51.100.11' },
      { node: 'p2', underlay: '198.51.100.12' },
      { node: 'p3', hidden: true, accessNode: 'h' },
    ];
    const plan = handPlan({ ipRange: `10.${20 + n}.0.0/16`, nodes, seed: `${seed}-${n}`, identity: new Map([['h', identity]]), basePort: 52000 + n * 10 });
    assert.ok(!starts.has(egressStartIndex(plan.networkId)), 'distinct egress blocks');
    starts.add(egressStartIndex(plan.networkId));
    const d0 = plan.desired.get('h')!;
    const v: DesiredResource[] = [d0];
    const v1 = structuredClone(d0);
    v1.egress = true;
    v1.resource.peers[0].endpoint = '198.51.100.99:1234';
    v1.resource.peers[1].persistentKeepalive = 25;
    v.push(v1);
    const v2 = structuredClone(d0);
    v2.resource.peers = v2.resource.peers.slice(1);
    v2.resource.peers[0].allowedIps = [...v2.resource.peers[0].allowedIps, '10.99.0.0/24'];
    v.push(v2);
    const v3 = structuredClone(d0);
    v3.egress = true;
    v3.resource.peers = [];
    v.push(v3);
    const rekey = handPlan({ ipRange: `10.${20 + n}.0.0/16`, nodes, seed: `${seed}-${n}-rekey`, identity: new Map([['h', identity]]), networkId: plan.networkId, basePort: 52005 + n * 10 });
    v.push(rekey.desired.get('h')!);
    variants.push(v);
  }
  return { identity, variants };
}

type Drift = (os: FakeOs, rnd: (n: number) => number) => string | null;

const drifts: Drift[] = [
  (os, rnd) => {
    const ns = [...os.namespaces.values()][rnd(os.namespaces.size)];
    const l = ns && [...ns.links.values()].filter((x) => x.name !== 'lo')[rnd(ns.links.size - 1)];
    if (!l) return null;
    os.removeLink(l);
    return `deleted link ${l.name}`;
  },
  (os, rnd) => {
    const ns = [...os.namespaces.values()][rnd(os.namespaces.size)];
    if (!ns || ns.routes.length === 0) return null;
    const r = ns.routes.splice(rnd(ns.routes.length), 1)[0];
    return `deleted route ${r.dst}`;
  },
  (os, rnd) => {
    const ns = [...os.namespaces.values()][rnd(os.namespaces.size)];
    const l = ns && [...ns.links.values()].find((x) => x.addrs.length > 0 && x.kind !== 'loopback');
    if (!l) return null;
    const a = l.addrs.shift()!;
    if (l.addrs.length === 0) ns.routes = ns.routes.filter((r) => r.dev !== l.name);
    return `deleted address ${a}`;
  },
  (os, rnd) => {
    const all = [os.host, ...os.namespaces.values()].filter((n) => n.nft.size > 0);
    const ns = all[rnd(all.length)];
    if (!ns) return null;
    const t = [...ns.nft.values()][0];
    t.rules = [];
    return `flushed nft ${t.name}`;
  },
  (os, rnd) => {
    const ns = [...os.namespaces.values()][rnd(os.namespaces.size)];
    const w = ns && [...ns.links.values()].find((l) => l.wg)?.wg;
    const k = w && [...w.peers.keys()][0];
    if (!w || !k) return null;
    w.peers.delete(k);
    return `removed peer ${k}`;
  },
  (os, rnd) => {
    const ns = [...os.namespaces.values()][rnd(os.namespaces.size)];
    const l = ns && [...ns.links.values()].find((x) => x.kind === 'bridge');
    if (!l) return null;
    l.up = false;
    l.mtu = 9000;
    ns.routes = ns.routes.filter((r) => r.dev !== l.name);
    return `bridge ${l.name} down, mtu 9000`;
  },
  (os) => {
    const ns = [...os.namespaces.values()][0];
    if (!ns) return null;
    ns.forwarding = false;
    return `forwarding off in ${ns.name}`;
  },
  (os, rnd) => {
    // Someone empties the blocked set of a host table (its rules, and so their comments, stay).
    const tables = [...os.host.nft.values()].filter((t) => t.sets.length > 0);
    const t = tables[rnd(tables.length)];
    if (!t) return null;
    t.sets[0].elements = [];
    return `flushed set ${t.sets[0].name} of ${t.name}`;
  },
];

test('random sequences of desired states converge to the expected dump; re-applies are no-ops', async () => {
  let drifted = 0;
  for (let s = 0; s < 12; s++) {
    const rnd = prng(`seq-${s}`);
    const pool = makePool(`pool-${s}`);
    const os = new FakeOs();
    const driver = driverFor(os);
    for (let step = 0; step < 8; step++) {
      const desired: DesiredResource[] = [];
      for (const v of pool.variants) if (rnd(3) > 0) desired.push(v[rnd(v.length)]);
      const r = await driver.apply(desired, pool.identity);
      ok(r, os);
      const where = `sequence ${s} step ${step}`;
      assert.equal(os.dump(), expectedDump(desired), where);
      const before = os.mutatingCount();
      const again = await driver.apply(desired, pool.identity);
      ok(again, os);
      assert.equal(again.commands.mutating, 0, `${where}: no-op re-apply, got ${again.mutations.join(' | ')}`);
      assert.equal(os.mutatingCount(), before);
      if (desired.length > 0 && rnd(2) === 0) {
        const what = drifts[rnd(drifts.length)](os, rnd);
        if (what) {
          drifted++;
          const fixed = await driver.apply(desired, pool.identity);
          ok(fixed, os);
          assert.ok(fixed.commands.mutating > 0, `${where}: drift "${what}" was repaired`);
          assert.equal(os.dump(), expectedDump(desired), `${where} after drift "${what}"`);
        }
      }
    }
    const end = await driver.apply([], pool.identity);
    ok(end, os);
    assert.equal(os.dump(), 'host\n', `sequence ${s}: everything removed`);
  }
  assert.ok(drifted >= 10, `drift was injected and repaired ${drifted} times`);
});

test('changing one peer among 1,000 is one wg set call with that peer only', async () => {
  const os = new FakeOs();
  const driver = driverFor(os);
  const plan = handPlan({ ipRange: '10.30.0.0/16', nodes: [{ node: 'h', underlay: '198.51.100.1' }], seed: 'big' });
  const d = plan.desired.get('h')!;
  const rnd = seededRandom('peers');
  d.resource.peers = Array.from({ length: 1000 }, (_, i) => ({
    node: `p${i}`,
    kind: 'node' as const,
    publicKey: x25519KeyPair(rnd(32)).publicKey.toString(),
    endpoint: `198.51.100.${(i % 250) + 1}:${40000 + i}`,
    allowedIps: [`10.${31 + Math.floor(i / 250)}.${i % 250}.0/24`],
    persistentKeepalive: null,
  }));
  ok(await driver.apply([d], plan.identity.get('h')!), os);
  const changed = structuredClone(d);
  changed.resource.peers[500].allowedIps = ['10.99.1.0/24'];
  const r = await driver.apply([changed], plan.identity.get('h')!);
  ok(r, os);
  const key = changed.resource.peers[500].publicKey;
  assert.deepEqual(r.mutations, [`[n-${plan.networkId}] wg set w-${plan.networkId} peer ${key} allowed-ips 10.99.1.0/24`]);
  const removed = structuredClone(changed);
  removed.resource.peers.splice(10, 1);
  const r2 = await driver.apply([removed], plan.identity.get('h')!);
  assert.deepEqual(r2.mutations, [`[n-${plan.networkId}] wg set w-${plan.networkId} peer ${changed.resource.peers[10].publicKey} remove`]);
});

test("a roamed peer's endpoint is not overwritten within 3 minutes of a handshake while the plan names the same (injected clock)", async () => {
  let now = 1_700_000_000_000;
  const os = new FakeOs();
  const driver = driverFor(os, () => now);
  const plan = handPlan({ ipRange: '10.40.0.0/16', nodes: [{ node: 'h', underlay: '198.51.100.1' }, { node: 'p', underlay: '198.51.100.2' }], seed: 'roam' });
  const d = plan.desired.get('h')!;
  const id = plan.identity.get('h')!;
  ok(await driver.apply([d], id), os);
  const wg = os.namespaces.get(`n-${plan.networkId}`)!.links.get(`w-${plan.networkId}`)!.wg!;
  const peer = wg.peers.get(d.resource.peers[0].publicKey)!;
  peer.endpoint = '203.0.113.50:6000'; // the peer roamed
  peer.latestHandshake = now / 1000 - 30;
  const r = await driver.apply([d], id);
  assert.equal(r.commands.mutating, 0, 'roamed peer left alone');
  now += 200_000; // 3 min 20 s after that handshake
  const r2 = await driver.apply([d], id);
  assert.deepEqual(r2.mutations, [`[n-${plan.networkId}] wg set w-${plan.networkId} peer ${d.resource.peers[0].publicKey} endpoint 198.51.100.2:51821`]);
});

test('endpoint authority: a re-planned endpoint is set at once despite a recent handshake, also after a driver restart', async () => {
  const now = 1_700_000_000_000;
  const os = new FakeOs();
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-fake-ep-'));
  try {
    const mk = () => new Driver({ runner: os, backend: 'kernel', stateDir: dir, socketDir: join(dir, 'wg'), clock: () => now });
    const driver = mk();
    const plan = handPlan({ ipRange: '10.41.0.0/16', nodes: [{ node: 'h', underlay: '198.51.100.1' }, { node: 'p', underlay: '198.51.100.2' }, { node: 'q', underlay: '198.51.100.3' }], seed: 'replan' });
    const d = plan.desired.get('h')!;
    const id = plan.identity.get('h')!;
    ok(await driver.apply([d], id), os);
    const file = join(dir, 'endpoints', `${plan.networkId}.json`);
    const [p, q] = d.resource.peers;
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), Object.fromEntries([[p.publicKey, p.endpoint], [q.publicKey, q.endpoint]].sort()));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const wg = os.namespaces.get(`n-${plan.networkId}`)!.links.get(`w-${plan.networkId}`)!.wg!;
    // Both peers had a handshake 20 s ago; q roamed on its own (the plan still names its old address).
    for (const k of [p.publicKey, q.publicKey]) wg.peers.get(k)!.latestHandshake = now / 1000 - 20;
    wg.peers.get(q.publicKey)!.endpoint = '203.0.113.50:6000';
    const mtime = statSync(file).mtimeMs;
    const noop = await driver.apply([d], id);
    assert.equal(noop.commands.mutating, 0, 'roamed peer left alone');
    assert.equal(statSync(file).mtimeMs, mtime, 'a no-op apply writes nothing');
    // The plan moves p (its node got a new address): set at once, q still left alone.
    const moved = structuredClone(d);
    moved.resource.peers[0].endpoint = '198.51.100.9:51821';
    const r = await driver.apply([moved], id);
    assert.deepEqual(r.mutations, [`[n-${plan.networkId}] wg set w-${plan.networkId} peer ${p.publicKey} endpoint 198.51.100.9:51821`]);
    assert.equal(JSON.parse(readFileSync(file, 'utf8'))[p.publicKey], '198.51.100.9:51821');
    // The peer then roams away from the new planned address: kept while the plan names 198.51.100.9.
    wg.peers.get(p.publicKey)!.endpoint = '203.0.113.51:7000';
    assert.equal((await driver.apply([moved], id)).commands.mutating, 0);
    // A restarted driver (agent restart) remembers what the plan named: another move wins at once.
    const again = structuredClone(moved);
    again.resource.peers[0].endpoint = '198.51.100.10:51821';
    const r2 = await mk().apply([again], id);
    assert.deepEqual(r2.mutations, [`[n-${plan.networkId}] wg set w-${plan.networkId} peer ${p.publicKey} endpoint 198.51.100.10:51821`]);
    // The network removed: its memory goes with it.
    ok(await mk().apply([], id), os);
    assert.equal(existsSync(file), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the driver leaves alone what it does not own, and rejects invalid input before any side effect', async () => {
  const os = new FakeOs();
  const driver = driverFor(os);
  const plan = handPlan({ ipRange: '10.50.0.0/16', nodes: [{ node: 'h', underlay: '198.51.100.1' }], seed: 'own' });
  const d = plan.desired.get('h')!;
  // A namespace with our naming but no marker, holding something.
  await os.run(['ip', 'netns', 'add', `n-${plan.networkId}`], { mutating: true });
  await os.run(['ip', '-batch', '-'], { netns: `n-${plan.networkId}`, input: 'link add name foo type bridge\n', mutating: true });
  const r = await driver.apply([d], plan.identity.get('h')!);
  assert.equal(r.ok, false);
  assert.match(r.resources[0].failures[0].message, /no zmesh marker/);
  const r2 = await driver.apply([], plan.identity.get('h')!);
  assert.match(r2.removed[0].changes.join(), /left alone/);
  assert.ok(os.namespaces.has(`n-${plan.networkId}`), 'not deleted');
  const bad = structuredClone(d);
  bad.networkId = 'x';
  bad.resource.subnet = '10.99.0.0/24';
  const before = os.mutatingCount();
  const r3 = await driver.apply([bad], plan.identity.get('h')!);
  assert.equal(r3.resources[0].ok, false);
  assert.equal(r3.resources[0].failures[0].step, 'validate');
  assert.equal(os.mutatingCount(), before);
  assert.deepEqual(os.unexpected, []);
});

test('two new egress networks whose transfer blocks collide get distinct blocks in one apply', async () => {
  const byStart = new Map<number, string>();
  let pair: [string, string] | null = null;
  const rnd = prng('collide');
  for (let i = 0; i < 20000 && !pair; i++) {
    const id = Array.from({ length: 10 }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[rnd(36)]).join('');
    const s = egressStartIndex(id);
    const other = byStart.get(s);
    if (other && other !== id) pair = [other, id];
    byStart.set(s, id);
  }
  assert.ok(pair, 'found two ids with the same start block');
  const os = new FakeOs();
  const driver = driverFor(os);
  const a = handPlan({ ipRange: '10.60.0.0/16', egress: true, networkId: pair[0], nodes: [{ node: 'h', underlay: '198.51.100.1' }], seed: 'c1' });
  const b = handPlan({ ipRange: '10.60.0.0/16', egress: true, networkId: pair[1], nodes: [{ node: 'h', underlay: '198.51.100.1' }], seed: 'c2', identity: a.identity, basePort: 52100 });
  const r = await driver.apply([a.desired.get('h')!, b.desired.get('h')!], a.identity.get('h')!);
  ok(r, os);
  const blocks = r.resources.map((x) => x.actual!.hostLink!.addresses[0]);
  assert.notEqual(blocks[0], blocks[1]);
  const again = await driver.apply([a.desired.get('h')!, b.desired.get('h')!], a.identity.get('h')!);
  assert.equal(again.commands.mutating, 0, 'blocks are read back and kept');
});

test("egress follows the host: a new address or route rewrites the host tables' sets, nothing else; no change, no command", async () => {
  const os = new FakeOs();
  const driver = driverFor(os);
  const a = handPlan({ ipRange: '10.70.0.0/16', egress: true, nodes: [{ node: 'h', underlay: '192.0.2.2' }, { node: 'p', underlay: '203.0.113.9' }], seed: 'drift-a' });
  const b = handPlan({ ipRange: '10.71.0.0/16', egress: true, nodes: [{ node: 'h', underlay: '192.0.2.2' }], seed: 'drift-b', identity: a.identity, basePort: 52200 });
  const desired = [a.desired.get('h')!, b.desired.get('h')!];
  const id = a.identity.get('h')!;
  ok(await driver.apply(desired, id), os);
  const sets = () => [...os.host.nft.values()].map((t) => t.sets.find((s) => s.name === 'blocked4')!.elements.join(','));
  assert.ok(sets().every((s) => s.includes('192.0.2.0/24') && s.includes('203.0.113.9/32')), `the LAN and the peer's underlay: ${sets()}`);
  assert.equal((await driver.apply(desired, id)).commands.mutating, 0);

  // The host gets another address on eth0 (so a connected route: a LAN of its own) and routes to sites.
  const eth0 = os.host.links.get('eth0')!;
  eth0.addrs.push('198.51.100.7/24');
  os.host.routes.push({ dst: '203.0.113.64/26', dev: 'eth0', gateway: '198.51.100.1' });
  os.host.routes6.push({ dst: '2001:db8:77::/48', dev: 'eth0', gateway: null });
  const r = await driver.apply(desired, id);
  ok(r, os);
  assert.deepEqual(r.mutations, [`nft -f -`, `nft -f -`], 'one transaction per host table, nothing else');
  assert.ok(sets().every((s) => s.includes('198.51.100.0/24') && s.includes('203.0.113.64/26')), `${sets()}`);
  assert.ok([...os.host.nft.values()].every((t) => t.sets.find((s) => s.name === 'blocked6')!.elements.includes('2001:db8:77::/48')));
  assert.equal((await driver.apply(desired, id)).commands.mutating, 0, 'and then a no-op again');

  // The address goes away: the set shrinks back.
  eth0.addrs.pop();
  os.host.routes.pop();
  os.host.routes6.pop();
  ok(await driver.apply(desired, id), os);
  assert.ok(sets().every((s) => !s.includes('198.51.100.0/24')));

  // The operator's policy is applied (per apply, e.g. control-plane addresses resolved again).
  const r2 = await driver.apply(desired, id, { egress: { controlPlane: ['203.0.113.1'], deny: ['198.51.100.0/24'] } });
  ok(r2, os);
  assert.ok(sets().every((s) => s.includes('198.51.100.0/24') && s.includes('203.0.113.1/32')));
  assert.equal((await driver.apply(desired, id, { egress: { controlPlane: ['203.0.113.1'], deny: ['198.51.100.0/24'] } })).commands.mutating, 0);
});

test('devices with egress: their subnets in the tenant table, carried per network; a change rewrites that table only', async () => {
  const os = new FakeOs();
  const driver = driverFor(os);
  const plan = handPlan({ ipRange: '10.72.0.0/16', egress: true, nodes: [{ node: 'h', underlay: '192.0.2.2' }], seed: 'dev' });
  const d = plan.desired.get('h')!;
  const id = plan.identity.get('h')!;
  ok(await driver.apply([d], id), os);
  const tenant = () => os.namespaces.get(`n-${plan.networkId}`)!.nft.get(`inet zmesh_${plan.networkId}`)!;
  const withDevices = { ...d, egressDevices: ['10.72.9.0/24'] };
  const r = await driver.apply([withDevices], id);
  ok(r, os);
  assert.deepEqual(r.mutations, [`[n-${plan.networkId}] nft -f -`]);
  assert.ok(tenant().rules.some((x) => x.comment?.endsWith(':tunnel-egress')));
  assert.equal((await driver.apply([withDevices], id)).commands.mutating, 0);
  const bad = await driver.apply([{ ...d, egressDevices: ['10.99.0.0/24'] }], id);
  assert.equal(bad.resources[0].ok, false);
  assert.match(bad.resources[0].failures[0].message, /egressDevices: "10.99.0.0\/24" is not a CIDR inside the range/);
  assert.equal(bad.commands.mutating, 0);
});

test('the processes one new network costs are counted: a first apply, and a no-op after it (issue #18: batching must not regress)', async () => {
  const os = new FakeOs();
  const driver = driverFor(os);
  const plan = handPlan({ ipRange: '10.40.0.0/16', nodes: [{ node: 'a', underlay: '198.51.100.1' }, { node: 'b', underlay: '198.51.100.2' }], seed: 'count' });
  const d = plan.desired.get('a')!;
  os.commands.length = 0;
  const r = await driver.apply([d], plan.identity.get('a')!);
  ok(r, os);
  const first = os.commands.map((c) => `${c.mutating ? 'M' : 'r'} ${c.argv.slice(0, 3).join(' ')}`);
  // Reads: the host (a namespace that does not exist yet is not read: no process looks for it); the namespace
  // after its links exist; what changed, for the report. Writes: namespace, marker, then the firewall, forwarding
  // and the bridge (in the namespace) beside the tunnel (host: made and moved in), keys and peers, addresses and
  // routes: one process each. 10 processes before the report's read-back (13 before issue #18's round 2).
  const shown = os.commands.map((c) => `${c.mutating ? 'M' : 'r'} ${c.argv.slice(0, 3).join(' ')}${c.netns ? ' [ns]' : ''}`);
  assert.deepEqual(shown, [
    'r ip -d -json',
    'M ip netns add',
    'M ip link set [ns]',
    'M nft -f - [ns]',
    'M sysctl -q -w [ns]',
    'M ip -batch - [ns]',
    'M ip -batch -',
    'r ip -d -json [ns]',
    'M wg set w-' + plan.networkId + ' [ns]',
    'M ip -force -batch [ns]',
    'r ip -d -json [ns]',
    'r wg show w-' + plan.networkId + ' [ns]',
    'r nft -j list [ns]',
    'r ip -d -json',
    'r nft -j list',
  ]);
  assert.equal(first.length, shown.length);
  // The firewall and forwarding are in place before any link of the namespace is up (phase B, `ip -force -batch`).
  const at = (x: string) => shown.indexOf(x);
  assert.ok(at('M nft -f - [ns]') < at('M ip -force -batch [ns]') && at('M sysctl -q -w [ns]') < at('M ip -force -batch [ns]'));
  os.commands.length = 0;
  const again = await driver.apply([d], plan.identity.get('a')!);
  ok(again, os);
  assert.deepEqual(again.commands, { reads: 4, mutating: 0 });
  assert.equal(os.commands.length, 4);
});

test('`first`: those networks are read and applied before the others are even read; the same host results', async () => {
  const planA = handPlan({ ipRange: '10.41.0.0/16', nodes: [{ node: 'a', underlay: '198.51.100.1' }, { node: 'b', underlay: '198.51.100.2' }], seed: 'first-a' });
  const planB = handPlan({ ipRange: '10.42.0.0/16', nodes: [{ node: 'a', underlay: '198.51.100.1' }, { node: 'b', underlay: '198.51.100.2' }], seed: 'first-b', identity: planA.identity, basePort: 51900 });
  const a = planA.desired.get('a')!;
  const b = planB.desired.get('a')!;
  const id = planA.identity.get('a')!;
  const plain = new FakeOs();
  ok(await driverFor(plain).apply([a, b], id), plain);
  const os = new FakeOs();
  const driver = driverFor(os);
  ok(await driver.apply([a], id), os);
  // A policy-like change on b: only its nft table differs (egress turned on would be more; a new peer is enough).
  const b2 = structuredClone(b);
  os.commands.length = 0;
  const r = await driver.apply([a, b2], id, { first: [b2.networkId] });
  ok(r, os);
  const order = os.commands.map((c) => c.netns ?? 'host');
  const firstA = order.indexOf(`n-${a.networkId}`);
  const lastB = order.lastIndexOf(`n-${b2.networkId}`);
  assert.ok(firstA > 0, 'a was read');
  assert.ok(lastB < firstA, `every command of b (the first) ran before a was read: ${order.join(' ')}`);
  assert.deepEqual(r.resources.map((x) => x.networkId), [b2.networkId, a.networkId]);
  assert.equal(os.dump(), plain.dump(), 'the same host as an apply without `first`');
  // A no-op with `first` is still a no-op.
  const again = await driver.apply([a, b2], id, { first: [b2.networkId] });
  assert.equal(again.commands.mutating, 0);
});

test('a submission whose tenant table changes (a policy rule): its `nft -f` is the first command, before the reads; the same host as a plain apply', async () => {
  const plan = handPlan({ ipRange: '10.43.0.0/16', nodes: [{ node: 'a', underlay: '198.51.100.1' }, { node: 'b', underlay: '198.51.100.2' }], seed: 'fast-nft' });
  const id = plan.identity.get('a')!;
  const base = plan.desired.get('a')!;
  const from = plan.desired.get('b')!.resource.subnet;
  const withPort = (port: string): DesiredResource => ({
    ...structuredClone(base),
    policy: {
      range: '10.43.0.0/16',
      default: 'deny',
      local: [`${base.resource.gateway}/32`],
      rules: [{ index: 0, from: [from], to: [`${base.resource.gateway}/32`], tcp: [port], udp: [], icmp: false, any: false }],
    },
  });
  const os = new FakeOs();
  const driver = driverFor(os);
  ok(await driver.apply([withPort('80')], id), os);

  os.commands.length = 0;
  const r = await driver.apply([withPort('81')], id, { first: [base.networkId] });
  ok(r, os);
  const first = os.commands[0];
  assert.equal(`${first.argv.join(' ')} in ${first.netns}`, `nft -f - in n-${base.networkId}`, 'the table is written first, before the reads');
  assert.equal(os.commands.filter((c) => c.netns === `n-${base.networkId}` && c.argv.join(' ').startsWith('nft -j list')).length, 1, 'the table is read once: back, for the report');
  assert.ok(first.mutating);
  assert.equal(os.commands.filter((c) => c.mutating).length, 1, 'and only once: the ensure finds it current');
  assert.deepEqual(r.resources[0].changes, [`nft table zmesh_${base.networkId} written (before the reads)`]);
  const plain = new FakeOs();
  ok(await driverFor(plain).apply([withPort('81')], id), plain);
  assert.equal(os.dump(), plain.dump());

  // The same submission again: nothing written, before or after the reads.
  os.commands.length = 0;
  const again = await driver.apply([withPort('81')], id, { first: [base.networkId] });
  ok(again, os);
  assert.equal(again.commands.mutating, 0);

  // The namespace gone meanwhile (drift): the early write fails quietly and the ensure rebuilds everything.
  os.commands.length = 0;
  const gone = os.namespaces.get(`n-${base.networkId}`)!;
  for (const l of [...gone.links.values()]) os.removeLink(l);
  os.namespaces.delete(`n-${base.networkId}`);
  const rebuilt = await driver.apply([withPort('82')], id, { first: [base.networkId] });
  ok(rebuilt, os);
  assert.ok(!rebuilt.resources[0].changes.some((c) => c.includes('before the reads')));
  const plain2 = new FakeOs();
  ok(await driverFor(plain2).apply([withPort('82')], id), plain2);
  assert.equal(os.dump(), plain2.dump());
});

test('readBack false (the agent): nothing is read after a change, and `actual` is null for what changed', async () => {
  const plan = handPlan({ ipRange: '10.44.0.0/16', nodes: [{ node: 'a', underlay: '198.51.100.1' }, { node: 'b', underlay: '198.51.100.2' }], seed: 'no-read-back' });
  const id = plan.identity.get('a')!;
  const d = plan.desired.get('a')!;
  const os = new FakeOs();
  const driver = driverFor(os);
  const created = await driver.apply([d], id, { readBack: false });
  ok(created, os);
  assert.equal(created.resources[0].actual, null);
  const lastWrite = os.commands.map((c) => c.mutating).lastIndexOf(true);
  assert.deepEqual(os.commands.slice(lastWrite + 1).map((c) => c.argv.join(' ')), [], 'no read after the last change');
  const plain = new FakeOs();
  ok(await driverFor(plain).apply([d], id), plain);
  assert.equal(os.dump(), plain.dump());
  // A no-op reads what a no-op reads, and changes nothing.
  const noop = await driver.apply([d], id, { readBack: false });
  assert.deepEqual(noop.commands, (await driverFor(plain).apply([d], id)).commands);
  assert.equal(noop.commands.mutating, 0);
});
