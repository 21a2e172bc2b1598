// Property tests: over random inventories and blueprints, every plan satisfies every rule (checked by the
// independent checker), or the planner refuses with one of the documented codes; re-planning is stable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Blueprint } from '../../src/blueprint/types.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { ValidationError } from '../../src/errors.ts';
import { checkPlan, planBlueprint, type Inventory, type Plan } from '../../src/plan/index.ts';
import { blueprint, inventory, net, type NodeDef } from '../helpers/fixtures.ts';

const RUNS = Number(process.env.ZMESH_PROPERTY_RUNS ?? 150);

const nodeArb = (i: number) =>
  fc.record({
    hidden: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
    v6: fc.boolean(),
    reserved: fc.subarray([51820, 51821, 51822, 51825], { maxLength: 3 }),
  }).map(({ hidden, v6, reserved }): NodeDef => ({
    id: `node-${i}`,
    endpoints: hidden ? [] : [v6 ? `2001:db8::${i + 1}` : `198.51.100.${i + 1}`],
    reservedPorts: reserved,
  }));

const scenarioArb = fc.integer({ min: 1, max: 14 }).chain((n) =>
  fc.record({
    nodes: fc.tuple(...Array.from({ length: n }, (_, i) => nodeArb(i))),
    networks: fc.array(
      fc.record({
        prefix: fc.integer({ min: 18, max: 22 }),
        sub: fc.integer({ min: 23, max: 28 }),
        members: fc.subarray(Array.from({ length: n }, (_, i) => `node-${i}`), { minLength: 1 }),
        devices: fc.integer({ min: 0, max: 3 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    seed: fc.string(),
  }),
);

type Scenario = {
  nodes: NodeDef[];
  networks: { prefix: number; sub: number; members: string[]; devices: number }[];
  seed: string;
};

function build(s: Scenario): { bp: Blueprint; inv: Inventory } {
  const bp = blueprint(
    s.networks.map((x, i) =>
      net({
        name: `net-${i}`,
        ipRange: `10.${i * 4}.0.0/${x.prefix}`,
        subnetPrefix: x.sub,
        nodes: x.members,
        access: Array.from({ length: x.devices }, (_, d) => ({ name: `dev-${d}` })),
      }),
    ),
  );
  return { bp, inv: inventory(s.nodes) };
}

const ALLOWED_REFUSALS = new Set(['E_NO_PUBLIC_NODE', 'E_RANGE_EXHAUSTED']);

function planOrRefuse(bp: Blueprint, inv: Inventory, seed: string, previous?: Plan): Plan | null {
  try {
    return planBlueprint(bp, inv, { random: seededRandom(seed), previous });
  } catch (e) {
    assert.ok(e instanceof ValidationError, `unexpected ${e}`);
    for (const p of e.problems) assert.ok(ALLOWED_REFUSALS.has(p.code), `unexpected refusal ${p.code} ${p.message}`);
    return null;
  }
}

test('every plan satisfies every rule, deterministically', () => {
  let planned = 0;
  fc.assert(
    fc.property(scenarioArb, (s) => {
      const { bp, inv } = build(s as Scenario);
      const plan = planOrRefuse(bp, inv, s.seed);
      if (!plan) return;
      planned++;
      assert.deepEqual(checkPlan(plan, bp, inv), []);
      const again = planBlueprint(bp, inv, { random: seededRandom(s.seed) });
      assert.equal(JSON.stringify(again), JSON.stringify(plan));
    }),
    { numRuns: RUNS },
  );
  // Most scenarios must produce a plan, or the property says little.
  assert.ok(planned > RUNS / 2, `only ${planned} of ${RUNS} scenarios produced a plan`);
});

test('re-planning after random membership changes is valid and keeps what stays', () => {
  fc.assert(
    fc.property(scenarioArb, fc.array(fc.boolean(), { minLength: 14, maxLength: 14 }), (s, keep) => {
      const sc = s as Scenario;
      const { bp, inv } = build(sc);
      const first = planOrRefuse(bp, inv, sc.seed);
      if (!first) return;
      // Drop some members, add a new public node to every network.
      const extra: NodeDef = { id: 'node-new', endpoints: ['203.0.113.200'] };
      const sc2: Scenario = {
        nodes: [...sc.nodes, extra],
        networks: sc.networks.map((x) => ({ ...x, members: [...x.members.filter((_, i) => keep[i % keep.length]), 'node-new'] })),
        seed: sc.seed + '2',
      };
      const { bp: bp2, inv: inv2 } = build(sc2);
      const second = planOrRefuse(bp2, inv2, sc2.seed, first);
      if (!second) return;
      assert.deepEqual(checkPlan(second, bp2, inv2), []);
      for (const n2 of second.networks) {
        const n1: Plan['networks'][number] = first.networks.find((n) => n.name === n2.name)!;
        for (const r2 of n2.resources) {
          const r1 = n1.resources.find((r: { node: string }) => r.node === r2.node);
          if (!r1) continue;
          assert.deepEqual([r2.subnet, r2.listenPort, r2.publicKey, r2.sealedPrivateKey], [r1.subnet, r1.listenPort, r1.publicKey, r1.sealedPrivateKey]);
          if (r1.accessNode && n2.resources.some((r) => r.node === r1.accessNode)) assert.equal(r2.accessNode, r1.accessNode);
        }
        for (const d2 of n2.access) {
          const d1 = n1.access.find((d: { name: string }) => d.name === d2.name)!;
          assert.deepEqual([d2.subnet, d2.publicKey], [d1.subnet, d1.publicKey]);
        }
      }
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
});
