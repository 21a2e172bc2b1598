// Where egress never goes (netns/egress.ts), against exact set elements: special ranges, the host's own
// addresses and routes, the mesh's endpoints, the control plane, and the operator's allow/deny.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkEgressCidrs, egressBlocked, SPECIAL_V4, SPECIAL_V6 } from '../../netns/egress.ts';

const NONE = { addresses: [], routes: [], peerEndpoints: [] };

test('by default: private and special ranges of both families; the documentation ranges stay open', () => {
  assert.deepEqual(egressBlocked(NONE), {
    v4: [
      '0.0.0.0/8',
      '10.0.0.0/8',
      '100.64.0.0/10',
      '127.0.0.0/8',
      '169.254.0.0/16',
      '172.16.0.0/12',
      '192.0.0.0/24',
      '192.88.99.0/24',
      '192.168.0.0/16',
      '198.18.0.0/15',
      '224.0.0.0/3', // multicast 224/4 and reserved 240/4 (with 255.255.255.255), merged
    ],
    // ::/8 (loopback, v4-mapped, NAT64, …) and 100::/64 (discard) are adjacent: one range.
    v6: ['::-100::ffff:ffff:ffff:ffff', '2001::/23', '2002::/16', 'fc00::/7', 'fe80::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  });
  for (const open of ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24']) assert.ok(!SPECIAL_V4.includes(open), open);
  assert.ok(!SPECIAL_V6.some((c) => c.startsWith('2001:db8')));
});

test("a hidden node on a home LAN: its own addresses, the LAN (router and neighbours), its access node, etcd", () => {
  const got = egressBlocked(
    {
      addresses: ['127.0.0.1/8', '198.51.100.2/24', '169.254.20.1/30', '::1/128', 'fe80::5/64', '2001:db8:1::2/64'],
      routes: ['default', '198.51.100.0/24', '10.9.0.0/16', '169.254.20.0/30', '203.0.113.128/25', 'default', '2001:db8:1::/64', 'fe80::/64'],
      peerEndpoints: ['203.0.113.3:51820', '203.0.113.4:51821', '[2001:db8:9::1]:51820', 'garbage'],
    },
    { controlPlane: ['203.0.113.1'], nodeAddresses: ['192.0.2.77'] },
  );
  assert.deepEqual(got, {
    v4: [
      '0.0.0.0/8',
      '10.0.0.0/8',
      '100.64.0.0/10',
      '127.0.0.0/8',
      '169.254.0.0/16',
      '172.16.0.0/12',
      '192.0.0.0/24',
      '192.0.2.77/32', // the node's public address, on no interface of its own (1:1 NAT, port forwarding)
      '192.88.99.0/24',
      '192.168.0.0/16',
      '198.18.0.0/15',
      '198.51.100.0/24', // the LAN: the NAT router (198.51.100.1) and every neighbour
      '203.0.113.1/32', // the control plane
      '203.0.113.3-203.0.113.4', // the mesh peers' underlay addresses (not a prefix: a range)
      '203.0.113.128/25', // a site behind a gateway of the LAN (a route other than the default one)
      '224.0.0.0/3',
    ],
    v6: ['::-100::ffff:ffff:ffff:ffff', '2001::/23', '2001:db8:1::/64', '2001:db8:9::1/128', '2002::/16', 'fc00::/7', 'fe80::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  });
  // The same facts in another order: the same sets (a no-op apply stays a no-op).
  const again = egressBlocked(
    {
      addresses: ['2001:db8:1::2/64', '198.51.100.2/24'],
      routes: ['203.0.113.128/25', '198.51.100.0/24', '2001:db8:1::/64'],
      peerEndpoints: ['203.0.113.4:51821', '[2001:db8:9::1]:51820', '203.0.113.3:51820'],
    },
    { controlPlane: ['203.0.113.1'], nodeAddresses: ['192.0.2.77'] },
  );
  assert.deepEqual(again, got);
});

test('the operator: allow punches holes in the defaults, deny adds and wins over allow', () => {
  const facts = { addresses: ['198.51.100.2/24'], routes: ['198.51.100.0/24'], peerEndpoints: [] };
  const got = egressBlocked(facts, {
    allow: ['10.9.0.0/16', '203.0.113.1/32', '192.168.0.0/16', '198.51.100.53/32'],
    deny: ['192.168.1.0/24', '8.8.8.8/32', '2001:db8:5::/48'],
    controlPlane: ['203.0.113.1'],
  });
  assert.deepEqual(got.v4, [
    '0.0.0.0/8',
    '8.8.8.8/32',
    '10.0.0.0-10.8.255.255',
    '10.10.0.0-10.255.255.255',
    '100.64.0.0/10',
    '127.0.0.0/8',
    '169.254.0.0/16',
    '172.16.0.0/12',
    '192.0.0.0/24',
    '192.88.99.0/24',
    '192.168.1.0/24',
    '198.18.0.0/15',
    '198.51.100.0-198.51.100.52',
    '198.51.100.54-198.51.100.255',
    '224.0.0.0/3',
  ]);
  assert.ok(got.v6.includes('2001:db8:5::/48'));
  assert.deepEqual(egressBlocked(NONE, { allow: ['0.0.0.0/0', '::/0'] }), { v4: [], v6: [] }, 'allow everything: empty sets');
});

test('policy CIDRs are checked: CIDRs of either family, no host bits', () => {
  assert.deepEqual(checkEgressCidrs(['10.0.0.0/8', '2001:db8::/32'], 'egress.allow'), []);
  assert.deepEqual(checkEgressCidrs(['10.1.2.3/8', 'fd00::1/8', '10.0.0.1', 'nope', 7], 'egress.deny'), [
    { path: 'egress.deny[0]', message: '10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?' },
    { path: 'egress.deny[1]', message: 'fd00::1/8 has host bits set; did you mean fd00::/8?' },
    { path: 'egress.deny[2]', message: '"10.0.0.1" is not a CIDR like 192.168.10.0/24 or 2001:db8:5::/48' },
    { path: 'egress.deny[3]', message: '"nope" is not a CIDR like 192.168.10.0/24 or 2001:db8:5::/48' },
    { path: 'egress.deny[4]', message: '7 is not a CIDR like 192.168.10.0/24 or 2001:db8:5::/48' },
  ]);
  assert.deepEqual(checkEgressCidrs('10.0.0.0/8', 'egress.allow'), [{ path: 'egress.allow', message: 'egress.allow is a list of CIDRs' }]);
});

test('uplinks: the devices of the default routes, sorted, once; names nft cannot quote are left out; none given, no rule', () => {
  const facts = { addresses: [], routes: [], peerEndpoints: [] };
  assert.deepEqual(egressBlocked({ ...facts, uplinks: ['wan1', 'eth0', 'eth0', 'bad"name', 'a b'] }).uplinks, ['eth0', 'wan1']);
  assert.deepEqual(egressBlocked({ ...facts, uplinks: [] }).uplinks, []);
  assert.equal(egressBlocked(facts).uplinks, undefined);
});
