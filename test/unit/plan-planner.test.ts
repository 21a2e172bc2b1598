// Named table tests for the planner: one situation per case, exact expected values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/crypto/rng.ts';
import { openSealed } from '../../src/crypto/seal.ts';
import { x25519PublicKey } from '../../src/crypto/keys.ts';
import { ValidationError } from '../../src/errors.ts';
import { checkPlan, deviceEgressSources, networkId, nodePart, planBlueprint, sealContext, type Plan } from '../../src/plan/index.ts';
import { blueprint, inventory, net, secretOf } from '../helpers/fixtures.ts';

const rnd = () => seededRandom('planner-test');

function res(plan: Plan, node: string, network = 'net') {
  const r = plan.networks.find((n) => n.name === network)!.resources.find((x) => x.node === node);
  assert.ok(r, `resource for ${node}`);
  return r;
}

test('two public nodes: subnets, ports, endpoints and a mutual peer', () => {
  const bp = blueprint([net({ nodes: ['node-a', 'node-b'] })]);
  const plan = planBlueprint(bp, inventory(['node-a', 'node-b']), { random: rnd() });
  const a = res(plan, 'node-a');
  const b = res(plan, 'node-b');
  assert.equal(plan.generation, 1);
  assert.equal(plan.networks[0].id, networkId('acme', 'shop', 'net'));
  assert.deepEqual(
    [a.subnet, a.gateway, a.wgAddress, a.listenPort, a.hidden, a.accessNode],
    ['10.1.0.0/24', '10.1.0.1', '10.1.0.254/32', 51820, false, null],
  );
  assert.deepEqual([b.subnet, b.gateway, b.wgAddress, b.listenPort], ['10.1.1.0/24', '10.1.1.1', '10.1.1.254/32', 51820]);
  assert.deepEqual(a.peers, [
    { node: 'node-b', kind: 'node', publicKey: b.publicKey, endpoint: '203.0.113.2:51820', allowedIps: ['10.1.1.0/24', 'fdc2:65b9:9864:1::/64'], persistentKeepalive: null },
  ]);
  assert.deepEqual(b.peers, [
    { node: 'node-a', kind: 'node', publicKey: a.publicKey, endpoint: '203.0.113.1:51820', allowedIps: ['10.1.0.0/24', 'fdc2:65b9:9864::/64'], persistentKeepalive: null },
  ]);
  // Dual-stack by default: the ULA /48 of acme/shop/net, /64s in the IPv4 slots, hosts mirrored.
  assert.deepEqual([plan.networks[0].ipv6Range, plan.networks[0].subnet6Prefix], ['fdc2:65b9:9864::/48', 64]);
  assert.deepEqual([a.subnet6, a.gateway6, a.wgAddress6], ['fdc2:65b9:9864::/64', 'fdc2:65b9:9864::1', 'fdc2:65b9:9864::fe/128']);
  assert.deepEqual([b.subnet6, b.gateway6, b.wgAddress6], ['fdc2:65b9:9864:1::/64', 'fdc2:65b9:9864:1::1', 'fdc2:65b9:9864:1::fe/128']);
  assert.deepEqual(checkPlan(plan, bp, inventory(['node-a', 'node-b'])), []);
});

test('sealed private keys open only on their own node and resource, and match the public key', () => {
  const bp = blueprint([net({ nodes: ['node-a', 'node-b'] })]);
  const plan = planBlueprint(bp, inventory(['node-a', 'node-b']), { random: rnd() });
  const id = plan.networks[0].id;
  for (const r of plan.networks[0].resources) {
    const priv = openSealed(r.sealedPrivateKey, secretOf(r.node), sealContext(id, r.node));
    assert.equal(x25519PublicKey(priv).toString(), r.publicKey);
  }
  const a = res(plan, 'node-a');
  assert.throws(() => openSealed(a.sealedPrivateKey, secretOf('node-b'), sealContext(id, 'node-a')), { code: 'E_SEAL_OPEN' });
  assert.throws(() => openSealed(a.sealedPrivateKey, secretOf('node-a'), sealContext(id, 'node-b')), { code: 'E_SEAL_OPEN' });
});

test('IPv6 endpoint is bracketed', () => {
  const inv = inventory([{ id: 'node-a', endpoints: ['2001:db8::7'] }, 'node-b']);
  const plan = planBlueprint(blueprint([net({ nodes: ['node-a', 'node-b'] })]), inv, { random: rnd() });
  assert.equal(res(plan, 'node-b').peers[0].endpoint, '[2001:db8::7]:51820');
});

test('hidden node: one peer (its access node) carrying the rest of the range, with keepalive', () => {
  const inv = inventory(['node-a', { id: 'node-h' }]);
  const plan = planBlueprint(blueprint([net({ nodes: ['node-a', 'node-h'], ipRange: '10.1.0.0/22' })]), inv, { random: rnd() });
  const a = res(plan, 'node-a');
  const h = res(plan, 'node-h');
  assert.deepEqual([h.hidden, h.accessNode, h.subnet], [true, 'node-a', '10.1.1.0/24']);
  assert.deepEqual(h.peers, [
    {
      node: 'node-a',
      kind: 'node',
      publicKey: a.publicKey,
      endpoint: '203.0.113.1:51820',
      // The range minus the own subnet in each family: IPv4 first, then the /48 minus the own /64 (16 CIDRs).
      allowedIps: [
        '10.1.0.0/24', '10.1.2.0/23',
        'fdc2:65b9:9864::/64', 'fdc2:65b9:9864:2::/63', 'fdc2:65b9:9864:4::/62', 'fdc2:65b9:9864:8::/61',
        'fdc2:65b9:9864:10::/60', 'fdc2:65b9:9864:20::/59', 'fdc2:65b9:9864:40::/58', 'fdc2:65b9:9864:80::/57',
        'fdc2:65b9:9864:100::/56', 'fdc2:65b9:9864:200::/55', 'fdc2:65b9:9864:400::/54', 'fdc2:65b9:9864:800::/53',
        'fdc2:65b9:9864:1000::/52', 'fdc2:65b9:9864:2000::/51', 'fdc2:65b9:9864:4000::/50', 'fdc2:65b9:9864:8000::/49',
      ],
      persistentKeepalive: 25,
    },
  ]);
  assert.deepEqual(a.peers, [
    { node: 'node-h', kind: 'node', publicKey: h.publicKey, endpoint: null, allowedIps: ['10.1.1.0/24', 'fdc2:65b9:9864:1::/64'], persistentKeepalive: null },
  ]);
});

test('public peers route the subnets of the hidden nodes behind them; hidden nodes spread over access nodes', () => {
  const inv = inventory(['node-a', 'node-b', { id: 'node-h1' }, { id: 'node-h2' }]);
  const bp = blueprint([net({ nodes: ['node-a', 'node-b', 'node-h1', 'node-h2'] })]);
  const plan = planBlueprint(bp, inv, { random: rnd() });
  assert.equal(res(plan, 'node-h1').accessNode, 'node-a');
  assert.equal(res(plan, 'node-h2').accessNode, 'node-b');
  const aEntryAtB = res(plan, 'node-b').peers.find((p) => p.node === 'node-a')!;
  assert.deepEqual(aEntryAtB.allowedIps, ['10.1.0.0/24', '10.1.2.0/24', 'fdc2:65b9:9864::/64', 'fdc2:65b9:9864:2::/64']);
  assert.deepEqual(res(plan, 'node-a').peers.map((p) => p.node), ['node-b', 'node-h1']);
  assert.deepEqual(checkPlan(plan, bp, inv), []);
});

test('access device without a key gets a generated wg-quick config; node parts never carry it', () => {
  const inv = inventory(['node-a', 'node-b']);
  const bp = blueprint([net({ nodes: ['node-a', 'node-b'], access: [{ name: 'laptop' }] })]);
  const plan = planBlueprint(bp, inv, { random: rnd() });
  const dev = plan.networks[0].access[0];
  assert.deepEqual([dev.name, dev.subnet, dev.address, dev.via, dev.generatedKey], ['laptop', '10.1.2.0/24', '10.1.2.1', 'node-a', true]);
  const a = res(plan, 'node-a');
  assert.deepEqual([dev.subnet6, dev.address6], ['fdc2:65b9:9864:2::/64', 'fdc2:65b9:9864:2::1']);
  // Both families; DNS: the resolver on the access node's gateways, then the network name as search domain.
  assert.match(
    dev.wgQuickConfig!,
    /^\[Interface\]\n# zmesh access device laptop \(acme\/shop network net\)\nPrivateKey = [A-Za-z0-9+/]{43}=\nAddress = 10\.1\.2\.1\/32, fdc2:65b9:9864:2::1\/128\nDNS = 10\.1\.0\.1, fdc2:65b9:9864::1, net\n\n\[Peer\]\n/,
  );
  assert.ok(dev.wgQuickConfig!.endsWith(`PublicKey = ${a.publicKey}\nEndpoint = 203.0.113.1:51820\nAllowedIPs = 10.1.0.0/16, fdc2:65b9:9864::/48\nPersistentKeepalive = 25\n`));
  assert.deepEqual(a.peers.find((p) => p.node === 'laptop'), {
    node: 'laptop', kind: 'device', publicKey: dev.publicKey, endpoint: null, allowedIps: ['10.1.2.0/24', 'fdc2:65b9:9864:2::/64'], persistentKeepalive: null,
  });
  assert.deepEqual(res(plan, 'node-b').peers[0].allowedIps, ['10.1.0.0/24', '10.1.2.0/24', 'fdc2:65b9:9864::/64', 'fdc2:65b9:9864:2::/64']);
  const part = nodePart(plan, 'node-a');
  const devicePrivate = /PrivateKey = (\S+)/.exec(dev.wgQuickConfig!)![1];
  assert.ok(!JSON.stringify(part).includes(devicePrivate));
  assert.ok(!JSON.stringify(part).includes('wgQuickConfig'));
  assert.deepEqual(part.networks[0].subnets, ['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24']);
  assert.deepEqual(checkPlan(plan, bp, inv), []);
});

test('access device with its own key: no config, no private key anywhere', () => {
  const key = inventory(['x']).nodes[0].publicKey;
  const plan = planBlueprint(blueprint([net({ nodes: ['node-a'], access: [{ name: 'phone', publicKey: key }] })]), inventory(['node-a']), { random: rnd() });
  const dev = plan.networks[0].access[0];
  assert.deepEqual([dev.publicKey, dev.generatedKey, dev.wgQuickConfig], [key, false, undefined]);
});

test('listen ports skip reserved ports and ports of other networks on the same node', () => {
  const inv = inventory([{ id: 'node-a', endpoints: ['203.0.113.1'], reservedPorts: [51820, 51822] }]);
  const bp = blueprint([net({ name: 'one', nodes: ['node-a'] }), net({ name: 'two', ipRange: '10.2.0.0/16', nodes: ['node-a'] })]);
  const plan = planBlueprint(bp, inv, { random: rnd() });
  assert.deepEqual([res(plan, 'node-a', 'one').listenPort, res(plan, 'node-a', 'two').listenPort], [51821, 51823]);
});

test('workload addresses: explicit kept, the rest from .2 up, skipping taken ones', () => {
  const inv = inventory(['node-a']);
  const w = (name: string, ip?: string) => ({ name, node: 'node-a', image: 'base', command: [], network: { name: 'net', ...(ip ? { ip } : {}) }, cpu: 1, memory: 1 << 28, volumes: [] });
  const bp = blueprint([net({ nodes: ['node-a'] })], { workloads: [w('web'), w('db', '10.1.0.2'), w('cache')] });
  const plan = planBlueprint(bp, inv, { random: rnd() });
  assert.deepEqual(plan.workloads, [
    { name: 'cache', node: 'node-a', network: 'net', ip: '10.1.0.4', ip6: 'fdc2:65b9:9864::4' },
    { name: 'db', node: 'node-a', network: 'net', ip: '10.1.0.2', ip6: 'fdc2:65b9:9864::2' },
    { name: 'web', node: 'node-a', network: 'net', ip: '10.1.0.3', ip6: 'fdc2:65b9:9864::3' },
  ]);
});

const errorCases: { name: string; nodes: Parameters<typeof inventory>[0]; bp: ReturnType<typeof blueprint>; code: string; path: string }[] = [
  {
    name: 'range exhausted',
    nodes: ['a', 'b', 'c', 'd', 'e'],
    bp: blueprint([net({ ipRange: '10.1.0.0/22', nodes: ['a', 'b', 'c', 'd', 'e'] })]),
    code: 'E_RANGE_EXHAUSTED',
    path: 'networks[0].ipRange',
  },
  { name: 'hidden node with no public node', nodes: [{ id: 'h' }], bp: blueprint([net({ nodes: ['h'] })]), code: 'E_NO_PUBLIC_NODE', path: 'networks[0].nodes' },
  { name: 'node not in the inventory', nodes: ['a'], bp: blueprint([net({ nodes: ['a', 'ghost'] })]), code: 'E_NODE_UNKNOWN', path: 'networks[0].nodes[1]' },
  {
    name: 'no free port',
    nodes: [{ id: 'a', endpoints: ['203.0.113.1'], reservedPorts: Array.from({ length: 65536 - 51820 }, (_, i) => 51820 + i) }],
    bp: blueprint([net({ nodes: ['a'] })]),
    code: 'E_PORT_EXHAUSTED',
    path: 'networks[0].nodes[0]',
  },
  ...(
    [
      ['workload ip outside its node subnet', '10.1.9.9', 'E_WORKLOAD_IP_SUBNET'],
      ['workload ip equal to the gateway', '10.1.0.1', 'E_WORKLOAD_IP_GATEWAY'],
      ['workload ip equal to the WireGuard address', '10.1.0.254', 'E_WORKLOAD_IP_RESERVED'],
    ] as const
  ).map(([name, ip, code]) => ({
    name,
    nodes: ['a'],
    bp: blueprint([net({ nodes: ['a'] })], {
      workloads: [{ name: 'w', node: 'a', image: 'base', command: [], network: { name: 'net', ip }, cpu: 1, memory: 1 << 28, volumes: [] }],
    }),
    code,
    path: 'workloads[0].network.ip',
  })),
];

for (const c of errorCases) {
  test(`error: ${c.name} → ${c.code} at ${c.path}`, () => {
    try {
      planBlueprint(c.bp, inventory(c.nodes), { random: rnd() });
      assert.fail('expected a ValidationError');
    } catch (e) {
      assert.ok(e instanceof ValidationError, String(e));
      assert.deepEqual(e.problems.map((p) => [p.code, p.path]), [[c.code, c.path]]);
      assert.ok(e.problems[0].hint.length > 0);
    }
  });
}

test('all plan problems are reported at once', () => {
  const bp = blueprint([net({ name: 'one', nodes: ['ghost'] }), net({ name: 'two', ipRange: '10.2.0.0/16', nodes: [{ id: 'h' }].map((x) => x.id) })]);
  assert.throws(
    () => planBlueprint(bp, inventory([{ id: 'h' }]), { random: rnd() }),
    (e: ValidationError) => e.problems.map((p) => p.code).join(',') === 'E_NODE_UNKNOWN,E_NO_PUBLIC_NODE',
  );
});

test('same inputs and seed give the same plan; another seed other keys', () => {
  const bp = blueprint([net({ nodes: ['node-a', 'node-b', 'node-h'], access: [{ name: 'laptop' }] })]);
  const inv = inventory(['node-a', 'node-b', { id: 'node-h' }]);
  const p1 = planBlueprint(bp, inv, { random: seededRandom('s1') });
  const p2 = planBlueprint(bp, inv, { random: seededRandom('s1') });
  const p3 = planBlueprint(bp, inv, { random: seededRandom('s2') });
  assert.equal(JSON.stringify(p1), JSON.stringify(p2));
  assert.notEqual(res(p1, 'node-a').publicKey, res(p3, 'node-a').publicKey);
  assert.deepEqual(p1.networks[0].resources.map((r) => r.subnet), p3.networks[0].resources.map((r) => r.subnet));
});

test('network ids are short, deterministic and fit interface names', () => {
  const id = networkId('acme', 'shop', 'backend');
  assert.match(id, /^[a-z2-7]{10}$/);
  assert.equal(id, networkId('acme', 'shop', 'backend'));
  assert.notEqual(id, networkId('acme', 'shop2', 'backend'));
  assert.notEqual(id, networkId('other', 'shop', 'backend'));
  assert.ok(`w-${id}`.length <= 15);
});

test('device egress: marked in the plan; the access node lets out exactly its devices with egress, from the blueprint', () => {
  const inv = inventory(['node-a', 'node-b']);
  const spec = net({ nodes: ['node-a', 'node-b'], egress: true, access: [{ name: 'laptop', egress: true }, { name: 'phone' }] });
  const bp = blueprint([spec]);
  const plan = planBlueprint(bp, inv, { random: rnd() });
  const [laptop, phone] = plan.networks[0].access;
  assert.deepEqual([laptop.name, laptop.egress, phone.name, 'egress' in phone], ['laptop', true, 'phone', false]);
  assert.deepEqual(checkPlan(plan, bp, inv), []);
  // The node the laptop enters through lets its subnet out (and not the phone's); the other node nothing.
  const via = res(plan, laptop.via);
  assert.deepEqual(deviceEgressSources(spec, via), [laptop.subnet]);
  const other = res(plan, laptop.via === 'node-a' ? 'node-b' : 'node-a');
  assert.deepEqual(deviceEgressSources(spec, other), [], 'a node that does not serve the device: nothing');
  assert.deepEqual(deviceEgressSources({ ...spec, egress: false }, via), [], 'no network egress: nothing');
  assert.deepEqual(deviceEgressSources({ ...spec, access: [{ name: 'laptop' }, { name: 'phone' }] }, via), [], 'the blueprint decides, not the plan');
});
