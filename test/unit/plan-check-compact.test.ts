// checkPlan on the compact plan (issue #17): each tampering is refused with its code, in the compact form and, where
// it survives expansion, in the full form too. The peer-list tamperings of the full form stay in
// test/unit/paths-redteam-plan.test.ts (a compact plan has no peer lists to tamper with).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/crypto/rng.ts';
import { checkPlan, expandPlan, planCompact, type CompactPlan, type CompactResource } from '../../src/plan/index.ts';
import { blueprint, identity, inventory, net } from '../helpers/fixtures.ts';

const defs = [
  { id: 'pa', endpoints: ['203.0.113.1'], reservedPorts: [51821] },
  { id: 'pb', endpoints: ['2001:db8::2'] },
  { id: 'pc', endpoints: ['203.0.113.3'] },
  { id: 'h1' },
  { id: 'h2' },
];
const bp = blueprint(
  [
    net({ nodes: ['pa', 'pb', 'pc', 'h1', 'h2'], access: [{ name: 'laptop' }] }),
    net({ name: 'two', ipRange: '10.9.0.0/16', nodes: ['pa', 'h1'] }),
  ],
  { workloads: [{ name: 'web', node: 'pa', image: 'nginx', command: [], network: { name: 'net' }, cpu: 1, memory: 1 << 26, volumes: [] }] },
);
const inv = inventory(defs);
const plan = planCompact(bp, inv, { random: seededRandom('check') });
const res = (p: CompactPlan, node: string, net = 0): CompactResource => p.networks[net].resources.find((r) => r.node === node)!;

test('the planned compact plan is clean', () => {
  assert.deepEqual(checkPlan(plan, bp, inv), []);
  assert.deepEqual(checkPlan(expandPlan(plan), bp, inv), []);
});

test('checkPlan refuses every tampering of a compact plan, with its code', () => {
  const cases: [string, (p: CompactPlan) => void, string][] = [
    ['a subnet outside the range', (p) => (res(p, 'pa').subnet = '10.99.0.0/24'), 'E_PLAN_SUBNET'],
    ['a subnet of another size', (p) => (res(p, 'pa').subnet = res(p, 'pa').subnet.replace('/24', '/25')), 'E_PLAN_SUBNET'],
    ['a subnet that is not CIDR', (p) => (res(p, 'pa').subnet = 'ten'), 'E_PLAN_SUBNET'],
    ['overlapping subnets', (p) => (res(p, 'pb').subnet = res(p, 'pa').subnet), 'E_PLAN_OVERLAP'],
    ['a device subnet over a node subnet', (p) => (p.networks[0].access[0].subnet = res(p, 'h1').subnet), 'E_PLAN_OVERLAP'],
    ['a device subnet outside the range', (p) => (p.networks[0].access[0].subnet = '192.168.0.0/24'), 'E_PLAN_SUBNET'],
    ['a gateway that is not the first host', (p) => (res(p, 'pa').gateway = res(p, 'pa').gateway.replace(/\.1$/, '.2')), 'E_PLAN_SUBNET'],
    ['a WireGuard address that is not the last host', (p) => (res(p, 'pa').wgAddress = '10.1.200.254/32'), 'E_PLAN_SUBNET'],
    ["another node's WireGuard key", (p) => (res(p, 'pb').publicKey = res(p, 'pa').publicKey), 'E_PLAN_PEER_KEY'],
    ["a device with a node's key", (p) => (p.networks[0].access[0].publicKey = res(p, 'h2').publicKey), 'E_PLAN_PEER_KEY'],
    ["a private key sealed to another node's identity", (p) => (res(p, 'pa').sealedTo = identity('pb').publicKey.toString()), 'E_PLAN_SEALED'],
    ['a wrong endpoint', (p) => (res(p, 'pa').endpoint = '198.51.100.66:51820'), 'E_PLAN_ENDPOINT'],
    ['an endpoint with another port', (p) => (res(p, 'pa').endpoint = '203.0.113.1:1'), 'E_PLAN_ENDPOINT'],
    ['a public node without endpoint', (p) => (res(p, 'pc').endpoint = null), 'E_PLAN_ENDPOINT'],
    ['a hidden node with an endpoint', (p) => (res(p, 'h1').endpoint = '198.51.100.1:51820'), 'E_PLAN_ENDPOINT'],
    ['a hidden node marked public', (p) => (res(p, 'h1').hidden = false), 'E_PLAN_HIDDEN'],
    ['a public node marked hidden', (p) => (res(p, 'pc').hidden = true), 'E_PLAN_HIDDEN'],
    ['a hidden node without access node', (p) => (res(p, 'h1').accessNode = null), 'E_PLAN_HIDDEN_PEER'],
    ['a hidden node entering through a hidden node', (p) => (res(p, 'h1').accessNode = 'h2'), 'E_PLAN_HIDDEN_PEER'],
    ['a hidden node entering through a stranger', (p) => (res(p, 'h1').accessNode = 'ghost'), 'E_PLAN_HIDDEN_PEER'],
    ['a public node with an access node', (p) => (res(p, 'pa').accessNode = 'pb'), 'E_PLAN_HIDDEN_PEER'],
    ['a device entering through a hidden node', (p) => (p.networks[0].access[0].via = 'h1'), 'E_PLAN_MESH'],
    ['a device entering through a node of no resource', (p) => (p.networks[0].access[0].via = 'ghost'), 'E_PLAN_MESH'],
    ['a resource missing', (p) => (p.networks[0].resources = p.networks[0].resources.filter((r) => r.node !== 'pc')), 'E_PLAN_MEMBERS'],
    ['a resource twice', (p) => p.networks[0].resources.push({ ...res(p, 'pc') }), 'E_PLAN_MEMBERS'],
    ['a resource for a node outside the network', (p) => p.networks[1].resources.push({ ...res(p, 'pb'), subnet: '10.9.7.0/24', gateway: '10.9.7.1', wgAddress: '10.9.7.254/32' }), 'E_PLAN_MEMBERS'],
    ['one port twice on a node', (p) => (res(p, 'pa', 1).listenPort = res(p, 'pa').listenPort), 'E_PLAN_PORT'],
    ['a reserved port', (p) => (res(p, 'pa').listenPort = 51821), 'E_PLAN_PORT'],
    ['no keepalive', (p) => (p.hiddenKeepalive = 0), 'E_PLAN_KEEPALIVE'],
    ['a keepalive that is no number', (p) => ((p as unknown as Record<string, unknown>).hiddenKeepalive = '25'), 'E_PLAN_KEEPALIVE'],
    ['a workload outside its node subnet', (p) => (p.workloads[0].ip = '10.1.250.2'), 'E_PLAN_WORKLOAD'],
    ['a workload on the gateway', (p) => (p.workloads[0].ip = res(p, 'pa').gateway), 'E_PLAN_WORKLOAD'],
    ['a workload on a node without resource', (p) => (p.workloads[0].node = 'ghost'), 'E_PLAN_WORKLOAD'],
    ['a network missing', (p) => p.networks.pop(), 'E_PLAN_NETWORKS'],
    ['another tenant', (p) => (p.tenant = 'evil'), 'E_PLAN_BLUEPRINT'],
    ['a bad range', (p) => (p.networks[0].ipRange = 'x'), 'E_PLAN_RANGE'],
    ['another format', (p) => ((p as unknown as Record<string, unknown>).format = 'zmesh-plan/9'), 'E_PLAN_FORMAT'],
  ];
  for (const [what, fn, code] of cases) {
    const p = structuredClone(plan);
    fn(p);
    const codes = checkPlan(p, bp, inv).map((x) => x.code);
    assert.ok(codes.includes(code), `${what}: got ${JSON.stringify(codes)}, want ${code}`);
  }
});

test('the same tamperings in the full form: refused too (a full plan goes through the same member rules)', () => {
  const cases: [string, (p: CompactPlan) => void][] = [
    ['a subnet outside the range', (p) => (res(p, 'pa').subnet = '10.99.0.0/24')],
    ['overlapping subnets', (p) => (res(p, 'pb').subnet = res(p, 'pa').subnet)],
    ["another node's WireGuard key", (p) => (res(p, 'pb').publicKey = res(p, 'pa').publicKey)],
    ["a private key sealed to another node's identity", (p) => (res(p, 'pa').sealedTo = identity('pb').publicKey.toString())],
    ['a wrong endpoint', (p) => (res(p, 'pa').endpoint = '198.51.100.66:51820')],
  ];
  for (const [what, fn] of cases) {
    const p = structuredClone(plan);
    fn(p);
    let full;
    try {
      full = expandPlan(p);
    } catch {
      continue; // not even expandable: the derivation refuses it (E_PLAN_MESH)
    }
    assert.notDeepEqual(checkPlan(full, bp, inv), [], what);
  }
});

test('a compact plan whose members do not form a mesh cannot be expanded or cut (E_PLAN_MESH)', () => {
  const p = structuredClone(plan);
  res(p, 'h1').accessNode = 'h2';
  assert.throws(() => expandPlan(p), (e: Error & { code?: string }) => e.code === 'E_PLAN_MESH');
});
