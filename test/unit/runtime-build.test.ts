// The runtime's pure parts against exact text: names and labels, attach builders, CHECK, parsers (ip -j,
// btrfs qgroup show, mountinfo), Docker's log framing, the base image tar (read back by GNU tar).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LogDemuxer,
  addressMac,
  baseRootfs,
  compareAttachment,
  containerAddLines,
  containerAddLines6,
  containerName,
  exitReason,
  findMount,
  keyFromAlias,
  keyFromLabels,
  keyFromSubvolume,
  labelsFor,
  parseFrames,
  parseLinks,
  parseQgroups,
  parseRoutes,
  specHash,
  subvolumeName,
  tarArchive,
  tenantAddLines,
  validateWorkload,
  vethNames,
  type Attachment,
  type DesiredWorkload,
  type LiveLink,
} from '../../runtime/index.ts';

const web: DesiredWorkload = {
  tenant: 'acme',
  blueprint: 'shop',
  name: 'web',
  node: 'node-a',
  image: 'zmesh/base:latest',
  command: ['httpd', '-f'],
  cpu: 0.5,
  memory: 64 * 1024 * 1024,
  disk: 256 * 1024 * 1024,
  network: { id: 'abcdefghij', name: 'backend', ip: '10.1.0.2', prefix: 24, gateway: '10.1.0.1' },
  mounts: [{ volume: 'data', path: '/data' }],
};

test('names: container, veths within 15 characters, markers round-trip, labels', () => {
  assert.equal(containerName(web), 'zmesh.node-a.acme.shop.web');
  const v = vethNames(web);
  assert.match(v.host, /^v-[a-z2-7]{10}$/);
  assert.equal(v.temp, `c-${v.host.slice(2)}`);
  assert.ok(v.host.length <= 15 && v.temp.length <= 15);
  assert.deepEqual(vethNames(web), v, 'deterministic');
  assert.notEqual(vethNames({ ...web, node: 'node-b' }).host, v.host, 'per node');
  assert.equal(v.alias, 'zmesh-wl:acme/shop/web');
  assert.equal(keyFromAlias(v.alias), 'acme/shop/web');
  assert.equal(keyFromAlias('zmesh:abcdefghij'), null, "netns' marker is not ours");
  assert.equal(subvolumeName({ tenant: 'acme', blueprint: 'shop', name: 'data' }), 'acme.shop.data');
  assert.equal(keyFromSubvolume('acme.shop.data'), 'acme/shop/data');
  assert.equal(keyFromSubvolume('foreign'), null);
  const labels = labelsFor(web, 'h');
  assert.deepEqual(labels, {
    'zmesh.owner': 'zmesh',
    'zmesh.node': 'node-a',
    'zmesh.tenant': 'acme',
    'zmesh.blueprint': 'shop',
    'zmesh.workload': 'web',
    'zmesh.network': 'abcdefghij',
    'zmesh.ip': '10.1.0.2/24',
    'zmesh.spec': 'h',
  });
  assert.equal(keyFromLabels(labels, 'node-a'), 'acme/shop/web');
  assert.equal(keyFromLabels(labels, 'node-b'), null, 'another node sharing the engine');
  assert.equal(keyFromLabels({ ...labels, 'zmesh.owner': 'x' }, 'node-a'), null);
});

test('spec hash: stable; changes with what needs a new container only', () => {
  const h = specHash(web, ['/p/acme.shop.data']);
  assert.equal(specHash(structuredClone(web), ['/p/acme.shop.data']), h);
  for (const change of [{ image: 'other:1' }, { command: [] }, { cpu: 1 }, { memory: 128 * 1024 * 1024 }, { network: { ...web.network, ip: '10.1.0.3' } }, { mounts: [] }]) {
    assert.notEqual(specHash({ ...web, ...change } as DesiredWorkload, ['/p/acme.shop.data']), h, JSON.stringify(change));
  }
  assert.notEqual(specHash(web, ['/q/acme.shop.data']), h, 'another volume source');
});

const badCases: [string, Partial<DesiredWorkload>, RegExp][] = [
  ['address outside the gateway subnet', { network: { ...web.network, ip: '10.2.0.2' } }, /not in the subnet/],
  ['address is the gateway', { network: { ...web.network, ip: '10.1.0.1' } }, /is the gateway/],
  ['bad image reference', { image: 'a b' }, /image/],
  ['cpu zero', { cpu: 0 }, /cpu/],
  ['memory too small', { memory: 1000 }, /memory/],
  ['relative mount path', { mounts: [{ volume: 'data', path: 'data' }] }, /absolute/],
  ['mount with ..', { mounts: [{ volume: 'data', path: '/a/../b' }] }, /absolute/],
  ['bad network id', { network: { ...web.network, id: 'X' } }, /network id/],
];
for (const [name, change, re] of badCases) {
  test(`validateWorkload refuses: ${name}`, () => {
    assert.deepEqual(validateWorkload(web), []);
    assert.match(validateWorkload({ ...web, ...change } as DesiredWorkload).join('; '), re);
  });
}

test('attach builders: exact ip -batch lines', () => {
  const names = vethNames(web);
  const req = { workload: 'acme/shop/web', names, containerId: 'c1', pid: 4242, networkId: 'abcdefghij', netns: '/run/netns/n-abcdefghij', bridge: 'b-abcdefghij', ip: '10.1.0.2', prefix: 24, gateway: '10.1.0.1' };
  assert.deepEqual(tenantAddLines(req, 1420), [
    `link add name ${names.host} mtu 1420 type veth peer name ${names.temp} mtu 1420 address 02:5a:0a:01:00:02 netns 4242`,
    `link set dev ${names.host} alias zmesh-wl:acme/shop/web master b-abcdefghij up`,
    'neigh replace 10.1.0.2 lladdr 02:5a:0a:01:00:02 dev b-abcdefghij nud permanent',
  ]);
  assert.deepEqual(tenantAddLines({ ...req, ip6: 'fd00:1::2', prefix6: 64, gateway6: 'fd00:1::1' }, 1420).slice(2), [
    'neigh replace 10.1.0.2 lladdr 02:5a:0a:01:00:02 dev b-abcdefghij nud permanent',
    'neigh replace fd00:1::2 lladdr 02:5a:0a:01:00:02 dev b-abcdefghij nud permanent',
  ], 'the workload as a permanent neighbour of the bridge, in both families, with its one MAC');
  // The container end's MAC follows the address: a replaced workload keeps it, so neighbour caches stay right.
  assert.equal(addressMac('10.1.0.2'), '02:5a:0a:01:00:02');
  assert.equal(addressMac('192.168.255.10'), '02:5a:c0:a8:ff:0a');
  assert.deepEqual(containerAddLines(req), [
    `link set dev ${names.temp} name eth0`,
    'addr add 10.1.0.2/24 dev eth0 noprefixroute',
    'link set dev eth0 up',
    'route replace 10.1.0.1 dev eth0 scope link',
    'route replace default via 10.1.0.1 dev eth0',
    'neigh replace 10.1.0.1 lladdr 02:5a:0a:01:00:01 dev eth0 nud permanent',
  ], 'only the gateway on-link, its MAC (the bridge\'s) known');
  assert.deepEqual(containerAddLines6(req), [], 'IPv4-only: no IPv6 lines');
  assert.deepEqual(containerAddLines6({ ...req, ip6: 'fd00:1::2', prefix6: 64, gateway6: 'fd00:1::1' }), [
    'addr add fd00:1::2/64 dev eth0 nodad noprefixroute',
    'route replace fd00:1::1 dev eth0',
    'route replace default via fd00:1::1 dev eth0',
    'neigh replace fd00:1::1 lladdr 02:5a:0a:01:00:01 dev eth0 nud permanent',
    'route del fe80::/64 dev eth0',
  ]);
});

// Real `ip -j -d addr show` output (iproute2 6.1), trimmed.
const HOST_JSON = `[{"ifindex":7,"link_index":2,"ifname":"v-aaaaaaaaaa","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1420,"qdisc":"noqueue","master":"b-abcdefghij","operstate":"UP","link_type":"ether","address":"56:c0:4b:86:8f:b3","link_netnsid":1,"linkinfo":{"info_kind":"veth","info_slave_kind":"bridge"},"ifalias":"zmesh-wl:acme/shop/web","addr_info":[]}]`;
const CONT_JSON = `[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"operstate":"UNKNOWN","link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},{"ifindex":2,"link_index":7,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1420,"operstate":"UP","link_type":"ether","address":"02:42:0a:01:00:02","link_netnsid":0,"addr_info":[{"family":"inet","local":"10.1.0.2","prefixlen":24,"scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]`;
const ROUTES_JSON = `[{"dst":"default","gateway":"10.1.0.1","dev":"eth0","flags":[]},{"dst":"10.1.0.1","dev":"eth0","scope":"link","flags":[]}]`;
/** An attachment made before only the gateway was on-link: the whole subnet's route. */
const ROUTES_OLD_JSON = `[{"dst":"default","gateway":"10.1.0.1","dev":"eth0","flags":[]},{"dst":"10.1.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.1.0.2","flags":[]}]`;

test('parsers: links with peer index, alias and inet addresses; routes', () => {
  const [h] = parseLinks(JSON.parse(HOST_JSON));
  assert.deepEqual(h, { index: 7, name: 'v-aaaaaaaaaa', kind: 'veth', mtu: 1420, up: true, master: 'b-abcdefghij', linkIndex: 2, alias: 'zmesh-wl:acme/shop/web', mac: '56:c0:4b:86:8f:b3', inet: [], inet6: [] });
  const c = parseLinks(JSON.parse(CONT_JSON));
  assert.deepEqual(c.map((l) => [l.name, l.linkIndex, l.inet]), [['lo', null, ['127.0.0.1/8']], ['eth0', 7, ['10.1.0.2/24']]]);
  // Global IPv6 addresses only (the link-local fe80::1 is left out).
  const six = parseLinks([{ ifindex: 2, ifname: 'eth0', flags: [], mtu: 1420, addr_info: [{ family: 'inet6', local: 'fd00:1::2', prefixlen: 64, scope: 'global' }, { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' }] }]);
  assert.deepEqual(six[0].inet6, ['fd00:1::2/64']);
  assert.deepEqual(parseRoutes(JSON.parse(ROUTES_JSON))[0], { dst: 'default', gateway: '10.1.0.1', dev: 'eth0' });
});

const stored: Attachment = {
  workload: 'acme/shop/web', containerId: 'c1', pid: 4242, networkId: 'abcdefghij', netns: '/run/netns/n-abcdefghij', bridge: 'b-abcdefghij',
  hostIf: 'v-aaaaaaaaaa', hostIfIndex: 7, containerIf: 'eth0', containerIfIndex: 2, address: '10.1.0.2/24', gateway: '10.1.0.1', mtu: 1420, mac: '02:42:0a:01:00:02', at: '2026-01-01T00:00:00.000Z',
};

test('CHECK: the stored result against live state, one named case per kind of drift', () => {
  const host = parseLinks(JSON.parse(HOST_JSON))[0];
  const cont = parseLinks(JSON.parse(CONT_JSON));
  const routes = parseRoutes(JSON.parse(ROUTES_JSON));
  assert.deepEqual(compareAttachment(stored, 4242, host, cont, routes), [], 'healthy');
  const eth = (f: Partial<LiveLink>) => cont.map((l) => (l.name === 'eth0' ? { ...l, ...f } : l));
  const cases: [string, string[]][] = [
    ['container restarted', compareAttachment(stored, 5000, host, cont, routes)],
    ['host veth gone', compareAttachment(stored, 4242, null, cont, routes)],
    ['host veth left the bridge', compareAttachment(stored, 4242, { ...host, master: null }, cont, routes)],
    ['address changed', compareAttachment(stored, 4242, host, eth({ inet: ['10.1.0.9/24'] }), routes)],
    ['eth0 down', compareAttachment(stored, 4242, host, eth({ up: false }), routes)],
    ['default route gone', compareAttachment(stored, 4242, host, cont, routes.slice(1))],
    ['eth0 is another pair', compareAttachment(stored, 4242, host, eth({ linkIndex: 99 }), routes)],
    ['namespace unreadable', compareAttachment(stored, 4242, host, null, null)],
    ['the whole subnet on-link', compareAttachment(stored, 4242, host, cont, parseRoutes(JSON.parse(ROUTES_OLD_JSON)))],
  ];
  for (const [name, problems] of cases) assert.equal(problems.length >= 1, true, `${name}: ${JSON.stringify(problems)}`);
  assert.match(cases[0][1][0], /pid changed/);
  assert.match(cases[5][1][0], /default route is missing/);
  assert.deepEqual(cases[8][1], ['on-link route(s) 10.1.0.0/24: only the gateway 10.1.0.1 should be']);
});

test('btrfs qgroup show --raw -re: exact text', () => {
  const text = `Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path 
--------    ----------    ---------  --------------  -------------   ---- 
0/5              16384        16384            none           none   <toplevel>
0/256          5259264      5259264        20971520           none   volumes/a.b.c
0/257            16384        16384            none           none   <stale>
`;
  assert.deepEqual(parseQgroups(text), [
    { id: '0/5', referenced: 16384, exclusive: 16384, maxReferenced: null, maxExclusive: null, path: '<toplevel>' },
    { id: '0/256', referenced: 5259264, exclusive: 5259264, maxReferenced: 20971520, maxExclusive: null, path: 'volumes/a.b.c' },
    { id: '0/257', referenced: 16384, exclusive: 16384, maxReferenced: null, maxExclusive: null, path: '<stale>' },
  ]);
});

test('mountinfo: finds the pool mount, escaped paths, the last mount wins', () => {
  const mi = [
    '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
    '90 22 0:50 / /var/lib/zmesh/storage/pool rw,relatime shared:40 - btrfs /dev/loop3 rw,space_cache=v2',
    '91 22 0:51 / /tmp/with\\040space rw - tmpfs tmpfs rw',
  ].join('\n');
  assert.deepEqual(findMount(mi, '/var/lib/zmesh/storage/pool'), { fstype: 'btrfs', source: '/dev/loop3' });
  assert.deepEqual(findMount(mi, '/tmp/with space'), { fstype: 'tmpfs', source: 'tmpfs' });
  assert.equal(findMount(mi, '/var/lib/zmesh'), null);
});

test('log frames: parsed across chunk boundaries, stdout and stderr in order', async () => {
  const frame = (kind: number, s: string) => {
    const h = Buffer.alloc(8);
    h[0] = kind;
    h.writeUInt32BE(Buffer.byteLength(s), 4);
    return Buffer.concat([h, Buffer.from(s)]);
  };
  const all = Buffer.concat([frame(1, 'hello\n'), frame(2, 'oops\n'), frame(1, 'bye\n')]);
  const { frames, rest } = parseFrames(all.subarray(0, 20));
  assert.deepEqual(frames.map((f) => [f.stream, f.data.toString()]), [['stdout', 'hello\n']]);
  assert.equal(rest.length, 6);
  const d = new LogDemuxer();
  const out: Buffer[] = [];
  d.on('data', (b: Buffer) => out.push(b));
  for (let i = 0; i < all.length; i += 3) d.write(all.subarray(i, i + 3));
  d.end();
  await new Promise((r) => d.on('end', r));
  assert.equal(Buffer.concat(out).toString(), 'hello\noops\nbye\n');
});

test('exit reasons name exit code, SIGKILL and OOM', () => {
  assert.equal(exitReason({ exitCode: 3, oomKilled: false, error: '', finishedAt: '' }), 'exit code 3');
  assert.equal(exitReason({ exitCode: 137, oomKilled: true, error: '', finishedAt: '' }), 'OOM killed (exit code 137)');
  assert.equal(exitReason({ exitCode: 137, oomKilled: false, error: '', finishedAt: '' }), 'killed (exit code 137, SIGKILL)');
});

test('base image tar: GNU tar reads it back (busybox file, applet symlinks, sticky /tmp)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-tar-'));
  try {
    const fakeBusybox = Buffer.alloc(1000, 7);
    const tar = tarArchive(baseRootfs(fakeBusybox, ['sh', 'httpd', 'sh', '../evil']));
    assert.equal(tar.length % 512, 0);
    writeFileSync(join(dir, 'base.tar'), tar);
    const list = execFileSync('tar', ['-tvf', join(dir, 'base.tar')], { encoding: 'utf8' });
    assert.match(list, /-rwxr-xr-x root\/root\s+1000 .* bin\/busybox/);
    assert.match(list, /bin\/sh -> busybox/);
    assert.match(list, /bin\/httpd -> busybox/);
    assert.doesNotMatch(list, /evil/);
    execFileSync('tar', ['-xf', join(dir, 'base.tar'), '-C', dir]);
    assert.equal(statSync(join(dir, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(readlinkSync(join(dir, 'bin', 'sh')), 'busybox');
    assert.equal(statSync(join(dir, 'bin', 'busybox')).size, 1000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
