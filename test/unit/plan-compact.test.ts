// The compact plan (issue #17): expand(compact) is the planner's full form byte for byte (golden cases recorded
// before the compact form existed), parts cut from the compact plan equal parts cut from the expanded one,
// re-planning from an old full plan keeps every subnet, port and key, the derived mesh satisfies every peer
// rule of the independent checker, JSON is written in pieces equal to JSON.stringify, and `diffPlans` says
// what changes per node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import type { Blueprint } from '../../src/blueprint/types.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { ValidationError } from '../../src/errors.ts';
import {
  checkPlan,
  compactPlan,
  diffPlans,
  expandPlan,
  formatDiff,
  jsonChunks,
  networkMesh,
  nodePart,
  planBlueprint,
  planCompact,
  planNodes,
  type CompactPlan,
  type CompactResource,
  type Inventory,
  type Plan,
} from '../../src/plan/index.ts';
import { planPartEntries } from '../../src/control/entries.ts';
import { memberPeerCount, memberPeers } from '../../topology/mesh.ts';
import { GOLDEN, goldenPath } from '../helpers/plan-golden.ts';
import { blueprint, inventory, net, type NodeDef } from '../helpers/fixtures.ts';

const RUNS = Number(process.env.ZMESH_PROPERTY_RUNS ?? 100);
const golden = (name: string) => readFileSync(goldenPath(name), 'utf8');

test('golden: expand(compact) is byte for byte the full plan the planner wrote before the compact form', () => {
  for (const c of GOLDEN) {
    // The previous plan of a re-plan is the recorded full (old-format) plan.
    const previous = c.previous ? (JSON.parse(golden(c.previous)) as Plan) : undefined;
    const compact = planCompact(c.bp, c.inv, { random: seededRandom(c.seed), previous });
    assert.equal(compact.format, 'zmesh-plan/2');
    assert.equal(JSON.stringify(expandPlan(compact), null, 2) + '\n', golden(c.name), c.name);
    assert.equal([...jsonChunks(expandPlan(compact), 2)].join('') + '\n', golden(c.name), `${c.name}: written in pieces`);
    assert.deepEqual(checkPlan(compact, c.bp, c.inv), [], c.name);
    assert.deepEqual(checkPlan(expandPlan(compact), c.bp, c.inv), [], `${c.name} expanded`);
  }
});

test('golden: the compact plan holds no peers and is a fraction of the full one; compactPlan(full) gives it back', () => {
  for (const c of GOLDEN) {
    const previous = c.previous ? (JSON.parse(golden(c.previous)) as Plan) : undefined;
    const compact = planCompact(c.bp, c.inv, { random: seededRandom(c.seed), previous });
    const text = JSON.stringify(compact);
    assert.ok(!text.includes('"peers"'), c.name);
    assert.ok(text.length < JSON.stringify(JSON.parse(golden(c.name))).length, c.name);
    assert.deepEqual(compactPlan(JSON.parse(golden(c.name)) as Plan), compact, `${c.name}: compactPlan(full) = compact`);
  }
});

test('re-planning from an old full plan and from its compact form gives the same plan: every subnet, port and key kept', () => {
  const c = GOLDEN.find((g) => g.name === 'mixed-replanned')!;
  const oldFull = JSON.parse(golden('mixed')) as Plan;
  const fromFull = planCompact(c.bp, c.inv, { random: seededRandom('x'), previous: oldFull });
  const fromCompact = planCompact(c.bp, c.inv, { random: seededRandom('x'), previous: compactPlan(oldFull) });
  assert.deepEqual(fromFull, fromCompact);
  for (const n of oldFull.networks) {
    const now = fromFull.networks.find((x) => x.name === n.name)!;
    for (const r of n.resources) {
      const r2 = now.resources.find((x) => x.node === r.node);
      if (!r2) continue;
      assert.deepEqual([r2.subnet, r2.listenPort, r2.publicKey, r2.sealedPrivateKey, r2.sealedTo], [r.subnet, r.listenPort, r.publicKey, r.sealedPrivateKey, r.sealedTo], r.node);
    }
    for (const d of n.access) assert.equal(now.access.find((x) => x.name === d.name)?.publicKey, d.publicKey, d.name);
  }
  assert.equal(fromFull.generation, oldFull.generation + 1);
});

// ---- properties over random inventories and blueprints -----------------------------------------------------

const nodeArb = (i: number) =>
  fc.record({ hidden: fc.integer({ min: 0, max: 3 }).map((x) => x === 0), v6: fc.boolean(), reserved: fc.subarray([51820, 51821], { maxLength: 2 }) }).map(
    ({ hidden, v6, reserved }): NodeDef => ({ id: `node-${i}`, endpoints: hidden ? [] : [v6 ? `2001:db8::${i + 1}` : `198.51.100.${i + 1}`], reservedPorts: reserved }),
  );
const scenarioArb = fc.integer({ min: 1, max: 12 }).chain((n) =>
  fc.record({
    nodes: fc.tuple(...Array.from({ length: n }, (_, i) => nodeArb(i))),
    networks: fc.array(
      fc.record({ sub: fc.integer({ min: 22, max: 26 }), members: fc.subarray(Array.from({ length: n }, (_, i) => `node-${i}`), { minLength: 1 }), devices: fc.integer({ min: 0, max: 3 }) }),
      { minLength: 1, maxLength: 2 },
    ),
    seed: fc.string(),
    keep: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
  }),
);
type Scenario = { nodes: NodeDef[]; networks: { sub: number; members: string[]; devices: number }[]; seed: string; keep: boolean[] };

function build(s: Scenario, version = 1): { bp: Blueprint; inv: Inventory } {
  const bp = blueprint(
    s.networks.map((x, i) => net({ name: `net-${i}`, ipRange: `10.${i * 4}.0.0/18`, subnetPrefix: x.sub, nodes: x.members, access: Array.from({ length: x.devices }, (_, d) => ({ name: `dev-${d}` })) })),
    { version },
  );
  return { bp, inv: inventory(s.nodes) };
}

function planOrNull(bp: Blueprint, inv: Inventory, seed: string, previous?: Plan | CompactPlan): CompactPlan | null {
  try {
    return planCompact(bp, inv, { random: seededRandom(seed), previous });
  } catch (e) {
    assert.ok(e instanceof ValidationError, String(e));
    for (const p of e.problems) assert.ok(['E_NO_PUBLIC_NODE', 'E_RANGE_EXHAUSTED'].includes(p.code), p.code);
    return null;
  }
}

test('property: the derived mesh satisfies every rule; parts from the compact plan = parts from the expanded one', () => {
  fc.assert(
    fc.property(scenarioArb, (raw) => {
      const s = raw as Scenario;
      const { bp, inv } = build(s);
      const compact = planOrNull(bp, inv, s.seed);
      if (!compact) return;
      const full = expandPlan(compact);
      assert.deepEqual(full, planBlueprint(bp, inv, { random: seededRandom(s.seed) }));
      assert.deepEqual(checkPlan(compact, bp, inv), []);
      assert.deepEqual(checkPlan(full, bp, inv), [], 'the derivation meets the independent peer rules');
      // A public node nobody peers with (the only one) has its endpoint from the inventory.
      const eps = new Map(inv.nodes.map((x) => [x.id, x.endpoints[0]]));
      assert.deepEqual(compactPlan(full, (node, port) => (eps.get(node)?.includes(':') ? `[${eps.get(node)}]:${port}` : `${eps.get(node)}:${port}`)), compact);
      for (const node of planNodes(compact)) assert.deepEqual(nodePart(compact, node), nodePart(full, node), node);
      assert.deepEqual(planPartEntries(compact, 'ENV'), planPartEntries(full, 'ENV'));
      for (const n of compact.networks) {
        const ix = networkMesh(n, compact.hiddenKeepalive);
        for (const r of n.resources) assert.equal(memberPeerCount(ix, r.node), memberPeers(ix, r.node).length);
      }
    }),
    { numRuns: RUNS },
  );
});

test('property: re-planning from the old full form or the compact form is the same; what stays keeps subnet, port and key', () => {
  fc.assert(
    fc.property(scenarioArb, (raw) => {
      const s = raw as Scenario;
      const { bp, inv } = build(s);
      const first = planOrNull(bp, inv, s.seed);
      if (!first) return;
      const s2: Scenario = { ...s, nodes: [...s.nodes, { id: 'node-new', endpoints: ['203.0.113.200'] }], networks: s.networks.map((x) => ({ ...x, members: [...x.members.filter((_, i) => s.keep[i % 12]), 'node-new'] })) };
      const { bp: bp2, inv: inv2 } = build(s2, 2);
      const a = planOrNull(bp2, inv2, 'again', expandPlan(first));
      const b = planOrNull(bp2, inv2, 'again', first);
      assert.deepEqual(a, b);
      if (!a) return;
      assert.deepEqual(checkPlan(a, bp2, inv2), []);
      for (const n of a.networks) {
        const was: CompactPlan['networks'][number] = first.networks.find((x) => x.name === n.name)!;
        for (const r of n.resources) {
          const r1: CompactResource | undefined = was.resources.find((x) => x.node === r.node);
          if (r1) assert.deepEqual([r.subnet, r.listenPort, r.publicKey], [r1.subnet, r1.listenPort, r1.publicKey]);
        }
      }
      // The diff of a plan against itself is empty; against the first, every kept public node gains node-new.
      assert.deepEqual(diffPlans(a, a).changes, []);
      const d = diffPlans(first, a);
      assert.ok(d.changes.some((c) => c.name === 'node-new' && c.op === '+'));
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
});

test('property: JSON in pieces is JSON.stringify, pretty and compact, at any depth', () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.constantFrom(0, 2), fc.integer({ min: 0, max: 5 }), (v, indent, depth) => {
      assert.equal([...jsonChunks(v, indent, depth)].join(''), JSON.stringify(v, null, indent));
    }),
    { numRuns: RUNS * 5 },
  );
});

// ---- diff ------------------------------------------------------------------------------------------------

test('diff: a public node, a hidden node and a device join, a public node leaves, terraform-style', () => {
  const defs: NodeDef[] = [
    { id: 'pa', endpoints: ['203.0.113.1'] },
    { id: 'pb', endpoints: ['203.0.113.2'] },
    { id: 'pc', endpoints: ['203.0.113.3'] },
    { id: 'h1' },
  ];
  const v1 = blueprint([net({ nodes: ['pa', 'pb', 'pc', 'h1'] })]);
  const first = planCompact(v1, inventory(defs), { random: seededRandom('d1') });
  const v2 = blueprint([net({ nodes: ['pa', 'pb', 'h1', 'pd', 'h2'], access: [{ name: 'laptop' }] })], { version: 2 });
  const inv2 = inventory([...defs, { id: 'pd', endpoints: ['203.0.113.4'] }, { id: 'h2' }]);
  const second = planCompact(v2, inv2, { random: seededRandom('d2'), previous: first });
  const text = formatDiff(diffPlans(first, second));
  const sub = (p: CompactPlan, node: string) => p.networks[0].resources.find((r) => r.node === node)!.subnet;
  assert.match(text, /^plan acme\/shop: version 1 → 2, generation 1 → 2\n\nnetwork net\n/);
  assert.match(text, new RegExp(`  \\+ node pd: public at 203\\.0\\.113\\.4:51820, subnet ${sub(second, 'pd').replace(/\./g, '\\.')}, port 51820, \\d+ peers\n`));
  assert.match(text, / {2}- node pc\n/);
  assert.match(text, / {2}~ node pa\n( {6}.*\n)* {6}\+ peer pd {2}/);
  assert.match(text, / {6}- peer pc\n/);
  assert.match(text, / {2}\+ device laptop: subnet \S+, via p[abd]\n/);
  assert.match(text, /\nPlan: 3 to add, \d+ to change, 1 to destroy\.\n$/);
  // A hidden node whose access node left moves: its relay changes.
  const h1Before = first.networks[0].resources.find((r) => r.node === 'h1')!.accessNode;
  const h1After = second.networks[0].resources.find((r) => r.node === 'h1')!.accessNode;
  if (h1Before !== h1After) assert.match(text, new RegExp(`~ access node ${h1Before} → ${h1After}`));
  assert.equal(formatDiff(diffPlans(second, second)).split('\n').slice(-2)[0], 'No changes.');
});
