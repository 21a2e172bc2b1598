// Pure diffs (peers with endpoint authority and the roaming window, links, routes, nft), IP helpers and egress block allocation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffLink, diffPeers, diffRoutes, diffWireguard, endpointDecision, nftIsCurrent, plannedEndpoints, type EndpointInput } from '../../netns/diff.ts';
import { allocateEgressBlock, canonicalCidr, canonicalEndpoint, egressBlock, EGRESS_BLOCK_COUNT, formatCidr, isEgressHostAddr, parseCidr } from '../../netns/ip.ts';
import { hostNftSpec, tenantNftSpec, validateDesired } from '../../netns/layout.ts';
import { renderNftTable } from '../../netns/build.ts';
import { idFromMarker, idFromName, namesFor } from '../../netns/names.ts';
import type { IpLink, NftTable, WgPeer } from '../../netns/parse.ts';
import { handPlan } from '../helpers/plan.ts';

const K = (c: string) => `${c.repeat(42)}A=`;
const NOW = 1_700_000_000;

function live(p: Partial<WgPeer> & { publicKey: string }): WgPeer {
  return { hasPresharedKey: false, endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: null, ...p };
}

const cases: { name: string; desired: Parameters<typeof diffPeers>[0]; actual: WgPeer[]; want: ReturnType<typeof diffPeers> }[] = [
  { name: 'nothing to do', desired: [{ publicKey: K('a'), endpoint: '203.0.113.1:1', allowedIps: ['10.0.1.0/24'], persistentKeepalive: null }], actual: [live({ publicKey: K('a'), endpoint: '203.0.113.1:1', allowedIps: ['10.0.1.0/24'] })], want: [] },
  { name: 'new peer', desired: [{ publicKey: K('a'), endpoint: null, allowedIps: ['10.0.1.0/24'], persistentKeepalive: 25 }], actual: [], want: [{ op: 'add', publicKey: K('a'), persistentKeepalive: 25, allowedIps: ['10.0.1.0/24'] }] },
  { name: 'peer gone', desired: [], actual: [live({ publicKey: K('b') })], want: [{ op: 'remove', publicKey: K('b') }] },
  {
    name: 'only the changed fields of a peer',
    desired: [{ publicKey: K('a'), endpoint: '203.0.113.1:1', allowedIps: ['10.0.1.0/24', '10.0.2.0/24'], persistentKeepalive: null }],
    actual: [live({ publicKey: K('a'), endpoint: '203.0.113.1:1', allowedIps: ['10.0.1.0/24'] })],
    want: [{ op: 'update', publicKey: K('a'), allowedIps: ['10.0.1.0/24', '10.0.2.0/24'] }],
  },
  {
    name: 'allowed IPs compare as canonical sets',
    desired: [{ publicKey: K('a'), endpoint: null, allowedIps: ['10.0.1.0/24', '10.0.2.0/24'], persistentKeepalive: null }],
    actual: [live({ publicKey: K('a'), allowedIps: ['10.0.2.0/24', '10.0.1.0/24'] })],
    want: [],
  },
  {
    name: 'endpoint changed, no handshake: set',
    desired: [{ publicKey: K('a'), endpoint: '203.0.113.9:1', allowedIps: [], persistentKeepalive: null }],
    actual: [live({ publicKey: K('a'), endpoint: '203.0.113.1:1' })],
    want: [{ op: 'update', publicKey: K('a'), endpoint: '203.0.113.9:1' }],
  },
  {
    name: 'endpoint changed but a handshake 179 s ago: the peer roamed, left alone',
    desired: [{ publicKey: K('a'), endpoint: '203.0.113.9:1', allowedIps: [], persistentKeepalive: null }],
    actual: [live({ publicKey: K('a'), endpoint: '198.51.100.7:4444', latestHandshake: NOW - 179 })],
    want: [],
  },
  {
    name: 'endpoint changed, last handshake 181 s ago: set',
    desired: [{ publicKey: K('a'), endpoint: '203.0.113.9:1', allowedIps: [], persistentKeepalive: null }],
    actual: [live({ publicKey: K('a'), endpoint: '198.51.100.7:4444', latestHandshake: NOW - 181 })],
    want: [{ op: 'update', publicKey: K('a'), endpoint: '203.0.113.9:1' }],
  },
  {
    name: 'a null endpoint never clears a learnt one',
    desired: [{ publicKey: K('a'), endpoint: null, allowedIps: [], persistentKeepalive: null }],
    actual: [live({ publicKey: K('a'), endpoint: '198.51.100.7:4444' })],
    want: [],
  },
  {
    name: 'keepalive off',
    desired: [{ publicKey: K('a'), endpoint: null, allowedIps: [], persistentKeepalive: null }],
    actual: [live({ publicKey: K('a'), persistentKeepalive: 25 })],
    want: [{ op: 'update', publicKey: K('a'), persistentKeepalive: null }],
  },
  {
    name: 'adds and updates come before removals',
    desired: [{ publicKey: K('c'), endpoint: null, allowedIps: ['10.0.3.0/24'], persistentKeepalive: null }],
    actual: [live({ publicKey: K('b'), allowedIps: ['10.0.3.0/24'] })],
    want: [
      { op: 'add', publicKey: K('c'), allowedIps: ['10.0.3.0/24'] },
      { op: 'remove', publicKey: K('b') },
    ],
  },
];

for (const c of cases) {
  test(`diffPeers: ${c.name}`, () => assert.deepEqual(diffPeers(c.desired, c.actual, NOW), c.want));
}

// Endpoint authority (issue #21): who wins between the plan and WireGuard's roamed endpoint.
const P1 = '203.0.113.1:51820'; // what the plan named
const P2 = '203.0.113.2:51820'; // what the plan names after a re-plan (the peer moved)
const R = '198.51.100.7:4444'; // where WireGuard saw the peer's packets come from (it roamed)
const ep = (i: Partial<EndpointInput>): EndpointInput => ({ planned: P1, actual: P1, latestHandshake: NOW - 10, plannedBefore: P1, nowSec: NOW, ...i });
const endpointCases: { name: string; input: EndpointInput; want: ReturnType<typeof endpointDecision> }[] = [
  { name: 'WireGuard uses the planned endpoint', input: ep({}), want: { set: false, reason: 'current' } },
  { name: 'the plan names none: a learnt endpoint is never cleared', input: ep({ planned: null, plannedBefore: null, actual: R }), want: { set: false, reason: 'not-planned' } },
  { name: 'roamed, the plan unchanged, handshake 10 s ago: kept', input: ep({ actual: R }), want: { set: false, reason: 'roamed' } },
  { name: 'roamed, the plan unchanged, handshake 179 s ago: kept', input: ep({ actual: R, latestHandshake: NOW - 179 }), want: { set: false, reason: 'roamed' } },
  { name: 'roamed, the plan unchanged, handshake 180 s ago: the plan', input: ep({ actual: R, latestHandshake: NOW - 180 }), want: { set: true, reason: 'no-session' } },
  { name: 'roamed, the plan unchanged, never a handshake: the plan', input: ep({ actual: R, latestHandshake: 0 }), want: { set: true, reason: 'no-session' } },
  { name: 'the plan moved the endpoint, handshake 10 s ago with the old one: the plan at once', input: ep({ planned: P2, actual: P1 }), want: { set: true, reason: 'replanned' } },
  { name: 'roamed, then the plan moved the endpoint: the plan at once', input: ep({ planned: P2, actual: R, latestHandshake: NOW - 1 }), want: { set: true, reason: 'replanned' } },
  { name: 'the plan named none before and names one now: the plan at once', input: ep({ planned: P2, plannedBefore: null, actual: R }), want: { set: true, reason: 'replanned' } },
  { name: 'nothing remembered (first apply by this state directory): the roam window decides', input: ep({ planned: P2, actual: P1, plannedBefore: undefined }), want: { set: false, reason: 'roamed' } },
  { name: 'nothing remembered, no handshake for 181 s: the plan', input: ep({ planned: P2, actual: P1, plannedBefore: undefined, latestHandshake: NOW - 181 }), want: { set: true, reason: 'no-session' } },
  { name: 'a direct-path probe moves it whatever the handshake', input: ep({ planned: P2, actual: R, plannedBefore: P2, force: true }), want: { set: true, reason: 'forced' } },
  { name: 'a shorter roam window (option)', input: ep({ actual: R, latestHandshake: NOW - 30, roamWindowSec: 30 }), want: { set: true, reason: 'no-session' } },
];
for (const c of endpointCases) {
  test(`endpointDecision: ${c.name}`, () => assert.deepEqual(endpointDecision(c.input), c.want));
}

test('diffPeers with remembered endpoints: a re-planned endpoint is set at once, a roamed one kept', () => {
  const a = K('a');
  const b = K('b');
  const desired = [
    { publicKey: a, endpoint: P2, allowedIps: ['10.0.1.0/24'], persistentKeepalive: null },
    { publicKey: b, endpoint: P1, allowedIps: ['10.0.2.0/24'], persistentKeepalive: null },
  ];
  const actual = [
    live({ publicKey: a, endpoint: P1, allowedIps: ['10.0.1.0/24'], latestHandshake: NOW - 5 }),
    live({ publicKey: b, endpoint: R, allowedIps: ['10.0.2.0/24'], latestHandshake: NOW - 5 }),
  ];
  const before = new Map([
    [a, P1],
    [b, P1],
  ]);
  assert.deepEqual(diffPeers(desired, actual, NOW, 180, before), [{ op: 'update', publicKey: a, endpoint: P2 }]);
  // Without the memory (the behaviour before issue #21): both left alone for 180 s.
  assert.deepEqual(diffPeers(desired, actual, NOW), []);
  assert.deepEqual(
    [...plannedEndpoints([...desired, { publicKey: K('c'), endpoint: null, allowedIps: [], persistentKeepalive: 25 }])],
    [
      [a, P2],
      [b, P1],
      [K('c'), null],
    ],
  );
});

test('diffWireguard: a fresh device gets key and port; a matching one only peer changes', () => {
  const want = { publicKey: K('k'), listenPort: 51820, peers: [] };
  assert.deepEqual(diffWireguard(want, null, NOW), { change: { peers: [], listenPort: 51820 }, needsPrivateKey: true });
  assert.deepEqual(diffWireguard(want, { hasPrivateKey: true, publicKey: K('k'), listenPort: 51820, fwmark: null, peers: [] }, NOW), { change: { peers: [] }, needsPrivateKey: false });
  assert.deepEqual(diffWireguard(want, { hasPrivateKey: true, publicKey: K('o'), listenPort: 4, fwmark: null, peers: [] }, NOW), { change: { peers: [], listenPort: 51820 }, needsPrivateKey: true });
});

function link(p: Partial<IpLink>): IpLink {
  return { index: 1, name: 'b-abcdefghij', kind: 'bridge', mtu: 1500, up: false, operstate: 'DOWN', alias: null, master: null, mac: null, addrs: [], ...p };
}

test('diffLink: only what differs; adds before deletes; IPv6 link-local untouched', () => {
  const want = { name: 'b-abcdefghij', mtu: 1420, alias: 'zmesh:abcdefghij', addrs: ['10.1.3.1/24'] };
  assert.deepEqual(diffLink(want, link({})), {
    set: ['link set dev b-abcdefghij alias zmesh:abcdefghij mtu 1420 up'],
    addrAdd: ['address add 10.1.3.1/24 dev b-abcdefghij'],
    addrDel: [],
  });
  const have = link({
    mtu: 1420,
    up: true,
    alias: 'zmesh:abcdefghij',
    addrs: [
      { dev: 'b-abcdefghij', family: 'inet', cidr: '10.1.3.1/24', scope: 'global' },
      { dev: 'b-abcdefghij', family: 'inet', cidr: '10.1.9.1/24', scope: 'global' },
      { dev: 'b-abcdefghij', family: 'inet6', cidr: 'fe80::1/64', scope: 'link' },
    ],
  });
  assert.deepEqual(diffLink(want, have), { set: [], addrAdd: [], addrDel: ['address del 10.1.9.1/24 dev b-abcdefghij'] });
});

test('diffRoutes: replace missing or different routes, delete unwanted static ones, keep kernel ones', () => {
  const want = [
    { dst: '10.1.0.0/16', dev: 'w-abcdefghij', gateway: null },
    { dst: 'default', dev: 'eg-abcdefghij', gateway: '169.254.20.1' },
  ];
  const have = [
    { dst: '10.1.0.0/16', dev: 'w-abcdefghij', gateway: null, protocol: 'static', scope: 'link', type: 'unicast' },
    { dst: 'default', dev: 'eg-abcdefghij', gateway: '169.254.99.1', protocol: 'static', scope: 'global', type: 'unicast' },
    { dst: '10.9.0.0/16', dev: 'w-abcdefghij', gateway: null, protocol: 'static', scope: 'link', type: 'unicast' },
    { dst: '10.1.3.0/24', dev: 'b-abcdefghij', gateway: null, protocol: 'kernel', scope: 'link', type: 'unicast' },
  ];
  assert.deepEqual(diffRoutes(want, have), {
    replace: ['route replace default via 169.254.20.1 dev eg-abcdefghij proto static'],
    del: ['route del 10.9.0.0/16 dev w-abcdefghij proto static'],
  });
  assert.deepEqual(diffRoutes(want, have.slice(0, 0)).replace.length, 2);
});

test('nftIsCurrent: same chains and fingerprinted rules; a flushed or changed table is not', () => {
  const spec = tenantNftSpec(namesFor('abcdefghij'), false);
  const r = renderNftTable(spec);
  const table = (rules: string[]): NftTable => ({
    family: 'inet',
    name: spec.name,
    handle: 1,
    chains: spec.chains.map((c) => ({ name: c.name, type: c.type, hook: c.hook, prio: 0, policy: 'accept' })),
    rules: rules.map((fp, i) => ({ chain: fp.split('\t')[0], handle: i, comment: fp.split('\t')[1] })),
    sets: [],
  });
  assert.equal(nftIsCurrent(spec, table(r.fingerprint)), true);
  assert.equal(nftIsCurrent(spec, table([])), false, 'flushed');
  assert.equal(nftIsCurrent(spec, table(r.fingerprint.slice(1))), false, 'a rule deleted');
  assert.equal(nftIsCurrent(tenantNftSpec(namesFor('abcdefghij'), true), table(r.fingerprint)), false, 'other content');
  assert.equal(nftIsCurrent(spec, undefined), false);
});

test('nftIsCurrent: the host table also needs its sets with exactly their elements', () => {
  const spec = hostNftSpec(namesFor('abcdefghij'), '169.254.20.2/30', { v4: ['10.0.0.0/8', '203.0.113.7/32'], v6: ['fe80::/10'] });
  const r = renderNftTable(spec);
  const table = (sets: NftTable['sets']): NftTable => ({
    family: 'inet',
    name: spec.name,
    handle: 1,
    chains: spec.chains.map((c) => ({ name: c.name, type: c.type, hook: c.hook, prio: 0, policy: 'accept' })),
    rules: r.fingerprint.map((fp, i) => ({ chain: fp.split('\t')[0], handle: i, comment: fp.split('\t')[1] })),
    sets,
  });
  const both = [
    { name: 'blocked4', elements: ['203.0.113.7/32', '10.0.0.0/8'] },
    { name: 'blocked6', elements: ['fe80::/10'] },
  ];
  assert.equal(nftIsCurrent(spec, table(both)), true, 'in any order');
  assert.equal(nftIsCurrent(spec, table([{ ...both[0], elements: [] }, both[1]])), false, 'a flushed set');
  assert.equal(nftIsCurrent(spec, table([{ ...both[0], elements: ['10.0.0.0/8'] }, both[1]])), false, 'an element deleted');
  assert.equal(nftIsCurrent(spec, table([both[1]])), false, 'a set missing');
});

test('IP helpers: canonical CIDRs and endpoints (RFC 5952), masks', () => {
  assert.equal(canonicalCidr('10.1.3.7/24'), '10.1.3.0/24');
  assert.equal(canonicalCidr('2001:DB8:0:0:0:0:0:1/64'), '2001:db8::/64');
  assert.equal(canonicalCidr('fe80::1:0:0:1/128'), 'fe80::1:0:0:1/128');
  assert.equal(canonicalCidr('10.0.0.1'), '10.0.0.1/32');
  assert.equal(formatCidr(parseCidr('::ffff:10.0.0.1/128')!), '::ffff:10.0.0.1/128');
  assert.equal(canonicalEndpoint('203.0.113.1:51820'), '203.0.113.1:51820');
  assert.equal(canonicalEndpoint('[2001:db8:0::1]:1'), '[2001:db8::1]:1');
  for (const bad of ['203.0.113.1', '2001:db8::1:5', '[203.0.113.1]:5', '1.2.3.4:0', '1.2.3.4:70000', '01.2.3.4:5']) assert.equal(canonicalEndpoint(bad), null, bad);
  assert.throws(() => canonicalCidr('10.0.0.0/33'));
});

test('egress transfer blocks: /30s of 169.254/16 outside reserved ranges, probed past used ones', () => {
  const seen = new Set<string>();
  for (let i = 0; i < EGRESS_BLOCK_COUNT; i += 97) {
    const b = formatCidr(egressBlock(i));
    assert.match(b, /^169\.254\.\d+\.\d+\/30$/);
    assert.ok(!b.startsWith('169.254.169.') && !b.startsWith('169.254.0.') && !b.startsWith('169.254.255.'), b);
    seen.add(b);
  }
  const first = allocateEgressBlock('abcdefghij', []);
  assert.deepEqual(allocateEgressBlock('abcdefghij', []), first, 'deterministic');
  const next = allocateEgressBlock('abcdefghij', [first.hostAddr]);
  assert.notEqual(next.block, first.block);
  assert.equal(first.hostAddr.split('/')[1], '30');
  assert.ok(isEgressHostAddr(first.hostAddr));
  assert.ok(!isEgressHostAddr(first.tenantAddr));
});

test('names fit 15 characters and markers read back', () => {
  const n = namesFor('abcdefghij');
  for (const name of [n.ns, n.wg, n.bridge, n.hostVeth, n.tenantVeth]) assert.ok(name.length <= 15, name);
  assert.equal(idFromName('ze-abcdefghij'), 'abcdefghij');
  assert.equal(idFromName('zmesh_h_abcdefghij'), 'abcdefghij');
  assert.equal(idFromName('eth0'), null);
  assert.equal(idFromMarker('zmesh:abcdefghij'), 'abcdefghij');
  assert.equal(idFromMarker('zmesh:x'), null);
  assert.throws(() => namesFor('ABC'), /10 characters/);
});

test('validateDesired: every problem is listed before any side effect', () => {
  const plan = handPlan({ ipRange: '10.1.0.0/16', nodes: [{ node: 'a', underlay: '203.0.113.1' }, { node: 'b', underlay: '203.0.113.2' }], seed: 'v' });
  const d = plan.desired.get('a')!;
  assert.deepEqual(validateDesired(d), []);
  const bad = structuredClone(d);
  bad.resource.subnet = '10.2.1.0/24';
  bad.resource.listenPort = 0;
  bad.resource.peers[0].endpoint = 'nowhere';
  bad.resource.peers.push(structuredClone(bad.resource.peers[0]));
  assert.deepEqual(validateDesired(bad), [
    'subnet 10.2.1.0/24 is not inside the range 10.1.0.0/16',
    'gateway "10.1.1.1" is not an address of the subnet',
    'wgAddress "10.1.1.254/32" is not a /32 of the subnet',
    'listenPort 0 is not a port',
    'peers[0] (b): bad endpoint "nowhere"',
    'peers[1] (b): duplicate publicKey',
    'peers[1] (b): bad endpoint "nowhere"',
  ]);
});

test('diffLink: a bridge that borrowed a port MAC (or an older agent made) gets its own; a matching one is left alone', () => {
  const want = { name: 'b-abcdefghij', mtu: 1420, alias: 'zmesh:abcdefghij', mac: '02:5a:0a:01:03:01', addrs: ['10.1.3.1/24'] };
  const base = { mtu: 1420, up: true, alias: 'zmesh:abcdefghij', addrs: [{ dev: 'b-abcdefghij', family: 'inet' as const, cidr: '10.1.3.1/24', scope: 'global' }] };
  assert.deepEqual(diffLink(want, link({ ...base, mac: 'de:ad:be:ef:00:01' })), { set: ['link set dev b-abcdefghij address 02:5a:0a:01:03:01'], addrAdd: [], addrDel: [] });
  assert.deepEqual(diffLink(want, link({ ...base, mac: '02:5a:0a:01:03:01' })), { set: [], addrAdd: [], addrDel: [] });
});
