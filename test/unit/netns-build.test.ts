// Builders against exact text: `ip -batch` scripts, `wg set` argv (+ the secret), nft scripts, and the
// desired layout of a resource.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildIpBatch, buildNftDelete, buildNftReplace, buildWgSet, ip, isEmptyWgChange, renderNftTable } from '../../netns/build.ts';
import { hostNftSpec, layoutFor, tenantNftSpec } from '../../netns/layout.ts';
import { addressMac } from '../../netns/ip.ts';
import { namesFor } from '../../netns/names.ts';
import type { DesiredResource } from '../../netns/types.ts';

const K1 = 'uDQGRd21oGG6fCisU/PmbEOZitpeuhz303F3P3ZSi0Y=';
const K2 = 'vF78/cGqsG+LTCMg/1PBDslFvYhupfEi98xsBbJlMmE=';
const K3 = 'b2Gw5AOAjQFcoC5jl8fbi+xEVGJXTd2gWj8BEAFC8wU=';
const PRIV = 'wJHey2sQhHtGXfhVI9DSoJbsfn2L40RjGW6bP8WXV0I=';

test('ip -batch script for a new resource namespace', () => {
  const n = namesFor('abcdefghij');
  const script = buildIpBatch([
    ip.linkAdd(n.bridge, 'bridge'),
    ip.linkSet('lo', { alias: n.marker, up: true }),
    ip.linkSet(n.bridge, { alias: n.marker, mtu: 1420, up: true }),
    ip.addrAdd('10.1.3.1/24', n.bridge),
    ip.routeReplace({ dst: '10.1.0.0/16', dev: n.wg }),
    ip.routeReplace({ dst: 'default', dev: n.tenantVeth, gateway: '169.254.20.1' }),
    ip.addrDel('10.1.4.1/24', n.bridge),
    ip.routeDel({ dst: '10.2.0.0/16', dev: n.wg }),
  ]);
  assert.equal(
    script,
    'link add name b-abcdefghij type bridge\n' +
      'link set dev lo alias zmesh:abcdefghij up\n' +
      'link set dev b-abcdefghij alias zmesh:abcdefghij mtu 1420 up\n' +
      'address add 10.1.3.1/24 dev b-abcdefghij\n' +
      'route replace 10.1.0.0/16 dev w-abcdefghij proto static\n' +
      'route replace default via 169.254.20.1 dev eg-abcdefghij proto static\n' +
      'address del 10.1.4.1/24 dev b-abcdefghij\n' +
      'route del 10.2.0.0/16 dev w-abcdefghij proto static\n',
  );
  assert.equal(
    buildIpBatch([ip.vethAdd(n.hostVeth, n.tenantVeth, n.ns), ip.linkNetns(n.wg, n.ns), ip.linkDel(n.wg)]),
    'link add name ze-abcdefghij type veth peer name eg-abcdefghij netns n-abcdefghij\nlink set dev w-abcdefghij netns n-abcdefghij\nlink del dev w-abcdefghij\n',
  );
  assert.equal(buildIpBatch([]), '');
  assert.throws(() => ip.linkDel('x y'), /unsafe/);
  assert.throws(() => ip.addrAdd('10.0.0.1/24\nlink del dev eth0', 'b0'), /unsafe/);
});

test('wg set: key from a file, port, peers added, updated and removed one by one in one call', () => {
  const cmds = buildWgSet(
    'w-abcdefghij',
    {
      privateKey: PRIV,
      listenPort: 51820,
      peers: [
        { op: 'add', publicKey: K1, endpoint: '203.0.113.2:51821', allowedIps: ['10.1.2.0/24', '10.1.9.0/24'] },
        { op: 'add', publicKey: K2, persistentKeepalive: 25, allowedIps: ['10.1.4.0/24'] },
        { op: 'update', publicKey: K3, endpoint: '[2001:db8::1]:51822', persistentKeepalive: null, allowedIps: [] },
        { op: 'remove', publicKey: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
      ],
    },
    '{{secret-file}}',
  );
  assert.deepEqual(cmds, [
    {
      argv: [
        'wg', 'set', 'w-abcdefghij', 'listen-port', '51820', 'private-key', '{{secret-file}}',
        'peer', K1, 'endpoint', '203.0.113.2:51821', 'allowed-ips', '10.1.2.0/24,10.1.9.0/24',
        'peer', K2, 'persistent-keepalive', '25', 'allowed-ips', '10.1.4.0/24',
        'peer', K3, 'endpoint', '[2001:db8::1]:51822', 'persistent-keepalive', 'off', 'allowed-ips', '',
        'peer', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'remove',
      ],
      secret: `${PRIV}\n`,
    },
  ]);
  assert.ok(!cmds[0].argv.join(' ').includes(PRIV), 'never in argv');
});

test('wg set: one peer changed is one short call; a huge change splits by whole peers', () => {
  assert.deepEqual(buildWgSet('w-x', { peers: [{ op: 'update', publicKey: K1, allowedIps: ['10.1.2.0/24'] }] }), [
    { argv: ['wg', 'set', 'w-x', 'peer', K1, 'allowed-ips', '10.1.2.0/24'] },
  ]);
  assert.deepEqual(buildWgSet('w-x', { peers: [] }), []);
  assert.ok(isEmptyWgChange({ peers: [] }));
  const many = Array.from({ length: 10 }, () => ({ op: 'remove' as const, publicKey: K1 }));
  const split = buildWgSet('w-x', { listenPort: 1, peers: many }, '/dev/stdin', 200);
  assert.ok(split.length > 1);
  assert.deepEqual(split[0].argv.slice(0, 5), ['wg', 'set', 'w-x', 'listen-port', '1']);
  assert.equal(split.flatMap((c) => c.argv).filter((a) => a === 'remove').length, 10);
  for (const c of split.slice(1)) assert.deepEqual(c.argv.slice(0, 4), ['wg', 'set', 'w-x', 'peer']);
});

test('nft: the tenant table, replaced atomically, with fingerprinted rule comments', () => {
  const spec = tenantNftSpec(namesFor('abcdefghij'), true);
  const r = renderNftTable(spec);
  const h = r.hash;
  assert.match(h, /^[0-9a-f]{10}$/);
  assert.equal(
    buildNftReplace(spec),
    'table inet zmesh_abcdefghij\n' +
      'delete table inet zmesh_abcdefghij\n' +
      'table inet zmesh_abcdefghij {\n' +
      '\tcomment "zmesh:abcdefghij tenant namespace rules"\n' +
      '\tchain input {\n' +
      '\t\ttype filter hook input priority filter; policy accept;\n' +
      `\t\tiifname "b-abcdefghij" icmpv6 type { nd-router-advert, nd-redirect } counter drop comment "zmesh:${h}:in-ra"\n` +
      `\t\tct state established,related accept comment "zmesh:${h}:in-established"\n` +
      `\t\tiifname "eg-abcdefghij" counter drop comment "zmesh:${h}:in-drop-outside"\n` +
      '\t}\n' +
      '\tchain forward {\n' +
      '\t\ttype filter hook forward priority filter; policy accept;\n' +
      `\t\ttcp flags syn tcp option maxseg size set rt mtu comment "zmesh:${h}:mss-clamp"\n` +
      `\t\tiifname "w-abcdefghij" oifname "eg-abcdefghij" counter drop comment "zmesh:${h}:tunnel-egress"\n` +
      `\t\tct state established,related accept comment "zmesh:${h}:fwd-established"\n` +
      `\t\tiifname "eg-abcdefghij" counter drop comment "zmesh:${h}:fwd-drop-outside"\n` +
      '\t}\n' +
      '\tchain postrouting {\n' +
      '\t\ttype nat hook postrouting priority srcnat; policy accept;\n' +
      `\t\toifname "eg-abcdefghij" masquerade comment "zmesh:${h}:egress-masquerade"\n` +
      '\t}\n' +
      '}\n',
  );
  assert.deepEqual(r.fingerprint, [
    `forward\tzmesh:${h}:fwd-drop-outside`,
    `forward\tzmesh:${h}:fwd-established`,
    `forward\tzmesh:${h}:mss-clamp`,
    `forward\tzmesh:${h}:tunnel-egress`,
    `input\tzmesh:${h}:in-drop-outside`,
    `input\tzmesh:${h}:in-established`,
    `input\tzmesh:${h}:in-ra`,
    `postrouting\tzmesh:${h}:egress-masquerade`,
  ]);
  assert.notEqual(renderNftTable(tenantNftSpec(namesFor('abcdefghij'), false)).hash, h, 'the hash follows the content');
  assert.equal(buildNftDelete('inet', 'zmesh_h_abcdefghij'), 'delete table inet zmesh_h_abcdefghij\n');
});

test('nft: the host table for egress, with the blocked destinations as interval sets', () => {
  const blocked = { v4: ['10.0.0.0/8', '198.51.100.0/24', '203.0.113.7/32', '224.0.0.0-255.255.255.255'], v6: ['fc00::/7', 'fe80::/10'], uplinks: ['eth0', 'wan1'] };
  const spec = hostNftSpec(namesFor('abcdefghij'), '169.254.20.2/30', blocked);
  const { text, hash: h } = renderNftTable(spec);
  assert.equal(
    text,
    'table inet zmesh_h_abcdefghij {\n' +
      '\tcomment "zmesh:abcdefghij host rules for egress"\n' +
      '\tset blocked4 {\n' +
      '\t\ttype ipv4_addr\n' +
      '\t\tflags interval\n' +
      '\t\telements = { 10.0.0.0/8, 198.51.100.0/24, 203.0.113.7/32, 224.0.0.0-255.255.255.255 }\n' +
      '\t}\n' +
      '\tset blocked6 {\n' +
      '\t\ttype ipv6_addr\n' +
      '\t\tflags interval\n' +
      '\t\telements = { fc00::/7, fe80::/10 }\n' +
      '\t}\n' +
      '\tchain input {\n' +
      '\t\ttype filter hook input priority filter; policy accept;\n' +
      `\t\tiifname "ze-abcdefghij" drop comment "zmesh:${h}:tenant-to-host"\n` +
      '\t}\n' +
      '\tchain forward {\n' +
      '\t\ttype filter hook forward priority filter; policy accept;\n' +
      `\t\tiifname "ze-abcdefghij" ip saddr != 169.254.20.2 drop comment "zmesh:${h}:egress-spoof"\n` +
      `\t\tiifname "ze-abcdefghij" oifname "ze-*" drop comment "zmesh:${h}:tenant-to-tenant"\n` +
      `\t\tiifname "ze-abcdefghij" oifname != { "eth0", "wan1" } drop comment "zmesh:${h}:egress-uplink"\n` +
      `\t\tiifname "ze-abcdefghij" ct state new ct count over 4096 drop comment "zmesh:${h}:egress-conns"\n` +
      `\t\tiifname "ze-abcdefghij" ip daddr @blocked4 drop comment "zmesh:${h}:egress-blocked"\n` +
      `\t\tiifname "ze-abcdefghij" ip6 daddr @blocked6 drop comment "zmesh:${h}:egress-blocked6"\n` +
      `\t\tiifname "ze-abcdefghij" meta nfproto ipv6 drop comment "zmesh:${h}:egress-v6"\n` +
      `\t\toifname "ze-abcdefghij" ct state established,related accept comment "zmesh:${h}:replies-in"\n` +
      `\t\toifname "ze-abcdefghij" drop comment "zmesh:${h}:no-new-inbound"\n` +
      '\t}\n' +
      '\tchain postrouting {\n' +
      '\t\ttype nat hook postrouting priority srcnat; policy accept;\n' +
      `\t\tip saddr 169.254.20.2 masquerade comment "zmesh:${h}:egress-masquerade"\n` +
      '\t}\n' +
      '}\n',
  );
  // The sets are part of the definition: another element is another hash, so the table is rewritten.
  const moved = hostNftSpec(namesFor('abcdefghij'), '169.254.20.2/30', { ...blocked, v4: [...blocked.v4.slice(0, 2), '203.0.113.8/32', blocked.v4[3]] });
  assert.notEqual(renderNftTable(moved).hash, h);
  // No default route: nothing leaves.
  assert.match(renderNftTable(hostNftSpec(namesFor('abcdefghij'), '169.254.20.2/30', { ...blocked, uplinks: [] })).text, /\t\tiifname "ze-abcdefghij" drop comment "zmesh:[0-9a-f]+:egress-uplink"\n/);
  // An empty set (an operator allowed everything) is declared without elements.
  assert.match(renderNftTable(hostNftSpec(namesFor('abcdefghij'), '169.254.20.2/30', { v4: [], v6: [] })).text, /\tset blocked4 \{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\}\n/);
});

test('nft: with egress, nothing from the tunnel leaves by the egress veth unless it comes from a device with egress', () => {
  const n = namesFor('abcdefghij');
  const forward = (devices: string[]) => tenantNftSpec(n, true, '10.1.2.0/24', devices).chains.find((c) => c.name === 'forward')!.rules;
  assert.deepEqual(forward([]), [
    { tag: 'mss-clamp', rule: 'tcp flags syn tcp option maxseg size set rt mtu' },
    { tag: 'fwd-spoof', rule: 'iifname "b-abcdefghij" ip saddr != 10.1.2.0/24 counter drop' },
    { tag: 'tunnel-egress', rule: 'iifname "w-abcdefghij" oifname "eg-abcdefghij" counter drop' },
    { tag: 'fwd-established', rule: 'ct state established,related accept' },
    { tag: 'fwd-drop-outside', rule: 'iifname "eg-abcdefghij" counter drop' },
  ]);
  assert.deepEqual(
    forward(['10.1.9.0/24', '10.1.7.5/24', '10.1.9.0/24']).find((r) => r.tag === 'tunnel-egress'),
    { tag: 'tunnel-egress', rule: 'iifname "w-abcdefghij" oifname "eg-abcdefghij" ip saddr != { 10.1.7.0/24, 10.1.9.0/24 } counter drop' },
    'canonical, sorted, unique',
  );
  assert.ok(!tenantNftSpec(n, false, '10.1.2.0/24', ['10.1.9.0/24']).chains.some((c) => c.rules.some((r) => r.tag === 'tunnel-egress')), 'no egress, no veth, no rule');
});

test('nft: the tenant table with its subnet drops spoofed sources from the bridge and into the tunnel; no egress, no conntrack rules', () => {
  const spec = tenantNftSpec(namesFor('abcdefghij'), false, '10.1.2.0/24');
  const { text, hash: h } = renderNftTable(spec);
  assert.equal(
    text,
    'table inet zmesh_abcdefghij {\n' +
      '\tcomment "zmesh:abcdefghij tenant namespace rules"\n' +
      '\tchain input {\n' +
      '\t\ttype filter hook input priority filter; policy accept;\n' +
      `\t\tiifname "b-abcdefghij" icmpv6 type { nd-router-advert, nd-redirect } counter drop comment "zmesh:${h}:in-ra"\n` +
      `\t\tiifname "b-abcdefghij" ip saddr != 10.1.2.0/24 counter drop comment "zmesh:${h}:in-spoof"\n` +
      '\t}\n' +
      '\tchain forward {\n' +
      '\t\ttype filter hook forward priority filter; policy accept;\n' +
      `\t\ttcp flags syn tcp option maxseg size set rt mtu comment "zmesh:${h}:mss-clamp"\n` +
      `\t\tiifname "b-abcdefghij" ip saddr != 10.1.2.0/24 counter drop comment "zmesh:${h}:fwd-spoof"\n` +
      '\t}\n' +
      '\tchain output {\n' +
      '\t\ttype filter hook output priority filter; policy accept;\n' +
      `\t\toifname "w-abcdefghij" ip saddr != 10.1.2.0/24 counter drop comment "zmesh:${h}:out-spoof"\n` +
      '\t}\n' +
      '}\n',
  );
});

test('layout of a resource: names, MTU = underlay − 80, addresses, routes, normalized peers', () => {
  const d: DesiredResource = {
    tenant: 'acme',
    networkId: 'abcdefghij',
    networkName: 'net',
    ipRange: '10.1.0.0/16',
    egress: true,
    resource: {
      node: 'n1',
      subnet: '10.1.3.0/24',
      gateway: '10.1.3.1',
      wgAddress: '10.1.3.254/32',
      listenPort: 51820,
      publicKey: K3,
      sealedPrivateKey: 'zs1.x',
      sealedTo: K3,
      hidden: false,
      accessNode: null,
      peers: [
        { node: 'b', kind: 'node', publicKey: K2, endpoint: '[2001:DB8::1]:5', allowedIps: ['10.1.4.7/24', '10.1.4.0/24'], persistentKeepalive: 0 },
        { node: 'a', kind: 'node', publicKey: K1, endpoint: null, allowedIps: ['10.1.2.0/24'], persistentKeepalive: 25 },
      ],
    },
  };
  const l = layoutFor(d, { underlayMtu: 1400, wgKind: 'tun', egressAddrs: { hostAddr: '169.254.20.1/30', tenantAddr: '169.254.20.2/30' } });
  assert.equal(l.overlayMtu, 1320);
  assert.deepEqual(l.links, [
    { name: 'b-abcdefghij', kind: 'bridge', mtu: 1320, alias: 'zmesh:abcdefghij', mac: '02:5a:0a:01:03:01', addrs: ['10.1.3.1/24'] },
    { name: 'w-abcdefghij', kind: 'tun', mtu: 1320, alias: 'zmesh:abcdefghij', addrs: ['10.1.3.254/32'] },
    { name: 'eg-abcdefghij', kind: 'veth', mtu: 1400, alias: 'zmesh:abcdefghij', addrs: ['169.254.20.2/30'] },
  ]);
  assert.deepEqual(l.routes, [
    { dst: '10.1.0.0/16', dev: 'w-abcdefghij', gateway: null },
    { dst: 'default', dev: 'eg-abcdefghij', gateway: '169.254.20.1' },
  ]);
  assert.deepEqual(l.wg.peers, [
    { publicKey: K1, endpoint: null, allowedIps: ['10.1.2.0/24'], persistentKeepalive: 25 },
    { publicKey: K2, endpoint: '[2001:db8::1]:5', allowedIps: ['10.1.4.0/24'], persistentKeepalive: null },
  ]);
  assert.deepEqual(l.egress?.hostLink, { name: 'ze-abcdefghij', kind: 'veth', mtu: 1400, alias: 'zmesh:abcdefghij', addrs: ['169.254.20.1/30'] });
});

test('addressMac: 02:5a and the four bytes of the address; the bridge is created with it', () => {
  assert.equal(addressMac('10.1.3.1'), '02:5a:0a:01:03:01');
  assert.equal(addressMac('192.168.255.10'), '02:5a:c0:a8:ff:0a');
  assert.throws(() => addressMac('10.1.3'), /not an IPv4 address/);
  assert.throws(() => addressMac('10.1.3.256'), /not an IPv4 address/);
  assert.equal(ip.linkAdd('b-abcdefghij', 'bridge', '02:5a:0a:01:03:01'), 'link add name b-abcdefghij address 02:5a:0a:01:03:01 type bridge');
  assert.equal(ip.linkSet('b-abcdefghij', { address: '02:5a:0a:01:03:01' }), 'link set dev b-abcdefghij address 02:5a:0a:01:03:01');
});
