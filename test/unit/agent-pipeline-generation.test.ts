// The version rule with plan generations: the version already accepted, with the very same blueprint and a
// higher plan generation, is a plan-only update (a re-plan after a membership change); a lower or equal
// generation is stale; the same version with other content, or after a removal, stays a replay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.ts';
import type { Blueprint } from '../../src/blueprint/types.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed } from '../helpers/agent-fixtures.ts';

const all = ['node-a', 'node-b', 'node-c'];
const bp = blueprint([net({ nodes: all })]);
/** What a controller plans while only some of the blueprint's nodes are members. */
const over = (b: Blueprint, nodes: string[]): Blueprint => ({ ...b, networks: b.networks.map((n) => ({ ...n, nodes: n.nodes.filter((x) => nodes.includes(x)) })) });

async function refused(p: Promise<unknown>, re: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ValidationError, String(e));
    assert.equal(e.problems[0].code, 'E_REPLAY');
    assert.equal(e.problems[0].path, 'version');
    assert.match(e.problems[0].message, re);
    return true;
  });
}

test('same version, higher generation: accepted as an update of the plan only', async () => {
  const bed = agentBed();
  try {
    const g1 = planFor(over(bp, ['node-a', 'node-b']), ['node-a', 'node-b']);
    const g2 = planFor(bp, all, g1);
    assert.deepEqual([g1.generation, g2.generation, g2.version], [1, 2, 1]);
    await bed.agent.submit(signed(bp), part(g1, 'node-a'));
    assert.equal(bed.agent.networks()[0].peers, 1);
    const r = await bed.agent.submit(signed(bp), part(g2, 'node-a'));
    assert.deepEqual([r.version, r.generation], [1, 2]);
    assert.equal(bed.agent.networks()[0].peers, 2, 'node-c joined');
    assert.equal(bed.state.blueprint('acme', 'shop')!.generation, 2);
    assert.equal(bed.driver.calls.length, 2);
  } finally {
    bed.close();
  }
});

test('same version, lower or equal generation: refused as stale, nothing changes', async () => {
  const bed = agentBed();
  try {
    const g1 = planFor(over(bp, ['node-a', 'node-b']), ['node-a', 'node-b']);
    const g2 = planFor(bp, all, g1);
    await bed.agent.submit(signed(bp), part(g2, 'node-a'));
    const before = JSON.stringify(bed.state.blueprints());
    await refused(bed.agent.submit(signed(bp), part(g1, 'node-a')), /generation 1 is stale: generation 2/);
    await refused(bed.agent.submit(signed(bp), part(g2, 'node-a')), /generation 2 is stale/);
    assert.equal(JSON.stringify(bed.state.blueprints()), before);
    assert.equal(bed.driver.calls.length, 1);
  } finally {
    bed.close();
  }
});

test('same version with other content is a replay whatever the generation', async () => {
  const bed = agentBed();
  try {
    const g1 = planFor(bp, all);
    await bed.agent.submit(signed(bp), part(g1, 'node-a'));
    const other = blueprint([net({ nodes: all, egress: true })]);
    const p = { ...part(planFor(other, all, g1), 'node-a'), generation: 9 };
    await refused(bed.agent.submit(signed(other), p), /version 1 is not newer than version 1/);
  } finally {
    bed.close();
  }
});

test('after a removal the same version stays refused, even with a higher generation; a new version goes in', async () => {
  const bed = agentBed();
  try {
    const g1 = planFor(bp, all);
    await bed.agent.submit(signed(bp), part(g1, 'node-a'));
    await bed.agent.remove('acme', 'shop');
    const g2 = planFor(bp, all, g1);
    await refused(bed.agent.submit(signed(bp), part(g2, 'node-a')), /not newer/);
    const v2 = { ...bp, version: 2 };
    const r = await bed.agent.submit(signed(v2), part(planFor(v2, all, g2), 'node-a'));
    assert.deepEqual([r.version, r.generation], [2, 3]);
  } finally {
    bed.close();
  }
});

test('an older version is a replay even with a higher generation', async () => {
  const bed = agentBed();
  try {
    const v2 = { ...bp, version: 2 };
    const g1 = planFor(v2, all);
    await bed.agent.submit(signed(v2), part(g1, 'node-a'));
    const old = { ...part(planFor(bp, all, g1), 'node-a'), generation: 5 };
    await refused(bed.agent.submit(signed(bp), old), /version 1 is not newer than version 2/);
  } finally {
    bed.close();
  }
});
