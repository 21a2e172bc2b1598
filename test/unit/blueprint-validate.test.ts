// Blueprint validation: every error code with its exact path, all problems at once, defaults, normalization.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError, type Problem } from '../../src/errors.ts';
import { parseBlueprint, validateBlueprint, type Blueprint } from '../../src/blueprint/index.ts';

const KEY_A = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const KEY_B = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

type Raw = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A small valid blueprint as a tenant would write it (defaults left out). */
function base(): Raw {
  return {
    tenant: 'acme',
    name: 'shop',
    version: 1,
    networks: [{ name: 'backend', ipRange: '10.20.0.0/16', nodes: ['node-a', 'node-b'], access: [{ name: 'laptop' }] }],
    workloads: [
      { name: 'web', node: 'node-a', image: 'nginx:1.27', network: { name: 'backend' }, volumes: [{ name: 'data', mount: '/data' }] },
    ],
    volumes: [{ name: 'data', node: 'node-a', size: '1Gi' }],
  };
}

function problemsOf(raw: unknown): Problem[] {
  try {
    validateBlueprint(raw);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    return err.problems;
  }
  return [];
}

/** [code, path] of each problem. */
function codes(raw: unknown): string[][] {
  return problemsOf(raw).map((p) => [p.code, p.path]);
}

function mutated(f: (b: Raw) => void): Raw {
  const b = base();
  f(b);
  return b;
}

interface Case {
  name: string;
  edit: (b: Raw) => void;
  want: string[][];
}

function runTable(title: string, cases: Case[]): void {
  for (const c of cases) {
    test(`${title}: ${c.name}`, () => {
      assert.deepEqual(codes(mutated(c.edit)), c.want);
    });
  }
}

test('the base fixture is valid', () => {
  assert.deepEqual(codes(base()), []);
});

runTable('fields', [
  { name: 'tenant missing', edit: (b) => delete b.tenant, want: [['E_REQUIRED', 'tenant']] },
  { name: 'name is a number', edit: (b) => (b.name = 5), want: [['E_TYPE', 'name']] },
  { name: 'tenant with capitals', edit: (b) => (b.tenant = 'Acme'), want: [['E_NAME_FORMAT', 'tenant']] },
  { name: 'name ending in -', edit: (b) => (b.name = 'shop-'), want: [['E_NAME_FORMAT', 'name']] },
  { name: 'name of 64 chars', edit: (b) => (b.name = 'a'.repeat(64)), want: [['E_NAME_FORMAT', 'name']] },
  { name: 'unknown top-level field', edit: (b) => (b.colour = 'red'), want: [['E_UNKNOWN_FIELD', 'colour']] },
  { name: 'unknown nested field', edit: (b) => (b.workloads[0].network.mask = 8), want: [['E_UNKNOWN_FIELD', 'workloads[0].network.mask']] },
  { name: 'version 0', edit: (b) => (b.version = 0), want: [['E_VERSION', 'version']] },
  { name: 'version 1.5', edit: (b) => (b.version = 1.5), want: [['E_VERSION', 'version']] },
  { name: 'version above 2^53-1', edit: (b) => (b.version = 2 ** 53), want: [['E_VERSION', 'version']] },
  { name: 'version NaN', edit: (b) => (b.version = NaN), want: [['E_TYPE', 'version']] },
  { name: 'cpu Infinity', edit: (b) => (b.workloads[0].cpu = Infinity), want: [['E_TYPE', 'workloads[0].cpu']] },
  { name: 'cpu 0', edit: (b) => (b.workloads[0].cpu = 0), want: [['E_CPU', 'workloads[0].cpu']] },
  { name: 'cpu 257', edit: (b) => (b.workloads[0].cpu = 257), want: [['E_CPU', 'workloads[0].cpu']] },
  { name: 'memory "lots"', edit: (b) => (b.workloads[0].memory = 'lots'), want: [['E_SIZE_FORMAT', 'workloads[0].memory']] },
  { name: 'memory 1Mi (< 4Mi)', edit: (b) => (b.workloads[0].memory = '1Mi'), want: [['E_SIZE_RANGE', 'workloads[0].memory']] },
  { name: 'volume size 1Ki (< 1Mi)', edit: (b) => (b.volumes[0].size = '1Ki'), want: [['E_SIZE_RANGE', 'volumes[0].size']] },
  { name: 'volume size missing', edit: (b) => delete b.volumes[0].size, want: [['E_REQUIRED', 'volumes[0].size']] },
  { name: 'access key malformed', edit: (b) => (b.networks[0].access[0].publicKey = 'abc='), want: [['E_KEY_FORMAT', 'networks[0].access[0].publicKey']] },
  { name: 'image with a space', edit: (b) => (b.workloads[0].image = 'nginx latest'), want: [['E_IMAGE', 'workloads[0].image']] },
  { name: 'image empty', edit: (b) => (b.workloads[0].image = ''), want: [['E_IMAGE', 'workloads[0].image']] },
  { name: 'command with NUL', edit: (b) => (b.workloads[0].command = ['a\0b']), want: [['E_COMMAND', 'workloads[0].command[0]']] },
  { name: 'command not a list', edit: (b) => (b.workloads[0].command = 'sh -c x'), want: [['E_TYPE', 'workloads[0].command']] },
  { name: 'mount relative', edit: (b) => (b.workloads[0].volumes[0].mount = 'data'), want: [['E_MOUNT_PATH', 'workloads[0].volumes[0].mount']] },
  { name: 'mount with ..', edit: (b) => (b.workloads[0].volumes[0].mount = '/data/../etc'), want: [['E_MOUNT_PATH', 'workloads[0].volumes[0].mount']] },
  { name: 'egress "yes"', edit: (b) => (b.networks[0].egress = 'yes'), want: [['E_TYPE', 'networks[0].egress']] },
  { name: 'null where a list goes', edit: (b) => (b.networks[0].access = null), want: [['E_TYPE', 'networks[0].access']] },
  { name: 'lone surrogate in a command', edit: (b) => (b.workloads[0].command = ['\ud800']), want: [['E_TYPE', 'workloads[0].command[0]']] },
  { name: 'array over 10,000 items', edit: (b) => (b.workloads[0].command = new Array(10_001).fill('x')), want: [['E_TOO_LARGE', 'workloads[0].command']] },
]);

runTable('networks', [
  { name: 'ipRange not a CIDR', edit: (b) => (b.networks[0].ipRange = '10.20.0.0'), want: [['E_CIDR_FORMAT', 'networks[0].ipRange']] },
  { name: 'ipRange octet 256', edit: (b) => (b.networks[0].ipRange = '10.256.0.0/16'), want: [['E_CIDR_FORMAT', 'networks[0].ipRange']] },
  { name: 'ipRange leading zero', edit: (b) => (b.networks[0].ipRange = '010.20.0.0/16'), want: [['E_CIDR_FORMAT', 'networks[0].ipRange']] },
  { name: 'ipRange host bits', edit: (b) => (b.networks[0].ipRange = '10.20.1.0/16'), want: [['E_RANGE_HOST_BITS', 'networks[0].ipRange']] },
  { name: 'ipRange /7', edit: (b) => (b.networks[0].ipRange = '10.0.0.0/7'), want: [['E_RANGE_PREFIX', 'networks[0].ipRange']] },
  { name: 'ipRange /23', edit: (b) => (b.networks[0].ipRange = '10.20.0.0/23'), want: [['E_RANGE_PREFIX', 'networks[0].ipRange']] },
  { name: 'subnetPrefix 30', edit: (b) => (b.networks[0].subnetPrefix = 30), want: [['E_SUBNET_PREFIX', 'networks[0].subnetPrefix']] },
  { name: 'subnetPrefix = range prefix', edit: (b) => (b.networks[0].subnetPrefix = 16), want: [['E_SUBNET_PREFIX', 'networks[0].subnetPrefix']] },
  { name: 'subnetPrefix 24.5', edit: (b) => (b.networks[0].subnetPrefix = 24.5), want: [['E_SUBNET_PREFIX', 'networks[0].subnetPrefix']] },
  {
    name: '2 subnets for 2 nodes + 1 device',
    edit: (b) => Object.assign(b.networks[0], { ipRange: '10.20.0.0/22', subnetPrefix: 23 }),
    want: [['E_RANGE_TOO_SMALL', 'networks[0].ipRange']],
  },
  {
    name: 'second network inside the first',
    edit: (b) => b.networks.push({ name: 'front', ipRange: '10.20.64.0/18', nodes: ['node-a'] }),
    want: [['E_RANGE_OVERLAP', 'networks[1].ipRange']],
  },
  {
    name: 'first network inside the second',
    edit: (b) => b.networks.push({ name: 'front', ipRange: '10.0.0.0/8', nodes: ['node-a'] }),
    want: [['E_RANGE_OVERLAP', 'networks[1].ipRange']],
  },
  { name: 'nodes empty', edit: (b) => (b.networks[0].nodes = []), want: [['E_REQUIRED', 'networks[0].nodes']] },
  { name: 'node id bad', edit: (b) => (b.networks[0].nodes[1] = 'Node_B'), want: [['E_NAME_FORMAT', 'networks[0].nodes[1]']] },
  { name: 'node listed twice', edit: (b) => b.networks[0].nodes.push('node-a'), want: [['E_DUPLICATE_NODE', 'networks[0].nodes[2]']] },
]);

runTable('names and references', [
  {
    name: 'duplicate network name',
    edit: (b) => b.networks.push({ name: 'backend', ipRange: '10.30.0.0/16', nodes: ['node-a'] }),
    want: [['E_DUPLICATE_NAME', 'networks[1].name']],
  },
  { name: 'duplicate workload name', edit: (b) => b.workloads.push({ ...b.workloads[0], volumes: [] }), want: [['E_DUPLICATE_NAME', 'workloads[1].name']] },
  { name: 'duplicate volume name', edit: (b) => b.volumes.push({ name: 'data', node: 'node-b', size: '1Gi' }), want: [['E_DUPLICATE_NAME', 'volumes[1].name']] },
  { name: 'duplicate access name', edit: (b) => b.networks[0].access.push({ name: 'laptop' }), want: [['E_DUPLICATE_NAME', 'networks[0].access[1].name']] },
  {
    name: 'duplicate access key',
    edit: (b) => (b.networks[0].access = [{ name: 'a', publicKey: KEY_A }, { name: 'b', publicKey: KEY_A }]),
    want: [['E_DUPLICATE_KEY', 'networks[0].access[1].publicKey']],
  },
  {
    name: 'two volumes on one mount',
    edit: (b) => {
      b.volumes.push({ name: 'logs', node: 'node-a', size: '1Gi' });
      b.workloads[0].volumes.push({ name: 'logs', mount: '/data' });
    },
    want: [['E_DUPLICATE_MOUNT', 'workloads[0].volumes[1].mount']],
  },
  { name: 'unknown network', edit: (b) => (b.workloads[0].network.name = 'front'), want: [['E_WORKLOAD_NETWORK', 'workloads[0].network.name']] },
  { name: 'node outside the network', edit: (b) => { b.workloads[0].node = 'node-z'; b.volumes[0].node = 'node-z'; }, want: [['E_WORKLOAD_NODE', 'workloads[0].node']] },
  { name: 'ip malformed', edit: (b) => (b.workloads[0].network.ip = '10.20.0'), want: [['E_WORKLOAD_IP', 'workloads[0].network.ip']] },
  { name: 'ip outside the range', edit: (b) => (b.workloads[0].network.ip = '10.21.0.5'), want: [['E_WORKLOAD_IP', 'workloads[0].network.ip']] },
  {
    name: 'ip asked twice',
    edit: (b) => {
      b.workloads[0].network.ip = '10.20.0.5';
      b.workloads.push({ name: 'api', node: 'node-b', image: 'api:1', network: { name: 'backend', ip: '10.20.0.5' } });
    },
    want: [['E_WORKLOAD_IP_TAKEN', 'workloads[1].network.ip']],
  },
  { name: 'unknown volume', edit: (b) => (b.workloads[0].volumes[0].name = 'logs'), want: [['E_VOLUME_UNKNOWN', 'workloads[0].volumes[0].name']] },
  { name: 'volume on another node', edit: (b) => (b.volumes[0].node = 'node-b'), want: [['E_VOLUME_NODE', 'workloads[0].volumes[0].name']] },
]);

runTable('hostile input', [
  { name: '__proto__ key (own property, as JSON.parse makes it)', edit: (b) => Object.defineProperty(b, '__proto__', { value: { polluted: true }, enumerable: true }), want: [['E_UNKNOWN_FIELD', '__proto__']] },
  { name: 'constructor key', edit: (b) => (b.networks[0].constructor = { prototype: {} }), want: [['E_UNKNOWN_FIELD', 'networks[0].constructor']] },
  { name: 'odd key is quoted in the path', edit: (b) => (b['a b'] = 1), want: [['E_UNKNOWN_FIELD', '["a b"]']] },
  { name: 'network is a list', edit: (b) => (b.workloads[0].network = ['backend']), want: [['E_TYPE', 'workloads[0].network']] },
]);

test('non-mappings at the top are one E_TYPE at the root', () => {
  for (const raw of [null, undefined, 1, 'x', [], true]) {
    assert.deepEqual(codes(raw), [[raw === undefined ? 'E_REQUIRED' : 'E_TYPE', '']], String(raw));
  }
});

test('__proto__ input pollutes nothing', () => {
  assert.throws(() => parseBlueprint('{"__proto__": {"polluted": true}, "tenant": "a"}'), ValidationError);
  assert.throws(() => parseBlueprint('__proto__:\n  polluted: true\n'), ValidationError);
  assert.equal(({} as Raw).polluted, undefined);
  assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
});

test('one input with five different problems reports all five, in order', () => {
  const b = mutated((b) => {
    b.tenant = 'ACME';
    b.networks[0].ipRange = '10.20.0.1/16';
    b.workloads[0].cpu = -1;
    b.workloads[0].network.name = 'front';
    b.volumes[0].size = 'big';
  });
  assert.deepEqual(codes(b), [
    ['E_NAME_FORMAT', 'tenant'],
    ['E_RANGE_HOST_BITS', 'networks[0].ipRange'],
    ['E_SIZE_FORMAT', 'volumes[0].size'],
    ['E_CPU', 'workloads[0].cpu'],
    ['E_WORKLOAD_NETWORK', 'workloads[0].network.name'],
  ]);
  for (const p of problemsOf(b)) assert.ok(p.message.length > 0 && p.hint.length > 0, `${p.code} has message and hint`);
});

test('defaults are filled and sizes are bytes', () => {
  const bp = validateBlueprint({
    tenant: 'acme',
    name: 'shop',
    version: 3,
    networks: [{ name: 'n', ipRange: '10.1.0.0/16', nodes: ['a'] }],
    workloads: [{ name: 'w', node: 'a', image: 'busybox', network: { name: 'n' } }],
  });
  const want: Blueprint = {
    tenant: 'acme',
    name: 'shop',
    version: 3,
    networks: [{ name: 'n', ipRange: '10.1.0.0/16', subnetPrefix: 24, nodes: ['a'], access: [], egress: false }],
    workloads: [{ name: 'w', node: 'a', image: 'busybox', command: [], network: { name: 'n' }, cpu: 1, memory: 256 * 2 ** 20, volumes: [] }],
    volumes: [],
  };
  assert.deepEqual(bp, want);
  assert.equal(JSON.stringify(bp), JSON.stringify(want), 'same key order');
});

test('normalization is stable: a normalized blueprint re-validates to the same object', () => {
  const once = validateBlueprint(mutated((b) => (b.networks[0].access[0].publicKey = KEY_B)));
  assert.deepEqual(validateBlueprint(once), once);
  assert.notEqual(validateBlueprint(once), once, 'a fresh object');
  assert.equal(once.workloads[0].memory, 268435456);
  assert.equal(once.volumes[0].size, 1073741824);
});

test('the example blueprint parses', () => {
  const bp = parseBlueprint(readFileSync(new URL('../../examples/tenant-blueprint.yaml', import.meta.url), 'utf8'));
  assert.equal(`${bp.tenant}/${bp.name} v${bp.version}`, 'acme/shop v1');
  assert.deepEqual(bp.networks.map((n) => [n.name, n.ipRange, n.nodes.join(','), n.access.map((a) => a.name).join(','), n.egress]), [
    ['backend', '10.20.0.0/16', 'node-a,node-b,node-c,node-d', 'laptop', true],
  ]);
  assert.equal(bp.networks[0].access[0].publicKey, undefined);
  assert.equal(bp.workloads.length, 2);
  assert.equal(bp.volumes.length, 1);
});

// Issue 14: mounts where the engine owns the path, ranges no tenant network can use, the workload disk limit.
runTable('reserved mounts', [
  { name: 'mount /proc', edit: (b) => (b.workloads[0].volumes[0].mount = '/proc'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /proc/sys/kernel', edit: (b) => (b.workloads[0].volumes[0].mount = '/proc/sys/kernel'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /dev', edit: (b) => (b.workloads[0].volumes[0].mount = '/dev'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /dev/shm', edit: (b) => (b.workloads[0].volumes[0].mount = '/dev/shm'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /sys', edit: (b) => (b.workloads[0].volumes[0].mount = '/sys'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /sys/fs/cgroup', edit: (b) => (b.workloads[0].volumes[0].mount = '/sys/fs/cgroup'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /etc/hosts', edit: (b) => (b.workloads[0].volumes[0].mount = '/etc/hosts'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /etc/resolv.conf', edit: (b) => (b.workloads[0].volumes[0].mount = '/etc/resolv.conf'), want: [['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount']] },
  { name: 'mount /dev/../data (.. first)', edit: (b) => (b.workloads[0].volumes[0].mount = '/dev/../data'), want: [['E_MOUNT_PATH', 'workloads[0].volumes[0].mount']] },
  // Look-alikes are ordinary paths.
  { name: 'mount /procedures is fine', edit: (b) => (b.workloads[0].volumes[0].mount = '/procedures'), want: [] },
  { name: 'mount /devices is fine', edit: (b) => (b.workloads[0].volumes[0].mount = '/devices'), want: [] },
  { name: 'mount /srv/sys is fine', edit: (b) => (b.workloads[0].volumes[0].mount = '/srv/sys'), want: [] },
  { name: 'mount /etc/hosts.d is fine', edit: (b) => (b.workloads[0].volumes[0].mount = '/etc/hosts.d'), want: [] },
]);

runTable('reserved ranges', [
  { name: '127.0.0.0/8 (loopback)', edit: (b) => (b.networks[0].ipRange = '127.0.0.0/8'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '127.1.0.0/16 (inside loopback)', edit: (b) => (b.networks[0].ipRange = '127.1.0.0/16'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '0.0.0.0/8', edit: (b) => (b.networks[0].ipRange = '0.0.0.0/8'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '0.1.0.0/16', edit: (b) => (b.networks[0].ipRange = '0.1.0.0/16'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '169.254.0.0/16 (link-local)', edit: (b) => (b.networks[0].ipRange = '169.254.0.0/16'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '169.254.20.0/22', edit: (b) => (b.networks[0].ipRange = '169.254.20.0/22'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '169.0.0.0/8 (holds 169.254/16)', edit: (b) => (b.networks[0].ipRange = '169.0.0.0/8'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '224.0.0.0/16 (multicast)', edit: (b) => (b.networks[0].ipRange = '224.0.0.0/16'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '239.255.0.0/16 (multicast)', edit: (b) => (b.networks[0].ipRange = '239.255.0.0/16'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '240.0.0.0/8 (reserved)', edit: (b) => (b.networks[0].ipRange = '240.0.0.0/8'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '255.255.252.0/22 (broadcast)', edit: (b) => (b.networks[0].ipRange = '255.255.252.0/22'), want: [['E_RANGE_RESERVED', 'networks[0].ipRange']] },
  { name: '169.253.0.0/16 is fine', edit: (b) => (b.networks[0].ipRange = '169.253.0.0/16'), want: [] },
  { name: '223.255.0.0/16 is fine', edit: (b) => (b.networks[0].ipRange = '223.255.0.0/16'), want: [] },
  { name: '1.0.0.0/16 is fine', edit: (b) => (b.networks[0].ipRange = '1.0.0.0/16'), want: [] },
  { name: '126.0.0.0/8 is fine', edit: (b) => (b.networks[0].ipRange = '126.0.0.0/8'), want: [] },
]);

runTable('disk', [
  { name: 'disk "lots"', edit: (b) => (b.workloads[0].disk = 'lots'), want: [['E_SIZE_FORMAT', 'workloads[0].disk']] },
  { name: 'disk 15Mi (< 16Mi)', edit: (b) => (b.workloads[0].disk = '15Mi'), want: [['E_SIZE_RANGE', 'workloads[0].disk']] },
  { name: 'disk -1', edit: (b) => (b.workloads[0].disk = -1), want: [['E_SIZE_FORMAT', 'workloads[0].disk']] },
  { name: 'disk null', edit: (b) => (b.workloads[0].disk = null), want: [['E_TYPE', 'workloads[0].disk']] },
  { name: 'disk 16Mi', edit: (b) => (b.workloads[0].disk = '16Mi'), want: [] },
  { name: 'disk 2^53', edit: (b) => (b.workloads[0].disk = 2 ** 53), want: [['E_SIZE_RANGE', 'workloads[0].disk']] },
]);

test('reserved ranges, reserved mounts and a bad disk are reported at once, with hints', () => {
  const b = mutated((x) => {
    x.networks.push({ name: 'mc', ipRange: '224.0.0.0/16', nodes: ['node-a'] });
    x.workloads[0].volumes[0].mount = '/proc/self';
    x.workloads[0].disk = '1Mi';
  });
  const ps = problemsOf(b);
  assert.deepEqual(ps.map((p) => [p.code, p.path]), [
    ['E_RANGE_RESERVED', 'networks[1].ipRange'],
    ['E_SIZE_RANGE', 'workloads[0].disk'],
    ['E_MOUNT_RESERVED', 'workloads[0].volumes[0].mount'],
  ]);
  assert.deepEqual(ps.map((p) => p.message), [
    '224.0.0.0/16 overlaps 224.0.0.0/4, multicast: no tenant network can use it',
    '1Mi is below the minimum of 16Mi',
    '"/proc/self" is /proc or below, which the container engine owns',
  ]);
  for (const p of ps) assert.ok(p.hint.length > 0);
});

test('disk: absent stays absent (the node applies 1Gi); given, it is bytes; both re-validate to themselves', () => {
  const none = validateBlueprint(base());
  assert.equal('disk' in none.workloads[0], false);
  const some = validateBlueprint(mutated((b) => (b.workloads[0].disk = '512Mi')));
  assert.equal(some.workloads[0].disk, 512 * 2 ** 20);
  assert.deepEqual(Object.keys(some.workloads[0]), ['name', 'node', 'image', 'command', 'network', 'cpu', 'memory', 'disk', 'volumes']);
  assert.deepEqual(validateBlueprint(some), some);
  assert.deepEqual(validateBlueprint(none), none);
});

test("access device egress: true only on a network with egress; false and absent normalize to absent", () => {
  assert.deepEqual(codes(mutated((b) => (b.networks[0].access[0].egress = true))), [['E_DEVICE_EGRESS', 'networks[0].access[0].egress']]);
  assert.deepEqual(codes(mutated((b) => (b.networks[0].access[0].egress = 'yes'))), [['E_TYPE', 'networks[0].access[0].egress']]);
  const on = validateBlueprint(
    mutated((b) => {
      b.networks[0].egress = true;
      b.networks[0].access = [{ name: 'laptop', egress: true }, { name: 'phone', egress: false }, { name: 'tablet' }];
    }),
  );
  assert.deepEqual(on.networks[0].access, [{ name: 'laptop', egress: true }, { name: 'phone' }, { name: 'tablet' }]);
  assert.deepEqual(validateBlueprint(on), on, 'normalized: re-validates to itself');
  const p = problemsOf(mutated((b) => (b.networks[0].access[0].egress = true)))[0];
  assert.equal(p.message, 'an access device can have egress only on a network with egress: true');
  assert.match(p.hint, /egress: true/);
});
