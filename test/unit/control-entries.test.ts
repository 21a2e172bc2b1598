// The etcd layout of plans and node parts: keys, round trips, the diffs a change produces, packing into
// transactions, and what an agent does with a part it receives (stale-generation logic).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/crypto/rng.ts';
import { expandPlan, nodePart, planBlueprint, planCompact, type Plan } from '../../src/plan/index.ts';
import {
  assemblePart,
  assemblePlan,
  diffEntries,
  Keys,
  packTxns,
  partDecision,
  partWithHead,
  planEntries,
  planPartEntries,
  subnetBucket,
  subnetEntries,
  decodeSubnets,
  type Entries,
  type Op,
} from '../../src/control/index.ts';
import { blueprint, inventory, net, type NodeDef } from '../helpers/fixtures.ts';
import { signed } from '../helpers/agent-fixtures.ts';

const keys = new Keys();
const pub = (id: string, i: number): NodeDef => ({ id, endpoints: [`203.0.113.${i}`] });

function world(n: number, hidden = 0, extra: NodeDef[] = []) {
  const defs: NodeDef[] = [];
  for (let i = 1; i <= n; i++) defs.push(i <= hidden ? { id: `h${i}` } : pub(`n${i}`, i));
  const base = defs.map((d) => d.id);
  defs.push(...extra);
  const ids = defs.map((d) => d.id);
  const bp = blueprint([net({ nodes: ids, ipRange: '10.8.0.0/14' }), net({ name: 'other', nodes: base.slice(-3), ipRange: '10.20.0.0/16' })], {
    workloads: [{ name: 'web', node: ids[0], image: 'nginx', command: [], network: { name: 'net' }, cpu: 1, memory: 1 << 26, volumes: [] }],
  });
  return { bp, inv: inventory(defs), ids };
}

function planOf(n: number, hidden = 0, previous?: Plan, extra: NodeDef[] = []): Plan {
  const w = world(n, hidden, extra);
  return planBlueprint(w.bp, w.inv, { random: seededRandom(`p${n}`), previous });
}

test('key layout: every key of a node lies under its own prefix and parses back', () => {
  assert.equal(keys.nodeParts('n1'), '/zmesh/v1/parts/n1/');
  const k = keys.part({ node: 'n1', tenant: 'acme', blueprint: 'shop' }) + 'peer/net/n2';
  assert.equal(k, '/zmesh/v1/parts/n1/acme/shop/peer/net/n2');
  assert.ok(k.startsWith(keys.nodeParts('n1')));
  assert.ok(!k.startsWith(keys.nodeParts('n')), 'the trailing slash keeps n1 out of n');
  assert.deepEqual(keys.parsePartKey(k), { ref: { node: 'n1', tenant: 'acme', blueprint: 'shop' }, suffix: 'peer/net/n2' });
  assert.deepEqual(keys.parsePlanKey('/zmesh/v1/plans/acme/shop/res/net/n1'), { tenant: 'acme', blueprint: 'shop', suffix: 'res/net/n1' });
  assert.equal(keys.parsePartKey('/zmesh/v1/plans/acme/shop/meta'), null);
  assert.equal(new Keys('/other').node('x'), '/other/nodes/x');
  assert.throws(() => new Keys('no-slash'));
});

test('a node part survives the trip through entries unchanged (public, hidden, workloads, two networks)', () => {
  const plan = planOf(12, 3);
  for (const node of ['h1', 'n4', 'n11', 'n12']) {
    const part = nodePart(plan, node);
    const entries = partWithHead(part, keys.envelope('acme', 'shop'));
    const back = assemblePart({ node, tenant: 'acme', blueprint: 'shop' }, entries);
    assert.deepEqual(back?.part, part, node);
    assert.deepEqual(back?.head, { generation: 1, version: 1, envelope: '/zmesh/v1/plans/acme/shop/envelope' });
  }
  assert.equal(assemblePart({ node: 'n4', tenant: 'acme', blueprint: 'shop' }, new Map([['net/net', '{}']])), null, 'no head: not yet');
});

test('node names over several buckets assemble into one sorted list; a bucket that is not an object is refused', () => {
  const plan = planOf(150, 20);
  const entries = planPartEntries(plan, keys.envelope('acme', 'shop')).get('n40')!;
  const buckets = [...entries.keys()].filter((k) => k.startsWith('names/net/'));
  assert.ok(buckets.length >= 3, `names in ${buckets.length} buckets`);
  const back = assemblePart({ node: 'n40', tenant: 'acme', blueprint: 'shop' }, entries)!;
  const nodes = back.part.networks.find((n) => n.name === 'net')!.names!.nodes;
  const all = buckets.flatMap((b) => Object.entries(JSON.parse(entries.get(b)!) as Record<string, unknown>));
  assert.equal(all.length, 150);
  assert.deepEqual(Object.keys(nodes), all.map(([k]) => k).sort(), 'every bucket, in one sorted list');
  for (const [k, v] of all) assert.deepEqual(nodes[k], v, k);
  for (const bad of ['"n1"', 'null', '[1]', '7']) {
    const e = new Map(entries);
    e.set(buckets[1], bad);
    assert.throws(() => assemblePart({ node: 'n40', tenant: 'acme', blueprint: 'shop' }, e), /not an object of names/, bad);
  }
});

test('planPartEntries equals the parts cut one by one', () => {
  const plan = planOf(20, 4);
  const all = planPartEntries(plan, 'ENV');
  assert.equal(all.size, 20);
  for (const [node, e] of all) assert.deepEqual(e, partWithHead(nodePart(plan, node), 'ENV'), node);
  assert.deepEqual([...planPartEntries(plan, 'ENV', new Set(['n7'])).keys()], ['n7']);
});

test('subnets are bucketed by slot as 64-bit masks; anything else is kept as text', () => {
  assert.equal(subnetBucket('10.8.0.0/14', '10.8.0.0/24'), '0');
  assert.equal(subnetBucket('10.8.0.0/14', '10.8.63.0/24'), '0');
  assert.equal(subnetBucket('10.8.0.0/14', '10.8.64.0/24'), '1');
  assert.equal(subnetBucket('10.8.0.0/14', 'garbage'), 'x');
  const e = subnetEntries('net', '10.8.0.0/14', 24, ['10.8.0.0/24', '10.8.3.0/24', '10.8.64.0/24', '10.99.0.0/24', '10.8.5.0/25']);
  assert.deepEqual(e, [
    ['subnets/net/0', '"0000000000000009"'],
    ['subnets/net/1', '"0000000000000001"'],
    ['subnets/net/x', '["10.8.5.0/25","10.99.0.0/24"]'],
  ]);
  assert.deepEqual(decodeSubnets('0', '0000000000000009', '10.8.0.0/14', 24), ['10.8.0.0/24', '10.8.3.0/24']);
  assert.deepEqual(decodeSubnets('x', ['10.99.0.0/24'], '10.8.0.0/14', 24), ['10.99.0.0/24']);
  assert.throws(() => decodeSubnets('0', 'zz', '10.8.0.0/14', 24));
});

test('a stored plan is the compact plan: no peers and no wg-quick config; it re-plans to the same plan and derives the same parts', () => {
  const b = blueprint([net({ nodes: ['n1', 'n2', 'h3'], access: [{ name: 'laptop', publicKey: 'GG2jGAkdzsbvvTFmyZRXuDzsvAd8cXmBAvoRzYakg1Q=' }] })]);
  const inv = inventory([pub('n1', 1), pub('n2', 2), { id: 'h3' }]);
  const plan = planCompact(b, inv, { random: seededRandom('s') });
  const entries = planEntries(plan, signed(b));
  for (const v of entries.values()) {
    assert.ok(!v.includes('"peers"'), 'no peers stored');
    assert.ok(!v.includes('wgQuickConfig') && !v.includes('[Interface]'), 'no device config stored');
  }
  const back = assemblePlan('acme', 'shop', entries)!;
  assert.equal(back.envelope.blueprint.name, 'shop');
  assert.deepEqual(back.plan, plan, 'the stored plan is the compact plan');
  const again = planCompact(b, inv, { random: seededRandom('other'), previous: back.plan });
  assert.deepEqual({ ...again, generation: 1 }, plan, 'same subnets, ports, keys, access nodes and peers');
  assert.deepEqual(planPartEntries(back.plan, 'ENV'), planPartEntries(expandPlan(plan), 'ENV'), 'parts from the stored plan = parts from the full plan');
});

function apply(cur: Entries | undefined, ops: Op[], prefix: string): Entries {
  const out = new Map(cur);
  for (const o of ops) {
    const s = o.key.slice(prefix.length);
    if (o.type === 'put') out.set(s, o.value!);
    else out.delete(s);
  }
  return out;
}

test('diffs: nothing when only the generation differs; changed entries then the head; removal head first', () => {
  const prefix = '/p/';
  const a = partWithHead(nodePart(planOf(6), 'n2'), 'ENV');
  assert.deepEqual(diffEntries(prefix, a, a, 'gen'), []);
  const regen = new Map(a);
  regen.set('gen', a.get('gen')!.replace('"generation":1', '"generation":7'));
  assert.deepEqual(diffEntries(prefix, a, regen, 'gen'), [], 'a new generation alone is not a change');
  const b = partWithHead({ ...nodePart(planOf(6), 'n2'), generation: 2, version: 2 }, 'ENV');
  assert.deepEqual(diffEntries(prefix, a, b, 'gen').map((o) => o.key), ['/p/gen'], 'a new version is announced');
  const ops = diffEntries(prefix, undefined, a, 'gen');
  assert.equal(ops.at(-1)!.key, '/p/gen');
  assert.deepEqual(apply(undefined, ops, prefix), a);
  const del = diffEntries(prefix, a, undefined, 'gen');
  assert.equal(del[0].key, '/p/gen');
  assert.ok(del.every((o) => o.type === 'delete'));
  assert.equal(del.length, a.size);
});

test('one public node joining 50: each existing node gets its new peer, one subnet bucket and its head', () => {
  const before = planOf(50, 5);
  const after = planOf(50, 5, before, [pub('n99', 99)]);
  const was = planPartEntries(before, 'ENV');
  const now = planPartEntries(after, 'ENV');
  let puts = 0;
  for (const [node, e] of now) {
    const ops = diffEntries(`/${node}/`, was.get(node), e, 'gen');
    puts += ops.length;
    if (node === 'n99') continue;
    const hidden = node.startsWith('h');
    const suffixes = ops.map((o) => o.key.slice(node.length + 2)).sort();
    // A hidden node's only peer (its access node) does not change; its subnet list does, and the names bucket of
    // the new node's slot (n99.net; slots 0-63: bucket 0), never more than 64 nodes' names.
    assert.deepEqual(suffixes, hidden ? ['gen', 'names/net/0', 'subnets/net/0'] : ['gen', 'names/net/0', 'peer/net/n99', 'subnets/net/0'], node);
    const bucket = Object.keys(JSON.parse(ops.find((o) => o.key.endsWith('/names/net/0'))!.value!));
    assert.ok(bucket.includes('n99') && bucket.length <= 64, `${bucket.length} names in the bucket`);
  }
  assert.ok(puts < 4 * 50 + now.get('n99')!.size, `${puts} puts`);
});

test('packing: a node group stays in one transaction when it fits; a big one is split in order', () => {
  const g = (n: string, k: number): Op[] => Array.from({ length: k }, (_, i) => ({ type: 'put' as const, key: `/${n}/${i}`, value: 'x' }));
  const txns = packTxns([g('a', 3), g('b', 3), g('c', 3)], 7, 1 << 20);
  assert.deepEqual(txns.map((t) => t.length), [6, 3]);
  const big = packTxns([g('a', 2), g('big', 10)], 4, 1 << 20);
  assert.deepEqual(big.map((t) => t.length), [2, 4, 4, 2]);
  assert.equal(big.at(-1)!.at(-1)!.key, '/big/9', 'the last op (the head) is last');
  assert.deepEqual(packTxns([g('a', 2), g('b', 2)], 128, 10).map((t) => t.length), [2, 2], 'byte budget');
});

test('stale-generation logic: what an agent does with a part', () => {
  const cases: [string, { version: number; generation: number } | undefined, { version: number; generation: number }, string][] = [
    ['nothing accepted yet', undefined, { version: 1, generation: 1 }, 'new'],
    ['a newer version (any generation)', { version: 1, generation: 5 }, { version: 2, generation: 3 }, 'update'],
    ['same version, newer generation (membership change)', { version: 1, generation: 1 }, { version: 1, generation: 2 }, 'update'],
    ['same version and generation (a resync)', { version: 1, generation: 2 }, { version: 1, generation: 2 }, 'current'],
    ['same version, older generation (a late update)', { version: 1, generation: 3 }, { version: 1, generation: 2 }, 'stale'],
    ['an older version', { version: 2, generation: 1 }, { version: 1, generation: 9 }, 'stale'],
  ];
  for (const [name, stored, part, want] of cases) assert.equal(partDecision(stored, part), want, name);
});
