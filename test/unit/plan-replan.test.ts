// Stable re-planning with a previous plan: what must not move, and what must.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/crypto/rng.ts';
import { checkPlan, planBlueprint, type Plan, type Resource } from '../../src/plan/index.ts';
import { blueprint, inventory, net, type NodeDef } from '../helpers/fixtures.ts';

const pub = (id: string, i: number): NodeDef => ({ id, endpoints: [`203.0.113.${i}`] });

function byNode(plan: Plan): Map<string, Resource> {
  return new Map(plan.networks[0].resources.map((r) => [r.node, r]));
}

test('adding a public node changes nothing in existing resources but the new peer entry', () => {
  const defs = [pub('n1', 1), pub('n2', 2), pub('n3', 3), { id: 'h1' }];
  const first = planBlueprint(blueprint([net({ nodes: ['n1', 'n2', 'n3', 'h1'] })]), inventory(defs), { random: seededRandom('a') });
  const bp2 = blueprint([net({ nodes: ['n1', 'n2', 'n3', 'h1', 'n4'] })]);
  const inv2 = inventory([...defs, pub('n4', 4)]);
  const second = planBlueprint(bp2, inv2, { random: seededRandom('b'), previous: first });
  assert.equal(second.generation, 2);
  assert.deepEqual(checkPlan(second, bp2, inv2), []);
  const before = byNode(first);
  const after = byNode(second);
  const n4 = after.get('n4')!;
  assert.equal(n4.subnet, '10.1.4.0/24');
  for (const [node, old] of before) {
    const now = after.get(node)!;
    const { peers: oldPeers, ...oldRest } = old;
    const { peers: newPeers, ...newRest } = now;
    assert.deepEqual(newRest, oldRest, `${node} keeps subnet, port, keys, access node`);
    const added = newPeers.filter((p) => !oldPeers.some((q) => JSON.stringify(q) === JSON.stringify(p)));
    const removed = oldPeers.filter((p) => !newPeers.some((q) => JSON.stringify(q) === JSON.stringify(p)));
    assert.deepEqual(removed, [], `${node} loses no peer entry`);
    if (old.hidden) assert.deepEqual(added, [], 'hidden node is untouched');
    else assert.deepEqual(added.map((p) => p.node), ['n4'], `${node} gains exactly the new peer`);
  }
});

test('removing a node frees it from every peer list and keeps the others in place', () => {
  const defs = [pub('n1', 1), pub('n2', 2), pub('n3', 3)];
  const first = planBlueprint(blueprint([net({ nodes: ['n1', 'n2', 'n3'] })]), inventory(defs), { random: seededRandom('a') });
  const second = planBlueprint(blueprint([net({ nodes: ['n1', 'n3'] })]), inventory(defs), { random: seededRandom('b'), previous: first });
  const after = byNode(second);
  assert.deepEqual([...after.keys()], ['n1', 'n3']);
  for (const r of after.values()) assert.ok(r.peers.every((p) => p.node !== 'n2'));
  assert.equal(after.get('n3')!.subnet, '10.1.2.0/24');
  assert.equal(after.get('n3')!.publicKey, byNode(first).get('n3')!.publicKey);
  // The freed subnet is the lowest free one for the next node.
  const third = planBlueprint(blueprint([net({ nodes: ['n1', 'n3', 'n5'] })]), inventory([...defs, pub('n5', 5)]), {
    random: seededRandom('c'),
    previous: second,
  });
  assert.equal(byNode(third).get('n5')!.subnet, '10.1.1.0/24');
});

test('a changed node identity key gets a fresh key pair sealed to the new identity; the port stays', () => {
  const first = planBlueprint(blueprint([net({ nodes: ['n1', 'n2'] })]), inventory([pub('n1', 1), pub('n2', 2)]), { random: seededRandom('a') });
  const inv = inventory([pub('n1', 1), pub('n2', 2)]);
  inv.nodes[1].publicKey = inventory([pub('other', 9)]).nodes[0].publicKey;
  const second = planBlueprint(blueprint([net({ nodes: ['n1', 'n2'] })]), inv, { random: seededRandom('b'), previous: first });
  const [a1, b1] = [byNode(first).get('n1')!, byNode(first).get('n2')!];
  const [a2, b2] = [byNode(second).get('n1')!, byNode(second).get('n2')!];
  assert.equal(a2.publicKey, a1.publicKey);
  assert.notEqual(b2.publicKey, b1.publicKey);
  assert.equal(b2.sealedTo, inv.nodes[1].publicKey);
  assert.deepEqual([b2.subnet, b2.listenPort], [b1.subnet, b1.listenPort]);
});

test('a hidden node keeps its access node while it stays; moves when it leaves', () => {
  const defs = [pub('n1', 1), pub('n2', 2), { id: 'h1' }, { id: 'h2' }, { id: 'h3' }];
  const bp = (nodes: string[]) => blueprint([net({ nodes })]);
  const first = planBlueprint(bp(['n1', 'n2', 'h1', 'h2', 'h3']), inventory(defs), { random: seededRandom('a') });
  const via = (p: Plan) => Object.fromEntries(p.networks[0].resources.filter((r) => r.hidden).map((r) => [r.node, r.accessNode]));
  assert.deepEqual(via(first), { h1: 'n1', h2: 'n2', h3: 'n1' });
  // A new public node does not pull hidden nodes over.
  const defs2 = [...defs, pub('n0', 7)];
  const second = planBlueprint(bp(['n0', 'n1', 'n2', 'h1', 'h2', 'h3']), inventory(defs2), { random: seededRandom('b'), previous: first });
  assert.deepEqual(via(second), { h1: 'n1', h2: 'n2', h3: 'n1' });
  // n1 leaves: its hidden nodes move to the least loaded remaining public nodes.
  const third = planBlueprint(bp(['n0', 'n2', 'h1', 'h2', 'h3']), inventory(defs2), { random: seededRandom('c'), previous: second });
  assert.deepEqual(via(third), { h1: 'n0', h2: 'n2', h3: 'n0' });
  assert.deepEqual(checkPlan(third, bp(['n0', 'n2', 'h1', 'h2', 'h3']), inventory(defs2)), []);
});

test('generated device keys and workload addresses survive re-planning', () => {
  const w = { name: 'web', node: 'n1', image: 'base', command: [], network: { name: 'net' }, cpu: 1, memory: 1 << 28, volumes: [] };
  const bp = blueprint([net({ nodes: ['n1'], access: [{ name: 'laptop' }] })], { workloads: [w] });
  const first = planBlueprint(bp, inventory([pub('n1', 1)]), { random: seededRandom('a') });
  const bp2 = blueprint([net({ nodes: ['n1'], access: [{ name: 'laptop' }] })], {
    version: 2,
    workloads: [{ ...w, name: 'api' }, w],
  });
  const second = planBlueprint(bp2, inventory([pub('n1', 1)]), { random: seededRandom('b'), previous: first });
  assert.deepEqual(second.networks[0].access, first.networks[0].access);
  assert.deepEqual(second.workloads, [
    { name: 'api', node: 'n1', network: 'net', ip: '10.1.0.3', ip6: 'fdc2:65b9:9864::3' },
    { name: 'web', node: 'n1', network: 'net', ip: '10.1.0.2', ip6: 'fdc2:65b9:9864::2' },
  ]);
});

test('a previous plan of another blueprint is refused', () => {
  const first = planBlueprint(blueprint([net({ nodes: ['n1'] })]), inventory([pub('n1', 1)]), { random: seededRandom('a') });
  assert.throws(
    () => planBlueprint(blueprint([net({ nodes: ['n1'] })], { name: 'other' }), inventory([pub('n1', 1)]), { random: seededRandom('a'), previous: first }),
    { code: 'E_PREVIOUS_MISMATCH' },
  );
});
