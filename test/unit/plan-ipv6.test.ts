// IPv6 in the plan (issue #20, docs/plan-format.md#ipv6): the 128-bit CIDR arithmetic, the ULA derivation, the
// mirrored /64 allocation, re-plans, `ipv6: false`, workload ip6, the checker against tampering, node parts, and
// a property: no overlap and full cover in both families. Exact expected values throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Blueprint, NetworkSpec, WorkloadSpec } from '../../src/blueprint/types.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';
import { ValidationError } from '../../src/errors.ts';
import { checkNodePart } from '../../src/agent/consistency.ts';
import { checkPlan, compactPlan, expandPlan, nodePart, planBlueprint, planCompact, ulaRange, type CompactPlan, type Plan } from '../../src/plan/index.ts';
import { cidr6Exclude, formatCidr6, formatIPv6, nthSubnet6, parseCidr6, parseIPv6, subnetIndex6 } from '../../topology/cidr6.ts';
import { parseCidr, subnetIndex } from '../../topology/cidr.ts';
import { blueprint, identity, inventory, net, type NodeDef } from '../helpers/fixtures.ts';

const U = 'fdc2:65b9:9864'; // ulaRange('acme', 'shop', 'net')
const rnd = () => seededRandom('ipv6-test');
const wl = (name: string, node: string, network = 'net', extra: Partial<WorkloadSpec['network']> = {}): WorkloadSpec => ({
  name, node, image: 'base', command: [], network: { name: network, ...extra }, cpu: 1, memory: 1 << 28, volumes: [],
});
const V6_KEYS = /"(ipv6Range|subnet6Prefix|subnet6|gateway6|wgAddress6|address6|ip6|directSubnet6)"/;

/** The plan without any IPv6 field: what an IPv4-only plan of the same inputs says. */
function v4Only<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (k, x: unknown) => {
    if (V6_KEYS.test(`"${k}"`)) return undefined;
    if (k === 'allowedIps') return (x as string[]).filter((a) => !a.includes(':'));
    if (k === 'wgQuickConfig' || k === 'generation' || k === 'version') return undefined;
    return x;
  })) as T;
}

function codes(fn: () => unknown): string[][] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ValidationError) return e.problems.map((p) => [p.code, p.path]);
    throw e;
  }
  return [];
}

// ── cidr6 ─────────────────────────────────────────────────────────────────────────────────────────────────────

test('cidr6: RFC 5952 canonical text (lower case, no leading zeros, longest zero run, first on a tie, no lone ::)', () => {
  const cases: [string, string | null][] = [
    ['2001:0db8::0001', '2001:db8::1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['FD00:ABCD::', 'fd00:abcd::'],
    ['::', '::'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['fe80::1%eth0', null],
    ['1:2:3:4:5:6:7:8:9', null],
    ['12345::', null],
    ['10.0.0.1', null],
  ];
  for (const [text, want] of cases) {
    const n = parseIPv6(text);
    assert.equal(n === null ? null : formatIPv6(n), want, text);
  }
  assert.equal(parseCidr6('fd00::1/64'), null, 'host bits set: not strict');
  assert.equal(formatCidr6(parseCidr6('fd00::1/64', false)!), 'fd00::/64');
  assert.equal(parseCidr6('fd00::/129'), null);
});

test('cidr6: nth subnet, its index, and a range minus a hole (sorted, smallest list)', () => {
  const range = parseCidr6('fd00:1:2::/48')!;
  assert.equal(formatCidr6(nthSubnet6(range, 64, 0x1234)), 'fd00:1:2:1234::/64');
  assert.equal(formatCidr6(nthSubnet6(range, 69, 1)), 'fd00:1:2:0:800::/69');
  assert.equal(subnetIndex6(range, parseCidr6('fd00:1:2:1234::/64')!), 0x1234);
  assert.deepEqual(cidr6Exclude(parseCidr6('fd00::/62')!, parseCidr6('fd00:0:0:2::/64')!).map(formatCidr6), ['fd00::/63', 'fd00:0:0:3::/64']);
  assert.deepEqual(cidr6Exclude(parseCidr6('fd00::/62')!, parseCidr6('fd01::/64')!).map(formatCidr6), ['fd00::/62'], 'a hole outside: the range itself');
});

// ── the ULA and the mirror ────────────────────────────────────────────────────────────────────────────────────

test('ULA: fd + the first 40 bits of SHA-256("zmesh-ula-v1\\0tenant\\0blueprint\\0network"), a /48', () => {
  assert.equal(ulaRange('acme', 'shop', 'net'), `${U}::/48`);
  assert.equal(ulaRange('acme', 'shop', 'backend'), 'fdb5:50b6:d815::/48');
  assert.notEqual(ulaRange('acme', 'shop2', 'net'), ulaRange('acme', 'shop', 'net'));
  assert.notEqual(ulaRange('other', 'shop', 'net'), ulaRange('acme', 'shop', 'net'));
});

test('mirror: subnet6 takes the IPv4 slot index; gateway6, wgAddress6, device address6 and workload ip6 the host index', () => {
  const inv = inventory(['a', 'b', { id: 'h' }]);
  const bp = blueprint([net({ nodes: ['a', 'b', 'h'], access: [{ name: 'laptop' }] })], { workloads: [wl('web', 'h'), wl('db', 'h', 'net', { ip: '10.1.2.77' })] });
  const plan = planBlueprint(bp, inv, { random: rnd() });
  const n = plan.networks[0];
  assert.deepEqual(
    n.resources.map((r) => [r.node, r.subnet, r.subnet6, r.gateway6, r.wgAddress6]),
    [
      ['a', '10.1.0.0/24', `${U}::/64`, `${U}::1`, `${U}::fe/128`],
      ['b', '10.1.1.0/24', `${U}:1::/64`, `${U}:1::1`, `${U}:1::fe/128`],
      ['h', '10.1.2.0/24', `${U}:2::/64`, `${U}:2::1`, `${U}:2::fe/128`],
    ],
  );
  assert.deepEqual([n.access[0].subnet, n.access[0].address, n.access[0].subnet6, n.access[0].address6], ['10.1.3.0/24', '10.1.3.1', `${U}:3::/64`, `${U}:3::1`]);
  assert.deepEqual(plan.workloads, [
    { name: 'db', node: 'h', network: 'net', ip: '10.1.2.77', ip6: `${U}:2::4d` },
    { name: 'web', node: 'h', network: 'net', ip: '10.1.2.2', ip6: `${U}:2::2` },
  ]);
  // h enters through a, the laptop through b (the least loaded): each public entry carries both families.
  assert.deepEqual([n.resources[2].accessNode, n.access[0].via], ['a', 'b']);
  const entry = (at: string, of: string) => n.resources.find((r) => r.node === at)!.peers.find((p) => p.node === of)!.allowedIps;
  assert.deepEqual(entry('b', 'a'), ['10.1.0.0/24', '10.1.2.0/24', `${U}::/64`, `${U}:2::/64`]);
  assert.deepEqual(entry('a', 'b'), ['10.1.1.0/24', '10.1.3.0/24', `${U}:1::/64`, `${U}:3::/64`]);
  assert.deepEqual(entry('h', 'a').slice(0, 5), ['10.1.0.0/23', '10.1.3.0/24', '10.1.4.0/22', '10.1.8.0/21', '10.1.16.0/20']);
  assert.deepEqual(entry('h', 'a').slice(7, 10), ['10.1.128.0/17', `${U}::/63`, `${U}:3::/64`]);
  assert.equal(entry('h', 'a').length, 8 + 16, '/16 minus a /24: 8 CIDRs; /48 minus a /64: 16');
  assert.deepEqual(checkPlan(plan, bp, inv), []);
});

test('explicit ipv6Range /56: subnet6Prefix 64 when the slots fit; the slot index kept', () => {
  const inv = inventory(['a', 'b', 'c']);
  const bp = blueprint([net({ nodes: ['a', 'b', 'c'], ipv6Range: 'fd00:1:2:300::/56' })]);
  const plan = planBlueprint(bp, inv, { random: rnd() });
  assert.deepEqual([plan.networks[0].ipv6Range, plan.networks[0].subnet6Prefix], ['fd00:1:2:300::/56', 64]);
  assert.deepEqual(plan.networks[0].resources.map((r) => r.subnet6), ['fd00:1:2:300::/64', 'fd00:1:2:301::/64', 'fd00:1:2:302::/64']);
  assert.deepEqual(checkPlan(plan, bp, inv), []);
});

test('subnet6Prefix longer than 64 when the IPv4 slots outnumber the /64s: /8 in /29s → /69 (derived), /77 (a /56)', () => {
  const inv = inventory(['a', 'b']);
  const bp = blueprint([net({ nodes: ['a', 'b'], ipRange: '10.0.0.0/8', subnetPrefix: 29 })]);
  const plan = planBlueprint(bp, inv, { random: rnd() });
  const n = plan.networks[0];
  assert.equal(n.subnet6Prefix, 69);
  const b = n.resources[1];
  assert.deepEqual([b.subnet, b.wgAddress, b.subnet6, b.gateway6, b.wgAddress6], ['10.0.0.8/29', '10.0.0.14/32', `${U}:0:800::/69`, `${U}:0:800::1`, `${U}:0:800::6/128`]);
  assert.deepEqual(checkPlan(plan, bp, inv), []);
  const bp56 = blueprint([net({ nodes: ['a', 'b'], ipRange: '10.0.0.0/8', subnetPrefix: 29, ipv6Range: 'fd00:1:2:300::/56' })]);
  const p56 = planBlueprint(bp56, inv, { random: rnd() });
  assert.deepEqual([p56.networks[0].subnet6Prefix, p56.networks[0].resources[1].subnet6], [77, 'fd00:1:2:300:8::/77']);
  assert.deepEqual(checkPlan(p56, bp56, inv), []);
});

test('ipv6: false: no IPv6 field anywhere, IPv4-only allowed-ips, an IPv4 wg-quick config with DNS', () => {
  const inv = inventory(['a', 'b', { id: 'h1' }, { id: 'h2' }]);
  const bp = blueprint([net({ nodes: ['a', 'b', 'h1', 'h2'], ipv6: false, access: [{ name: 'laptop' }] })], { workloads: [wl('web', 'h1')] });
  const plan = planBlueprint(bp, inv, { random: rnd() });
  const text = JSON.stringify(plan);
  assert.ok(!V6_KEYS.test(text), 'no IPv6 key');
  for (const r of plan.networks[0].resources) for (const p of r.peers) for (const a of p.allowedIps) assert.ok(!a.includes(':'), a);
  const cfg = plan.networks[0].access[0].wgQuickConfig!;
  assert.match(cfg, /\nAddress = 10\.1\.4\.1\/32\nDNS = 10\.1\.0\.1, net\n/);
  assert.match(cfg, /\nAllowedIPs = 10\.1\.0\.0\/16\n/);
  assert.deepEqual(checkPlan(plan, bp, inv), []);
  assert.deepEqual(checkPlan(planCompact(bp, inv, { random: rnd() }), bp, inv), []);
});

// ── re-plans ──────────────────────────────────────────────────────────────────────────────────────────────────

const replanInv = inventory(['a', 'b', { id: 'h1' }, { id: 'h2' }, 'c']);
const replanBp = (over: Partial<NetworkSpec>, version = 1): Blueprint =>
  blueprint([net({ nodes: ['a', 'b', 'h1', 'h2'], access: [{ name: 'laptop' }, { name: 'phone' }], ...over })], {
    version,
    workloads: [wl('web', 'h1'), wl('db', 'a', 'net', { ip: '10.1.0.9' })],
  });

test('--previous from an IPv4-only plan (compact, or an old full-form plan) adds IPv6 and moves nothing IPv4', () => {
  const old = planCompact(replanBp({ ipv6: false }), replanInv, { random: seededRandom('first') });
  for (const prev of [old, expandPlan(old)]) {
    const next = planCompact(replanBp({}, 2), replanInv, { random: seededRandom('second'), previous: prev });
    assert.deepEqual(v4Only(next), v4Only(old), 'every IPv4 field, port, key and access node kept');
    assert.equal(next.networks[0].ipv6Range, `${U}::/48`);
    assert.ok(next.networks[0].resources.every((r) => r.subnet6 !== undefined) && next.workloads.every((w) => w.ip6 !== undefined));
    assert.deepEqual(checkPlan(next, replanBp({}, 2), replanInv), []);
  }
});

test('re-plan of a dual-stack plan with a node added: every IPv6 field of the others stays', () => {
  const first = planCompact(replanBp({}), replanInv, { random: seededRandom('first') });
  const grownBp = blueprint([net({ nodes: ['a', 'b', 'h1', 'h2', 'c'], access: [{ name: 'laptop' }, { name: 'phone' }] })], { version: 2, workloads: replanBp({}).workloads });
  const next = planCompact(grownBp, replanInv, { random: seededRandom('second'), previous: first });
  for (const r of first.networks[0].resources) {
    const s = next.networks[0].resources.find((x) => x.node === r.node)!;
    assert.deepEqual([s.subnet6, s.gateway6, s.wgAddress6], [r.subnet6, r.gateway6, r.wgAddress6], r.node);
  }
  assert.deepEqual(next.networks[0].access.map((d) => d.subnet6), first.networks[0].access.map((d) => d.subnet6));
  assert.deepEqual(next.workloads.map((w) => w.ip6), first.workloads.map((w) => w.ip6));
  assert.equal(next.networks[0].resources.find((r) => r.node === 'c')!.subnet6, `${U}:6::/64`, 'the new node: the mirror of its new IPv4 slot');
});

test('a changed ipv6Range wins over the previous plan; IPv4 stays; back to ipv6: false drops IPv6', () => {
  const first = planCompact(replanBp({}), replanInv, { random: seededRandom('first') });
  const bp2 = replanBp({ ipv6Range: 'fd99:8877:6655::/48' }, 2);
  const next = planCompact(bp2, replanInv, { random: seededRandom('second'), previous: first });
  assert.deepEqual(v4Only(next), v4Only(first));
  assert.equal(next.networks[0].ipv6Range, 'fd99:8877:6655::/48');
  assert.deepEqual(next.networks[0].resources.map((r) => r.subnet6), ['fd99:8877:6655::/64', 'fd99:8877:6655:1::/64', 'fd99:8877:6655:2::/64', 'fd99:8877:6655:3::/64']);
  assert.deepEqual(checkPlan(next, bp2, replanInv), []);
  const off = planCompact(replanBp({ ipv6: false }, 3), replanInv, { random: seededRandom('third'), previous: next });
  assert.ok(!V6_KEYS.test(JSON.stringify(off)));
  assert.deepEqual(v4Only(off), v4Only(first));
});

// ── workload ip6 ──────────────────────────────────────────────────────────────────────────────────────────────

test('workload ip6 from the blueprint: kept when a free host of the node subnet6, refused otherwise (every problem at once)', () => {
  const inv = inventory(['a']);
  const ok = blueprint([net({ nodes: ['a'] })], { workloads: [wl('web', 'a', 'net', { ip6: `${U}::beef` }), wl('db', 'a')] });
  assert.deepEqual(planBlueprint(ok, inv, { random: rnd() }).workloads, [
    { name: 'db', node: 'a', network: 'net', ip: '10.1.0.3', ip6: `${U}::3` },
    { name: 'web', node: 'a', network: 'net', ip: '10.1.0.2', ip6: `${U}::beef` },
  ]);
  const bad = blueprint([net({ nodes: ['a'] })], {
    workloads: [
      wl('w0', 'a', 'net', { ip6: `${U}:1::5` }),
      wl('w1', 'a', 'net', { ip6: `${U}::` }),
      wl('w2', 'a', 'net', { ip6: `${U}::1` }),
      wl('w3', 'a', 'net', { ip6: `${U}::fe` }),
      wl('w4', 'a', 'net', { ip6: `${U}::8` }),
      wl('w5', 'a', 'net', { ip: '10.1.0.8' }),
    ],
  });
  assert.deepEqual(codes(() => planBlueprint(bad, inv, { random: rnd() })), [
    ['E_WORKLOAD_IP6_SUBNET', 'workloads[0].network.ip6'],
    ['E_WORKLOAD_IP6_RESERVED', 'workloads[1].network.ip6'],
    ['E_WORKLOAD_IP6_RESERVED', 'workloads[2].network.ip6'],
    ['E_WORKLOAD_IP6_RESERVED', 'workloads[3].network.ip6'],
    ['E_WORKLOAD_IP_TAKEN', 'workloads[4].network.ip6'],
  ]);
});

// ── the checker against tampering ─────────────────────────────────────────────────────────────────────────────

const tInv = inventory(['a', 'b', { id: 'h1' }, { id: 'h2' }]);
const tBp = blueprint([net({ nodes: ['a', 'b', 'h1', 'h2'], access: [{ name: 'laptop' }] })], { workloads: [wl('web', 'h1'), wl('api', 'h2')] });
const tPlan = planCompact(tBp, tInv, { random: rnd() });

function tampered(edit: (p: CompactPlan) => void): string[][] {
  const p = structuredClone(tPlan);
  edit(p);
  return checkPlan(p, tBp, tInv).map((x) => [x.code, x.path]);
}

test("a hidden node's direct peer carries directSubnet and directSubnet6, no allowed-ips", () => {
  const h1 = expandPlan(tPlan).networks[0].resources.find((r) => r.node === 'h1')!;
  const h2 = tPlan.networks[0].resources.find((r) => r.node === 'h2')!;
  assert.deepEqual(h1.peers.find((p) => p.node === 'h2'), {
    node: 'h2', kind: 'node', publicKey: h2.publicKey, endpoint: null, allowedIps: [], persistentKeepalive: null, directSubnet: '10.1.3.0/24', directSubnet6: `${U}:3::/64`,
  });
});

test('checkPlan (compact) refuses tampered IPv6 fields', () => {
  assert.deepEqual(checkPlan(tPlan, tBp, tInv), []);
  const res = (p: CompactPlan, node: string) => p.networks[0].resources.find((r) => r.node === node)!;
  const cases: [string, (p: CompactPlan) => void, string[][]][] = [
    // (web runs on h1: its ip6 is then outside h1's subnet6 too)
    ['a subnet6 outside the range', (p) => (res(p, 'h1').subnet6 = 'fd00:dead::/64'), [['E_PLAN_IPV6', 'networks[0].h1'], ['E_PLAN_WORKLOAD', 'workloads.web']]],
    ["another node's subnet6", (p) => (res(p, 'h1').subnet6 = res(p, 'h2').subnet6), [['E_PLAN_IPV6', 'networks[0].h1'], ['E_PLAN_WORKLOAD', 'workloads.web']]],
    ['a mirror of another slot (free)', (p) => (res(p, 'h1').subnet6 = `${U}:9::/64`), [['E_PLAN_IPV6', 'networks[0].h1'], ['E_PLAN_WORKLOAD', 'workloads.web']]],
    ['gateway6 moved', (p) => (res(p, 'a').gateway6 = `${U}::2`), [['E_PLAN_IPV6', 'networks[0].a']]],
    ['wgAddress6 not /128', (p) => (res(p, 'a').wgAddress6 = `${U}::fe/64`), [['E_PLAN_IPV6', 'networks[0].a']]],
    ['IPv6 missing on one member', (p) => { const r = res(p, 'b'); delete r.subnet6; delete r.gateway6; delete r.wgAddress6; }, [['E_PLAN_IPV6', 'networks[0].b']]],
    ['another ipv6Range', (p) => (p.networks[0].ipv6Range = 'fd11::/48'), [['E_PLAN_IPV6', 'networks[0].ipv6Range'], ...['a', 'b', 'h1', 'h2'].map((n) => ['E_PLAN_IPV6', `networks[0].${n}`]), ['E_PLAN_IPV6', 'networks[0].access.laptop']]],
    ['subnet6Prefix', (p) => (p.networks[0].subnet6Prefix = 72), [['E_PLAN_IPV6', 'networks[0].subnet6Prefix']]],
    ['device address6', (p) => (p.networks[0].access[0].address6 = `${U}:4::2`), [['E_PLAN_IPV6', 'networks[0].access.laptop']]],
    ['workload ip6 outside its node', (p) => (p.workloads[0].ip6 = `${U}::7`), [['E_PLAN_WORKLOAD', 'workloads.api']]],
    ['workload ip6 = gateway6', (p) => (p.workloads[0].ip6 = `${U}:3::1`), [['E_PLAN_WORKLOAD', 'workloads.api']]],
    ['workload ip6 missing', (p) => delete p.workloads[1].ip6, [['E_PLAN_WORKLOAD', 'workloads.web']]],
  ];
  for (const [name, edit, want] of cases) assert.deepEqual(tampered(edit), want, name);
  const v4bp = blueprint([net({ ...tBp.networks[0], ipv6: false })], { workloads: tBp.workloads });
  assert.deepEqual(checkPlan(tPlan, v4bp, tInv).map((x) => [x.code, x.path]), [['E_PLAN_IPV6', 'networks[0].ipv6Range']], 'IPv6 on an ipv6: false network');
});

test('checkPlan (full) refuses tampered IPv6 peers: directSubnet6, a lost or overlapping IPv6 allowed-ip, families out of order', () => {
  const full = expandPlan(tPlan);
  const check = (edit: (p: Plan) => void) => {
    const p = structuredClone(full);
    edit(p);
    return [...new Set(checkPlan(p, tBp, tInv).map((x) => `${x.code} ${x.path}`))];
  };
  assert.deepEqual(check(() => {}), []);
  const h1 = (p: Plan) => p.networks[0].resources.find((r) => r.node === 'h1')!;
  const b = (p: Plan) => p.networks[0].resources.find((r) => r.node === 'b')!;
  assert.deepEqual(check((p) => (h1(p).peers.find((x) => x.node === 'h2')!.directSubnet6 = `${U}::/64`)), ['E_PLAN_DIRECT networks[0].h1']);
  assert.deepEqual(check((p) => b(p).peers.find((x) => x.node === 'a')!.allowedIps.pop()), ['E_PLAN_COVER networks[0].b']);
  assert.deepEqual(check((p) => b(p).peers.find((x) => x.node === 'a')!.allowedIps.push(`${U}:1::/64`)), ['E_PLAN_ALLOWED networks[0].b']);
  assert.deepEqual(check((p) => b(p).peers.find((x) => x.node === 'a')!.allowedIps.reverse()), ['E_PLAN_ALLOWED networks[0].b']);
});

// ── node parts ────────────────────────────────────────────────────────────────────────────────────────────────

test("checkNodePart: a part's IPv6 fields must be the mirror of its IPv4 ones, inside the blueprint's range", () => {
  const node = 'h1';
  const secret = new X25519Secret(identity(node).privateKey);
  const part = nodePart(tPlan, node);
  const check = (edit: (p: typeof part) => void) => {
    const p = structuredClone(part);
    edit(p);
    return checkNodePart(tBp, p, node, secret, []).map((x) => `${x.code} ${x.path}`);
  };
  assert.deepEqual(check(() => {}), []);
  const r = (p: typeof part) => p.networks[0].resource;
  // (another node's subnet6: then also overlapping the relay's IPv6 allowed-ips)
  assert.deepEqual(check((p) => (r(p).subnet6 = `${U}:3::/64`)), ['E_PART_SUBNET part.networks[0].resource.subnet6', 'E_PART_PEER part.networks[0].resource.peers']);
  assert.deepEqual(check((p) => (r(p).subnet6 = 'fd00:dead::/64')), ['E_PART_SUBNET part.networks[0].resource.subnet6']);
  assert.deepEqual(check((p) => (r(p).wgAddress6 = `${U}:2::1/128`)), ['E_PART_SUBNET part.networks[0].resource']);
  const direct = (p: typeof part) => r(p).peers.find((x) => x.directSubnet !== undefined)!;
  assert.deepEqual(check((p) => (direct(p).directSubnet6 = `${U}::/64`)), ['E_PART_PEER part.networks[0].resource.peers[1].directSubnet6']);
  const relay = (p: typeof part) => r(p).peers.find((x) => x.directSubnet === undefined)!;
  assert.deepEqual(check((p) => relay(p).allowedIps.push('fd00:dead::/64')), ['E_PART_PEER part.networks[0].resource.peers[0].allowedIps']);
  assert.deepEqual(check((p) => relay(p).allowedIps.push(`${U}:2::/65`)), ['E_PART_PEER part.networks[0].resource.peers']);
  // An IPv4-only part of a dual-stack blueprint (planned before IPv6) is still consistent: all or none.
  const v4part = v4Only(part);
  Object.assign(v4part, { generation: part.generation, version: part.version });
  assert.deepEqual(checkNodePart(tBp, v4part, node, secret, []), []);
  // IPv6 on a network the blueprint makes IPv4-only is not.
  const v4bp = blueprint([net({ ...tBp.networks[0], ipv6: false })], { workloads: tBp.workloads });
  assert.ok(checkNodePart(v4bp, part, node, secret, []).some((x) => x.code === 'E_PART_NETWORK'));
});

test("checkNodePart: a policy network's IPv6 members are /128s inside the network's ipv6Range", () => {
  const bp = blueprint([net({ nodes: ['a', 'b'], policy: { default: 'deny', rules: [{ from: ['any'], to: ['node:a'], ports: ['tcp/22'] }] } })]);
  const part = nodePart(planCompact(bp, inventory(['a', 'b']), { random: rnd() }), 'a');
  const secret = new X25519Secret(identity('a').privateKey);
  assert.deepEqual(checkNodePart(bp, part, 'a', secret, []), []);
  for (const bad of ['fd00::1/128', `${U}:1::/64`, '10.1.1.1/32']) {
    const p = structuredClone(part);
    (p.networks[0].members as { nodes6: Record<string, string[]> }).nodes6.b = [bad];
    assert.deepEqual(checkNodePart(bp, p, 'a', secret, []).map((x) => `${x.code} ${x.path}`), ['E_PART_POLICY part.networks[0].members'], bad);
  }
});

// ── property: both families ───────────────────────────────────────────────────────────────────────────────────

const RUNS = Number(process.env.ZMESH_PROPERTY_RUNS ?? 100);

function containsText(outer: string, inner: string): boolean {
  if (outer.includes(':') !== inner.includes(':')) return false;
  if (outer.includes(':')) {
    const o = parseCidr6(outer)!;
    const i = parseCidr6(inner)!;
    return i.prefix >= o.prefix && (i.base >> BigInt(128 - o.prefix)) === (o.base >> BigInt(128 - o.prefix));
  }
  const o = parseCidr(outer)!;
  const i = parseCidr(inner)!;
  return i.prefix >= o.prefix && (o.prefix === 0 || i.base >>> (32 - o.prefix) === o.base >>> (32 - o.prefix));
}

test('property: random dual-stack networks with hidden nodes and devices: no overlap and full cover in each family, mirrored slots', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 12 }),
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 14, max: 22 }),
      fc.integer({ min: 1, max: 7 }),
      fc.constantFrom<string | undefined>(undefined, 'fd00:aa::/48', 'fd12:3456:7800::/56', 'fcff:1:2:3f00::/56'),
      fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
      (n, devices, rangePrefix, extraBits, ipv6Range, hiddenFlags) => {
        const ids = Array.from({ length: n }, (_, i) => `n${i}`);
        const defs: NodeDef[] = ids.map((id, i) => (i === 0 || !hiddenFlags[i] ? { id, endpoints: [`198.51.100.${i + 1}`] } : { id }));
        const subnetPrefix = Math.min(29, rangePrefix + extraBits + 4);
        const spec = net({ nodes: ids, ipRange: `10.0.0.0/${rangePrefix}`, subnetPrefix, access: Array.from({ length: devices }, (_, i) => ({ name: `d${i}` })), ...(ipv6Range ? { ipv6Range } : {}) });
        const bp = blueprint([spec]);
        const inv = inventory(defs);
        const plan = planBlueprint(bp, inv, { random: seededRandom(`p${n}${devices}${rangePrefix}`) });
        assert.deepEqual(checkPlan(plan, bp, inv), []);
        assert.deepEqual(checkPlan(compactPlan(plan), bp, inv), []);
        const np = plan.networks[0];
        const range = parseCidr(np.ipRange)!;
        const range6 = parseCidr6(np.ipv6Range!)!;
        const members = [...np.resources.map((r) => [r.subnet, r.subnet6!]), ...np.access.map((d) => [d.subnet, d.subnet6!])];
        for (const [s4, s6] of members) assert.equal(subnetIndex6(range6, parseCidr6(s6)!), subnetIndex(range, parseCidr(s4)!), 'mirror');
        for (const r of np.resources) {
          const mine = [...r.peers.flatMap((p) => p.allowedIps), r.subnet, r.subnet6!];
          // No two of a resource's CIDRs overlap (the own subnets included), in either family.
          for (let i = 0; i < mine.length; i++) for (let j = i + 1; j < mine.length; j++) assert.ok(!containsText(mine[i], mine[j]) && !containsText(mine[j], mine[i]), `${r.node}: ${mine[i]} ${mine[j]}`);
          // Every member's subnet, in each family, lies in exactly one of them.
          for (const [s4, s6] of members) for (const s of [s4, s6]) assert.equal(mine.filter((c) => containsText(c, s)).length, 1, `${r.node} covers ${s}`);
          // IPv4 first, then IPv6, in each entry.
          for (const p of r.peers) {
            const fam = p.allowedIps.map((a) => a.includes(':'));
            assert.deepEqual(fam, [...fam].sort((x, y) => Number(x) - Number(y)), `${r.node} → ${p.node}`);
          }
        }
      },
    ),
    { numRuns: RUNS, seed: 2026 },
  );
});
