// Dual-stack networks in the netns driver (issue #20): the layout (addresses, routes, nft in both families),
// exact command text (`nodad`, the one sysctl), the process count of a new network (the same as IPv4-only), a
// no-op re-apply with zero mutating commands, drift repaired, IPv6 allowed-ips compared canonically (RFC 5952).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Driver, type ApplyReport } from '../../netns/index.ts';
import { buildIpBatch, ip, renderNftTable } from '../../netns/build.ts';
import { diffLink, diffPeers } from '../../netns/diff.ts';
import { layoutFor, normalizePeers, policyNft, tenantNftSpec, validateDesired } from '../../netns/layout.ts';
import { namesFor } from '../../netns/names.ts';
import { parseIpRoutes, parseIpv6Forwarding, parseWgDump, policyCounters, type IpLink } from '../../netns/parse.ts';
import { NS_READ6 } from '../../netns/state.ts';
import { FakeOs } from '../helpers/fake-os.ts';
import { handPlan } from '../helpers/plan.ts';

const stateDir = mkdtempSync(join(tmpdir(), 'zmesh-dual-'));
test.after(() => rmSync(stateDir, { recursive: true, force: true }));

const ID = 'dualstack1';

function plan() {
  return handPlan({
    ipRange: '10.40.0.0/16',
    ipv6Range: 'fd00:40::/48',
    networkId: ID,
    nodes: [
      { node: 'a', underlay: '198.51.100.1' },
      { node: 'b', underlay: '198.51.100.2' },
      { node: 'h', hidden: true, accessNode: 'a' },
    ],
    seed: 'dual',
  });
}

function ok(r: ApplyReport, os: FakeOs): void {
  assert.deepEqual(os.unexpected, [], 'the fake saw only expected commands');
  assert.ok(r.ok, JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1));
}

test('layout: gateway6 on the bridge, wgAddress6 (/128) on the tunnel, the IPv6 range through it', () => {
  const d = plan().desired.get('a')!;
  const l = layoutFor(d, { underlayMtu: 1500, wgKind: 'wireguard', egressAddrs: null });
  assert.deepEqual(
    l.links.map((x) => [x.name, x.addrs]),
    [
      [`b-${ID}`, ['10.40.1.1/24', 'fd00:40:0:1::1/64']],
      [`w-${ID}`, ['10.40.1.254/32', 'fd00:40:0:1::fe/128']],
    ],
  );
  assert.deepEqual(l.routes, [
    { dst: '10.40.0.0/16', dev: `w-${ID}`, gateway: null },
    { dst: 'fd00:40::/48', dev: `w-${ID}`, gateway: null },
  ]);
  // Peers: both families, IPv4 first, each sorted.
  assert.deepEqual(
    l.wg.peers.map((p) => p.allowedIps),
    [d.resource.peers.find((p) => p.publicKey === l.wg.peers[0].publicKey)!.allowedIps, d.resource.peers.find((p) => p.publicKey === l.wg.peers[1].publicKey)!.allowedIps],
  );
  assert.ok(l.wg.peers.every((p) => p.allowedIps.length === 2 && !p.allowedIps[0].includes(':') && p.allowedIps[1].startsWith('fd00:40:0:')));
  // IPv4-only (no ipRange6): exactly the IPv4 layout, whatever IPv6 fields the resource carries.
  const { ipRange6: _drop, ...v4 } = d;
  const l4 = layoutFor(v4, { underlayMtu: 1500, wgKind: 'wireguard', egressAddrs: null });
  assert.deepEqual(l4.links.map((x) => x.addrs), [['10.40.1.1/24'], ['10.40.1.254/32']]);
  assert.deepEqual(l4.routes, [{ dst: '10.40.0.0/16', dev: `w-${ID}`, gateway: null }]);
  assert.equal(renderNftTable(l4.nftTenant).text, renderNftTable(tenantNftSpec(namesFor(ID), false, '10.40.1.0/24')).text);
});

test('exact text: IPv6 addresses are added nodad, IPv4 ones as before; routes need no family flag', () => {
  assert.equal(ip.addrAdd('fd00:40:0:1::1/64', 'b-x'), 'address add fd00:40:0:1::1/64 dev b-x nodad');
  assert.equal(ip.addrAdd('10.40.1.1/24', 'b-x'), 'address add 10.40.1.1/24 dev b-x');
  assert.equal(ip.routeReplace({ dst: 'fd00:40::/48', dev: 'w-x' }), 'route replace fd00:40::/48 dev w-x proto static');
  // The bridge as the kernel shows it after a dual-stack apply: the link-local address is left alone.
  const have: IpLink = {
    index: 3,
    name: 'b-x',
    kind: 'bridge',
    mtu: 1420,
    up: true,
    operstate: 'UP',
    alias: 'zmesh:x',
    master: null,
    mac: '02:5a:0a:28:01:01',
    addrs: [
      { dev: 'b-x', family: 'inet', cidr: '10.40.1.1/24', scope: 'global' },
      { dev: 'b-x', family: 'inet6', cidr: 'fd00:40:0:1::1/64', scope: 'global' },
      { dev: 'b-x', family: 'inet6', cidr: 'fe80::5a:aff:fe28:101/64', scope: 'link' },
    ],
  };
  const want = { name: 'b-x', mtu: 1420, alias: 'zmesh:x', mac: '02:5a:0a:28:01:01', addrs: ['10.40.1.1/24', 'fd00:40:0:1::1/64'] };
  assert.deepEqual(diffLink(want, have), { set: [], addrAdd: [], addrDel: [] });
  const lost = { ...have, addrs: have.addrs.filter((a) => a.family === 'inet') };
  assert.deepEqual(diffLink(want, lost), { set: [], addrAdd: ['address add fd00:40:0:1::1/64 dev b-x nodad'], addrDel: [] });
  const stale = { ...have, addrs: [...have.addrs, { dev: 'b-x', family: 'inet6' as const, cidr: 'fd00:40:0:9::1/64', scope: 'global' }] };
  assert.deepEqual(diffLink(want, stale).addrDel, ['address del fd00:40:0:9::1/64 dev b-x']);
});

test('reads: `route show table all` keeps the main table of both families; IPv6 forwarding from netconf', () => {
  assert.equal(NS_READ6, 'address show\nroute show table all\nnetconf show\n');
  const routes = parseIpRoutes([
    { dst: '10.40.0.0/16', dev: 'w-x', protocol: 'static', scope: 'link', flags: [] },
    { dst: 'fd00:40::/48', dev: 'w-x', protocol: 'static', metric: 1024, flags: [], pref: 'medium' },
    { dst: 'fd00:40:0:1::/64', dev: 'b-x', protocol: 'kernel', metric: 256, flags: [] },
  ]);
  assert.deepEqual(routes.map((r) => [r.dst, r.type, r.protocol]), [
    ['10.40.0.0/16', 'unicast', 'static'],
    ['fd00:40::/48', 'unicast', 'static'],
    ['fd00:40:0:1::/64', 'unicast', 'kernel'],
  ]);
  assert.equal(parseIpv6Forwarding([{ family: 'inet', interface: 'all', forwarding: true }, { family: 'inet6', interface: 'all', forwarding: true }]), true);
  assert.equal(parseIpv6Forwarding([{ family: 'inet', interface: 'all', forwarding: true }]), false, 'no IPv6 in the namespace');
});

test('peers: IPv6 allowed-ips compare canonically (RFC 5952): the way wg prints them is no change', () => {
  const key = (c: string) => Buffer.alloc(32, c).toString('base64');
  const desired = normalizePeers([
    // Written long-hand and upper case in a plan: canonicalised before the comparison.
    { node: 'b', kind: 'node', publicKey: key('b'), endpoint: '[2001:DB8:0:0::1]:51820', allowedIps: ['FD00:40:0:2:0:0:0:0/64', '10.40.2.0/24'], persistentKeepalive: null },
  ]);
  assert.deepEqual(desired[0].allowedIps, ['10.40.2.0/24', 'fd00:40:0:2::/64']);
  assert.equal(desired[0].endpoint, '[2001:db8::1]:51820');
  const dump = `(none)\t${key('a')}\t51820\toff\n${key('b')}\t(none)\t[2001:db8::1]:51820\tfd00:40:0:2::/64,10.40.2.0/24\t0\t0\t0\toff\n`;
  const actual = parseWgDump(dump).peers;
  assert.deepEqual(actual[0].allowedIps, ['fd00:40:0:2::/64', '10.40.2.0/24']);
  assert.deepEqual(diffPeers(desired, actual, 1_700_000_000), []);
  // A changed IPv6 entry is one update with both families.
  const moved = parseWgDump(dump.replace('fd00:40:0:2::/64', 'fd00:40:0:3::/64')).peers;
  assert.deepEqual(diffPeers(desired, moved, 1_700_000_000), [{ op: 'update', publicKey: key('b'), allowedIps: ['10.40.2.0/24', 'fd00:40:0:2::/64'] }]);
});

test('validateDesired: the IPv6 fields are checked against the IPv6 range before any side effect', () => {
  const d = plan().desired.get('a')!;
  assert.deepEqual(validateDesired(d), []);
  const bad = structuredClone(d);
  bad.ipRange6 = '10.0.0.0/8';
  bad.resource.subnet6 = 'fd00:41:0:1::/64';
  bad.resource.gateway6 = 'fd00:40:0:2::1';
  bad.resource.wgAddress6 = 'fd00:40:0:1::fe/64';
  assert.deepEqual(validateDesired(bad), [
    'ipRange6 "10.0.0.0/8" is not an IPv6 CIDR',
    'gateway6 "fd00:40:0:2::1" is not an address of subnet6',
    'wgAddress6 "fd00:40:0:1::fe/64" is not a /128 of subnet6',
  ]);
  const outside = structuredClone(d);
  outside.resource.subnet6 = 'fd00:41:0:1::/64';
  assert.deepEqual(validateDesired(outside).slice(0, 1), ['subnet6 fd00:41:0:1::/64 is not inside the range fd00:40::/48']);
  const missing = structuredClone(d);
  delete missing.resource.wgAddress6;
  assert.deepEqual(validateDesired(missing), ['wgAddress6 undefined is not a /128 of subnet6']);
  // A device's IPv6 subnet may be among the egress sources (it gets no exception: egress is IPv4).
  assert.deepEqual(validateDesired({ ...d, egressDevices: ['10.40.9.0/24', 'fd00:40:0:9::/64'] }), []);
  assert.deepEqual(validateDesired({ ...d, egressDevices: ['fd00:99::/64'] }), ['egressDevices: "fd00:99::/64" is not a CIDR inside the range']);
});

test('nft: anti-spoofing in both families; IPv6 never leaves by the egress veth', () => {
  const names = namesFor(ID);
  const spec = tenantNftSpec(names, true, '10.40.1.0/24', ['10.40.9.0/24', 'fd00:40:0:9::/64'], undefined, 'fd00:40:0:1::/64');
  const rules = spec.chains.flatMap((c) => c.rules.map((r) => `${c.name} ${r.tag}: ${r.rule}`));
  assert.deepEqual(rules, [
    `input in-spoof: iifname "b-${ID}" ip saddr != 10.40.1.0/24 counter drop`,
    `input in-spoof6: iifname "b-${ID}" ip6 saddr != { fd00:40:0:1::/64, fe80::/10 } counter drop`,
    'input in-established: ct state established,related accept',
    `input in-drop-outside: iifname "eg-${ID}" counter drop`,
    'forward mss-clamp: tcp flags syn tcp option maxseg size set rt mtu',
    `forward fwd-spoof: iifname "b-${ID}" ip saddr != 10.40.1.0/24 counter drop`,
    `forward fwd-spoof6: iifname "b-${ID}" ip6 saddr != fd00:40:0:1::/64 counter drop`,
    `forward tunnel-egress: iifname "w-${ID}" oifname "eg-${ID}" ip saddr != { 10.40.9.0/24 } counter drop`,
    `forward egress-v6: oifname "eg-${ID}" meta nfproto ipv6 counter drop`,
    'forward fwd-established: ct state established,related accept',
    `forward fwd-drop-outside: iifname "eg-${ID}" counter drop`,
    `output out-spoof: oifname "w-${ID}" ip saddr != 10.40.1.0/24 counter drop`,
    `output out-spoof6: oifname "w-${ID}" ip6 saddr != fd00:40:0:1::/64 counter drop`,
    `postrouting egress-masquerade: oifname "eg-${ID}" masquerade`,
  ]);
});

test('policy: each family its sets and rules; neighbour discovery passes; IPv4-only output unchanged', () => {
  const p = {
    range: '10.40.0.0/16',
    range6: 'fd00:40::/48',
    default: 'deny' as const,
    local: ['10.40.1.1/32', '10.40.1.254/32', 'fd00:40:0:1::1/128', 'fd00:40:0:1::fe/128'],
    rules: [
      { index: 0, from: ['10.40.2.0/24', 'fd00:40:0:2::/64'], to: ['10.40.1.1/32', 'fd00:40:0:1::1/128'], tcp: ['80'], udp: [], icmp: true, any: false },
      { index: 1, from: ['fd00:40:0:3::/64'], to: ['fd00:40:0:1::fe/128'], tcp: [], udp: ['53'], icmp: false, any: false },
    ],
  };
  const n = policyNft(p);
  assert.deepEqual(n.sets.map((s) => `${s.name} ${s.type}: ${s.elements.join(',')}`), [
    'pol_local ipv4_addr: 10.40.1.1/32,10.40.1.254/32',
    'pol_local6 ipv6_addr: fd00:40:0:1::1/128,fd00:40:0:1::fe/128',
    'r0_from ipv4_addr: 10.40.2.0/24',
    'r0_to ipv4_addr: 10.40.1.1/32',
    'r0_from6 ipv6_addr: fd00:40:0:2::/64',
    'r0_to6 ipv6_addr: fd00:40:0:1::1/128',
    'r1_from6 ipv6_addr: fd00:40:0:3::/64',
    'r1_to6 ipv6_addr: fd00:40:0:1::fe/128',
  ]);
  assert.deepEqual(n.chains[1].rules.map((r) => `${r.tag}: ${r.rule}`), [
    'pol-nd: icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
    'pol-not-guarded: ip daddr != @pol_local accept',
    'pol-not-guarded6: ip6 daddr != @pol_local6 ip6 daddr != fe80::/10 accept',
    'pol-outside: ip saddr != 10.40.0.0/16 accept',
    'pol-outside6: ip6 saddr != { fd00:40::/48, fe80::/10 } accept',
    'pol-established: ct state established,related accept',
    'r0-tcp: ip saddr @r0_from ip daddr @r0_to tcp dport { 80 } counter accept',
    'r0-icmp: ip saddr @r0_from ip daddr @r0_to meta l4proto icmp counter accept',
    'r0-tcp6: ip6 saddr @r0_from6 ip6 daddr @r0_to6 tcp dport { 80 } counter accept',
    'r0-icmp6: ip6 saddr @r0_from6 ip6 daddr @r0_to6 meta l4proto ipv6-icmp counter accept',
    'r1-udp6: ip6 saddr @r1_from6 ip6 daddr @r1_to6 udp dport { 53 } counter accept',
    'default-drop: counter drop',
  ]);
  // Both families' counters of a rule add up under its index.
  const c = (tag: string, packets: number) => ({ chain: 'policy-fwd', handle: 1, comment: `zmesh:abc:${tag}`, counter: { packets, bytes: packets * 100 }, verdict: 'accept' as const });
  assert.deepEqual(policyCounters([c('r0-tcp', 2), c('r0-tcp6', 3), c('r1-udp6', 1)])?.rules, [
    { index: 0, packets: 5, bytes: 500 },
    { index: 1, packets: 1, bytes: 100 },
  ]);
  // Without range6: the IPv4 policy as before (the other family passes untouched).
  const v4 = policyNft({ ...p, range6: undefined, local: ['10.40.1.1/32'], rules: [{ ...p.rules[0], from: ['10.40.2.0/24'], to: ['10.40.1.1/32'] }] });
  assert.deepEqual(v4.chains[0].rules.slice(0, 2), [
    { tag: 'pol-dns', rule: 'meta l4proto { tcp, udp } th dport 53 accept' },
    { tag: 'pol-other-family', rule: 'ip6 daddr != fe80::/10 accept' },
  ]);
  assert.deepEqual(v4.sets.map((s) => s.name), ['pol_local', 'r0_from', 'r0_to']);
});

function driverFor(os: FakeOs): Driver {
  return new Driver({ runner: os, backend: 'kernel', stateDir, socketDir: join(stateDir, 'wg'), clock: () => 1_700_000_000_000 });
}

test('fake OS: a new dual-stack network costs the same processes as an IPv4-only one; a re-apply issues none', async () => {
  const os = new FakeOs();
  const driver = driverFor(os);
  const net = plan();
  const d = net.desired.get('a')!;
  const r = await driver.apply([d], net.identity.get('a')!);
  ok(r, os);
  const first = os.commands.map((c) => `${c.mutating ? 'M' : 'r'} ${c.argv.slice(0, 3).join(' ')}`);
  // The same 15 processes as test/unit/netns-fake.test.ts pins for IPv4 (issue #18): 10 before the report's
  // read-back, 8 of them mutating.
  assert.deepEqual(first, [
    'r ip -d -json',
    'M ip netns add',
    'M ip link set',
    'M nft -f -',
    'M sysctl -q -w',
    'M ip -batch -',
    'M ip -batch -',
    'r ip -d -json',
    `M wg set w-${ID}`,
    'M ip -force -batch',
    'r ip -d -json',
    `r wg show w-${ID}`,
    'r nft -j list',
    'r ip -d -json',
    'r nft -j list',
  ]);
  const batch = os.commands.find((c) => c.argv.join(' ') === 'ip -force -batch -');
  assert.ok(batch);
  const sysctl = os.commands.find((c) => c.argv[0] === 'sysctl')!;
  assert.deepEqual(sysctl.argv, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.all.accept_ra=0', 'net.ipv6.conf.default.accept_ra=0']);
  assert.deepEqual(r.resources[0].changes.filter((l) => /^(address|route|link set)/.test(l)), [
    `link set dev b-${ID} alias zmesh:${ID} mtu 1420 up`,
    `link set dev w-${ID} up`,
    `address add 10.40.1.1/24 dev b-${ID}`,
    `address add fd00:40:0:1::1/64 dev b-${ID} nodad`,
    `address add 10.40.1.254/32 dev w-${ID}`,
    `address add fd00:40:0:1::fe/128 dev w-${ID} nodad`,
    `route replace 10.40.0.0/16 dev w-${ID} proto static`,
    `route replace fd00:40::/48 dev w-${ID} proto static`,
  ]);
  const peers = (k: string) => d.resource.peers.find((p) => p.node === k)!;
  assert.equal(
    os.dump().split('\n').filter((l) => /^ {2}(route|forwarding)|^ {4}(peer|input|forward|output)|link [bw]-/.test(l)).join('\n'),
    [
      `  link b-${ID} bridge mtu 1420 up alias zmesh:${ID} addrs 10.40.1.1/24,fd00:40:0:1::1/64`,
      `  link w-${ID} wireguard mtu 1420 up alias zmesh:${ID} addrs 10.40.1.254/32,fd00:40:0:1::fe/128`,
      ...['b', 'h']
        .map((k) => peers(k))
        .sort((x, y) => (x.publicKey < y.publicKey ? -1 : 1))
        .map((p) => `    peer ${p.publicKey} endpoint ${p.endpoint ?? '-'} allowed ${p.allowedIps.join(',')} keepalive off`),
      `  route 10.40.0.0/16 dev w-${ID} static`,
      `  route 10.40.1.0/24 dev b-${ID} kernel`,
      `  route fd00:40:0:1::/64 dev b-${ID} kernel`,
      `  route fd00:40::/48 dev w-${ID} static`,
      '  forwarding on',
      '  forwarding6 on accept_ra off',
      '    input filter/input: in-spoof in-spoof6',
      '    forward filter/forward: mss-clamp fwd-spoof fwd-spoof6',
      '    output filter/output: out-spoof out-spoof6',
    ].join('\n'),
  );
  os.commands.length = 0;
  const again = await driver.apply([d], net.identity.get('a')!);
  ok(again, os);
  assert.deepEqual(again.commands, { reads: 4, mutating: 0 }, again.mutations.join('\n'));
});

test('fake OS: IPv6 drift is repaired with exactly the missing piece; IPv6 forwarding turned off comes back', async () => {
  const os = new FakeOs();
  const driver = driverFor(os);
  const net = plan();
  const d = net.desired.get('a')!;
  const id = net.identity.get('a')!;
  ok(await driver.apply([d], id), os);
  const ns = os.namespaces.get(`n-${ID}`)!;
  ns.links.get(`b-${ID}`)!.addrs = ['10.40.1.1/24'];
  ns.routes = ns.routes.filter((r) => r.dst !== 'fd00:40::/48');
  ns.forwarding6 = false;
  const r = await driver.apply([d], id);
  ok(r, os);
  // Forwarding first, then phase B (links, addresses, routes): the table and forwarding before any link change.
  assert.deepEqual(r.resources[0].changes, [
    'net.ipv4.ip_forward=1',
    'net.ipv6.conf.all.forwarding=1',
    'net.ipv6.conf.all.accept_ra=0',
    'net.ipv6.conf.default.accept_ra=0',
    `address add fd00:40:0:1::1/64 dev b-${ID} nodad`,
    `route replace fd00:40::/48 dev w-${ID} proto static`,
  ]);
  assert.equal(r.commands.mutating, 2);
  assert.equal((await driver.apply([d], id)).commands.mutating, 0);
  // A peer's IPv6 allowed-ip changed behind the driver's back: one `wg set` puts both families back.
  const wg = ns.links.get(`w-${ID}`)!.wg!;
  const [k, p] = [...wg.peers][0];
  p.allowedIps = p.allowedIps.filter((c) => !c.includes(':'));
  const fixed = await driver.apply([d], id);
  ok(fixed, os);
  assert.equal(fixed.commands.mutating, 1);
  assert.match(fixed.mutations[0], new RegExp(`^\\[n-${ID}\\] wg set w-${ID} peer ${k.replace(/[+/]/g, '\\$&')} allowed-ips 10\\.40\\.\\d\\.0/24,fd00:40:0:\\d::/64$`));
  // Turning IPv6 off (a plan with `ipv6: false`): the IPv6 addresses and route go, the IPv4 ones stay.
  const { ipRange6: _x, ...v4 } = d;
  const off = await driver.apply([v4], id);
  ok(off, os);
  assert.deepEqual(off.resources[0].changes.filter((l) => !l.startsWith('peer') && !l.startsWith('nft')), [
    `address del fd00:40:0:1::1/64 dev b-${ID}`,
    `address del fd00:40:0:1::fe/128 dev w-${ID}`,
    `route del fd00:40::/48 dev w-${ID} proto static`,
  ]);
  assert.equal(buildIpBatch([]), '');
});
