// Names of a tenant network (src/plan/names.ts) and its resolver's files (netns/dns-build.ts): exact records,
// exact dnsmasq config and hosts text, the agent's check of a part's names against the signed blueprint, and
// hostile names that must never become a config or hosts line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameRecords, namesProblems, networkNames, type NetworkNames } from '../../src/plan/names.ts';
import { resolverConfig, resolverHosts } from '../../netns/dns-build.ts';
import { validateBlueprint } from '../../src/blueprint/validate.ts';

const plan = {
  workloads: [
    { name: 'web', node: 'n1', network: 'net', ip: '10.1.1.2', ip6: 'fd00:1:2:1::2' },
    { name: 'db', node: 'n2', network: 'net', ip: '10.1.2.2', ip6: 'fd00:1:2:2::2' },
    { name: 'other', node: 'n1', network: 'elsewhere', ip: '10.9.1.2' },
  ],
};
const net = {
  name: 'net',
  access: [{ name: 'laptop', address: '10.1.3.1/32', address6: 'fd00:1:2:3::1/128' }],
  resources: [
    { node: 'n2', gateway: '10.1.2.1', gateway6: 'fd00:1:2:2::1' },
    { node: 'n1', gateway: '10.1.1.1', gateway6: 'fd00:1:2:1::1' },
  ],
};

test('networkNames: workloads of that network only, devices and nodes, sorted, addresses without prefix', () => {
  const names = networkNames(plan, net);
  assert.deepEqual(names, {
    workloads: { db: { ip: '10.1.2.2', ip6: 'fd00:1:2:2::2' }, web: { ip: '10.1.1.2', ip6: 'fd00:1:2:1::2' } },
    devices: { laptop: { ip: '10.1.3.1', ip6: 'fd00:1:2:3::1' } },
    nodes: { n1: { ip: '10.1.1.1', ip6: 'fd00:1:2:1::1' }, n2: { ip: '10.1.2.1', ip6: 'fd00:1:2:2::1' } },
  });
  assert.deepEqual(Object.keys(names.nodes), ['n1', 'n2']);
  // IPv4-only: no ip6 at all.
  assert.deepEqual(networkNames({ workloads: [{ name: 'a', node: 'n1', network: 'v4', ip: '10.2.1.2' }] }, { name: 'v4', access: [], resources: [{ node: 'n1', gateway: '10.2.1.1' }] }), {
    workloads: { a: { ip: '10.2.1.2' } },
    devices: {},
    nodes: { n1: { ip: '10.2.1.1' } },
  });
});

test('records and hosts file: exact text; a workload keeps a name a node also has', () => {
  const names: NetworkNames = {
    workloads: { web: { ip: '10.1.1.2', ip6: 'fd00:1:2:1:0::2' }, n2: { ip: '10.1.2.3' } },
    devices: { laptop: { ip: '10.1.3.1', ip6: 'fd00:1:2:3::1' } },
    nodes: { n1: { ip: '10.1.1.1', ip6: 'fd00:1:2:1::1' }, n2: { ip: '10.1.2.1' } },
  };
  const records = nameRecords('net', names);
  assert.deepEqual(
    records.map((r) => `${r.kind} ${r.type} ${r.name} ${r.address}`),
    [
      'workload A n2.net 10.1.2.3',
      'workload A n2 10.1.2.3',
      'workload A web.net 10.1.1.2',
      'workload AAAA web.net fd00:1:2:1::2',
      'workload A web 10.1.1.2',
      'workload AAAA web fd00:1:2:1::2',
      'device A laptop.net 10.1.3.1',
      'device AAAA laptop.net fd00:1:2:3::1',
      'node A n1.net 10.1.1.1',
      'node AAAA n1.net fd00:1:2:1::1',
    ],
  );
  assert.equal(
    resolverHosts('net', records),
    [
      '# zmesh names of network net (docs/dns.md)',
      '10.1.2.3 n2.net',
      '10.1.2.3 n2',
      '10.1.1.2 web.net',
      'fd00:1:2:1::2 web.net',
      '10.1.1.2 web',
      'fd00:1:2:1::2 web',
      '10.1.3.1 laptop.net',
      'fd00:1:2:3::1 laptop.net',
      '10.1.1.1 n1.net',
      'fd00:1:2:1::1 n1.net',
      '',
    ].join('\n'),
  );
});

test('resolver config: exact text', () => {
  assert.equal(
    resolverConfig({ network: 'net', hostsFile: '/run/zmesh/dns/n-abcdefghij.hosts', listen: ['10.1.1.1', 'fd00:1:2:1::1'] }),
    `# zmesh resolver of network net: generated, do not edit (docs/dns.md)
no-hosts
addn-hosts=/run/zmesh/dns/n-abcdefghij.hosts
no-resolv
no-poll
local=/net/
local=/#/
domain-needed
bogus-priv
listen-address=10.1.1.1
listen-address=fd00:1:2:1::1
bind-dynamic
port=53
user=nobody
group=nogroup
cache-size=0
dns-forward-max=64
log-facility=-
pid-file=
`,
  );
});

test('resolver config with upstreams (a network with egress): server lines instead of local=/#/, a cache; the own zone stays local', () => {
  const text = resolverConfig({ network: 'net', hostsFile: '/run/zmesh/dns/n-abcdefghij.hosts', listen: ['10.1.1.1'], upstreams: ['9.9.9.9', '203.0.113.53'] });
  const lines = text.split('\n');
  assert.deepEqual(lines.slice(5, 11), ['local=/net/', 'server=9.9.9.9', 'server=203.0.113.53', 'domain-needed', 'bogus-priv', 'listen-address=10.1.1.1']);
  assert.ok(!lines.includes('local=/#/'));
  assert.ok(lines.includes('cache-size=1000') && !lines.includes('cache-size=0'));
  assert.ok(lines.includes('no-resolv'), 'never /etc/resolv.conf');
  // An empty list is today's config, exactly.
  assert.equal(
    resolverConfig({ network: 'net', hostsFile: '/run/zmesh/dns/n-abcdefghij.hosts', listen: ['10.1.1.1'], upstreams: [] }),
    resolverConfig({ network: 'net', hostsFile: '/run/zmesh/dns/n-abcdefghij.hosts', listen: ['10.1.1.1'] }),
  );
  for (const u of ['9.9.9.9\nserver=/#/1.2.3.4', '2001:db8::53', '9.9.9.9#5353', '', 'dns.example']) {
    assert.throws(() => resolverConfig({ network: 'net', hostsFile: '/run/zmesh/dns/n-abcdefghij.hosts', listen: ['10.1.1.1'], upstreams: [u] }), TypeError, JSON.stringify(u));
  }
});

test('hostile names never become a config or hosts line', () => {
  const evil = ['net\nserver=8.8.8.8', 'net/ #', 'a b', 'x\0y', '../etc', 'NET', 'a'.repeat(64), '-x', 'x_y', ''];
  for (const n of evil) {
    assert.throws(() => resolverConfig({ network: n, hostsFile: '/run/zmesh/dns/n-abcdefghij.hosts', listen: ['10.1.1.1'] }), TypeError, JSON.stringify(n));
    assert.deepEqual(nameRecords(n, { workloads: { a: { ip: '10.1.1.2' } }, devices: {}, nodes: {} }), [], JSON.stringify(n));
    const recs = nameRecords('net', { workloads: { [n]: { ip: '10.1.1.2' } }, devices: { [n]: { ip: '10.1.1.3' } }, nodes: { [n]: { ip: '10.1.1.1' } } });
    assert.deepEqual(recs, [], JSON.stringify(n));
    // Even records built by hand with such a name are dropped from the hosts file.
    assert.equal(resolverHosts('net', [{ name: n, type: 'A', address: '10.1.1.2', kind: 'workload' }]), '# zmesh names of network net (docs/dns.md)\n');
  }
  for (const a of ['10.1.1.1\naddress=/#/1.2.3.4', '10.1.1.1 #', 'fd00::1\nx', '']) {
    assert.throws(() => resolverConfig({ network: 'net', hostsFile: '/run/zmesh/dns/n-abcdefghij.hosts', listen: [a] }), TypeError);
    assert.deepEqual(nameRecords('net', { workloads: { w: { ip: a, ip6: a } }, devices: {}, nodes: {} }), []);
  }
  assert.throws(() => resolverConfig({ network: 'net', hostsFile: '/run/zmesh/dns/x\nserver=1.1.1.1', listen: ['10.1.1.1'] }), TypeError);
  // Upstream: the blueprint itself refuses such names (DNS labels only), so no plan carries them.
  const bp = {
    tenant: 'acme',
    name: 'shop',
    version: 1,
    networks: [{ name: 'net\nserver=8.8.8.8', ipRange: '10.1.0.0/16', subnetPrefix: 24, nodes: ['n1 #'], access: [] }],
    workloads: [{ name: 'web\naddress=/#/1.2.3.4', node: 'n1', image: 'busybox', command: ['sleep', '1'], network: { name: 'net' }, cpu: 1, memory: '64Mi' }],
  };
  let codes: string[] = [];
  assert.throws(
    () => validateBlueprint(bp),
    (e: unknown) => {
      codes = ((e as { problems: { code: string; path: string }[] }).problems ?? []).filter((p) => p.code === 'E_NAME_FORMAT').map((p) => p.path);
      return true;
    },
  );
  assert.deepEqual(codes.sort(), ['networks[0].name', 'networks[0].nodes[0]', 'workloads[0].name'].sort());
});

test('namesProblems: only the blueprint network\'s own names, inside its ranges', () => {
  const spec = { name: 'net', nodes: ['n1', 'n2'], access: [{ name: 'laptop', via: 'n1', publicKey: null, egress: false }] } as never;
  const workloads = [
    { name: 'web', network: { name: 'net' } },
    { name: 'db', network: { name: 'net' } },
    { name: 'x', network: { name: 'elsewhere' } },
  ];
  const bounds = { ipRange: '10.1.0.0/16', ipRange6: 'fd00:1:2::/48' };
  const good = networkNames(plan, net);
  assert.deepEqual(namesProblems(spec, workloads, bounds, good, 'n'), []);
  const paths = (names: unknown, b: { ipRange: string; ipRange6: string | null } = bounds, placed: Parameters<typeof namesProblems>[5] = []) => namesProblems(spec, workloads, b, names, 'n', placed).map((p) => `${p.code} ${p.path}`);
  assert.deepEqual(paths(undefined), ['E_PART_NAMES n']);
  assert.deepEqual(paths({ ...good, workloads: { ...good.workloads, x: { ip: '10.1.1.9' } } }), ['E_PART_NAMES n.workloads.x'], "another network's workload");
  assert.deepEqual(paths({ ...good, nodes: { ...good.nodes, n3: { ip: '10.1.3.1' } } }), ['E_PART_NAMES n.nodes.n3'], 'a node the network does not span');
  assert.deepEqual(paths({ ...good, devices: { phone: { ip: '10.1.4.1' } } }), ['E_PART_NAMES n.devices.phone']);
  assert.deepEqual(paths({ ...good, workloads: { web: { ip: '10.2.1.2' } } }), ['E_PART_NAMES n.workloads.web'], 'outside the range');
  assert.deepEqual(paths({ ...good, workloads: { web: { ip: '10.1.1.2', ip6: 'fd00:9::2' } } }), ['E_PART_NAMES n.workloads.web'], 'outside the IPv6 range');
  assert.deepEqual(paths(good, { ipRange: '10.1.0.0/16', ipRange6: null }).length, 5, 'IPv4-only network: no ip6');
  assert.deepEqual(paths({ ...good, workloads: { web: { ip: '10.1.1.2', extra: 'x' } } }), ['E_PART_NAMES n.workloads.web']);
  assert.deepEqual(paths({ ...good, workloads: { 'web\nx': { ip: '10.1.1.2' } } }), ['E_PART_NAMES n.workloads.web\nx']);
  assert.deepEqual(paths(good, bounds, [{ name: 'web', network: 'net', ip: '10.1.1.3' }]), ['E_PART_NAMES n.workloads.web'], 'a placed workload elsewhere than its name says');
  const many = Object.fromEntries(Array.from({ length: 30_001 }, (_, i) => [`w${i}`, { ip: '10.1.1.2' }]));
  assert.deepEqual(paths({ workloads: many, devices: {}, nodes: {} }), ['E_PART_NAMES n.workloads']);
});
