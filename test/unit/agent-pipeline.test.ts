// The provisioning pipeline against a fake data plane: what is accepted, what is refused (with code and path),
// and that a refusal changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childrenCpuMs } from '../../src/agent/agent.ts';
import { ValidationError } from '../../src/errors.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { agentBed, part, planFor, signed, tenantKeys } from '../helpers/agent-fixtures.ts';

const nodes = ['node-a', 'node-b'];
const bp1 = blueprint([net({ nodes })]);

async function rejects(p: Promise<unknown>, code: string, path?: string) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ValidationError, String(e));
    const hit = e.problems.find((x) => x.code === code);
    assert.ok(hit, `expected ${code}, got ${e.problems.map((x) => x.code).join(',')}`);
    if (path !== undefined) assert.equal(hit.path, path);
    return true;
  });
}

test('a valid signed blueprint is recorded, then applied', async () => {
  const bed = agentBed();
  try {
    const plan = planFor(bp1, nodes);
    const r = await bed.agent.submit(signed(bp1), part(plan, 'node-a'));
    assert.deepEqual([r.tenant, r.name, r.version, r.generation], ['acme', 'shop', 1, 1]);
    assert.equal(r.networks.length, 1);
    assert.ok(r.networks[0].ok);
    assert.equal(bed.driver.calls.length, 1);
    assert.equal(bed.driver.calls[0][0].resource.node, 'node-a');
    // The submission's own networks go first in the data plane (issue #16); a plain reconcile names none.
    assert.deepEqual(bed.driver.firsts, [part(plan, 'node-a').networks.map((n) => n.id)]);
    await bed.agent.reconcile('test');
    assert.deepEqual(bed.driver.firsts.at(-1), undefined);
    assert.equal(bed.state.blueprints().length, 1);
    assert.deepEqual(bed.state.events().map((e) => e.kind), ['blueprint.accepted', 'network.changed']);
  } finally {
    bed.close();
  }
});

test("a submission applies its own networks only; every network follows in one full reconcile soon after", async () => {
  const bed = agentBed();
  try {
    const other = blueprint([net({ nodes, ipRange: '10.9.0.0/16', name: 'other' })], { name: 'other' });
    const otherPlan = planFor(other, nodes);
    await bed.agent.submit(signed(other), part(otherPlan, 'node-a'));
    bed.agent.start();
    await new Promise((r) => setTimeout(r, 100)); // the start's reconcile
    const calls = bed.driver.calls.length;
    const inv = [{ id: 'node-a', endpoints: ['203.0.113.1'], reservedPorts: [51820] }, 'node-b'];
    const plan = planFor(bp1, inv);
    const own = part(plan, 'node-a').networks.map((n) => n.id);
    const r = await bed.agent.submit(signed(bp1), part(plan, 'node-a'));
    assert.ok(r.networks[0].ok);
    assert.equal(bed.driver.calls.length, calls + 1);
    assert.deepEqual([bed.driver.firsts.at(-1), bed.driver.onlyFirsts.at(-1)], [own, true]);
    assert.equal(bed.driver.calls.at(-1)!.length, 2, 'every desired network is passed (none is removed)');
    // A second submission within the follow-up delay does not push it back; one full reconcile follows.
    const v2 = { ...bp1, version: 2 };
    await bed.agent.submit(signed(v2), part(planFor(v2, inv, plan), 'node-a'));
    assert.equal(bed.driver.calls.length, calls + 2);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(bed.driver.calls.length, calls + 3, 'one follow-up');
    assert.deepEqual([bed.driver.firsts.at(-1), bed.driver.onlyFirsts.at(-1)], [undefined, false]);
    assert.equal(bed.agent.status().lastReconcile?.reason, 'after submit acme/shop');
    // A hostile tenant submitting every 100 ms for 2 s: the full reconciles still run (at most 250 ms apart).
    let prev = planFor(v2, inv, plan);
    const fullBefore = bed.driver.onlyFirsts.filter((x) => !x).length;
    for (let v = 3; v < 23; v++) {
      const bv = { ...bp1, version: v };
      prev = planFor(bv, inv, prev);
      await bed.agent.submit(signed(bv), part(prev, 'node-a'));
      await new Promise((r) => setTimeout(r, 100));
    }
    const full = bed.driver.onlyFirsts.filter((x) => !x).length - fullBefore;
    assert.ok(full >= 5, `${full} full reconciles during 20 submissions 100 ms apart`);
  } finally {
    await bed.agent.stop();
    bed.close();
  }
});

test('refusals: each has a code and path, and nothing changes', async () => {
  const bed = agentBed();
  try {
    const plan = planFor(bp1, nodes);
    await bed.agent.submit(signed(bp1), part(plan, 'node-a'));
    const before = JSON.stringify(bed.state.blueprints());
    const calls = bed.driver.calls.length;
    const bp2 = { ...bp1, version: 2 };
    const plan2 = planFor(bp2, nodes, plan);
    const good = part(plan2, 'node-a');

    // replay: same version again
    await rejects(bed.agent.submit(signed(bp1), part(plan, 'node-a')), 'E_REPLAY', 'version');
    // forged: blueprint changed after signing
    const forged = signed(bp2);
    forged.blueprint.networks[0].ipRange = '10.9.0.0/16';
    await rejects(bed.agent.submit(forged, good), 'E_SIGNATURE');
    // valid signature by another tenant's key
    await rejects(bed.agent.submit(signed(bp2, tenantKeys('globex')), good), 'E_TENANT_KEY', 'signature.publicKey');
    // a tenant this node does not trust
    const evil = blueprint([net({ nodes })], { tenant: 'evil', version: 1 });
    await rejects(bed.agent.submit(signed(evil), part(planFor(evil, nodes), 'node-a')), 'E_TENANT_UNTRUSTED', 'tenant');
    // another node's part
    await rejects(bed.agent.submit(signed(bp2), part(plan2, 'node-b')), 'E_PART_NODE', 'part.node');
    // tampered plan: subnet outside the range
    const outside = structuredClone(good);
    outside.networks[0].resource.subnet = '10.99.0.0/24';
    await rejects(bed.agent.submit(signed(bp2), outside), 'E_PART_SUBNET', 'part.networks[0].resource.subnet');
    // tampered plan: own subnet overlapping another node's
    const overlap = structuredClone(good);
    overlap.networks[0].subnets = ['10.1.0.0/24', '10.1.0.0/23'];
    await rejects(bed.agent.submit(signed(bp2), overlap), 'E_PART_OVERLAP', 'part.networks[0].subnets');
    // tampered plan: another node's sealed key
    const stolen = structuredClone(good);
    const other = part(plan2, 'node-b').networks[0].resource;
    stolen.networks[0].resource.sealedPrivateKey = other.sealedPrivateKey;
    await rejects(bed.agent.submit(signed(bp2), stolen), 'E_PART_KEY', 'part.networks[0].resource.sealedPrivateKey');
    // tampered plan: public key that does not belong to the sealed key
    const swapped = structuredClone(good);
    swapped.networks[0].resource.publicKey = other.publicKey;
    await rejects(bed.agent.submit(signed(bp2), swapped), 'E_PART_KEY', 'part.networks[0].resource.publicKey');
    // garbage part
    await rejects(bed.agent.submit(signed(bp2), { hello: 1 }), 'E_PART_FORMAT', 'part');

    assert.equal(JSON.stringify(bed.state.blueprints()), before, 'store unchanged');
    assert.equal(bed.driver.calls.length, calls, 'data plane untouched');
    assert.ok(bed.state.events().filter((e) => e.kind === 'blueprint.rejected').length >= 9);
    // and the valid update still goes through
    const r = await bed.agent.submit(signed(bp2), good);
    assert.equal(r.version, 2);
  } finally {
    bed.close();
  }
});

test('a listen port used by another blueprint on this node is refused', async () => {
  const bed = agentBed();
  try {
    await bed.agent.submit(signed(bp1), part(planFor(bp1, nodes), 'node-a'));
    const other = blueprint([net({ nodes, ipRange: '10.5.0.0/16' })], { tenant: 'globex', name: 'ops' });
    // planned without telling the planner about acme's port: both get 51820
    await rejects(bed.agent.submit(signed(other), part(planFor(other, nodes), 'node-a')), 'E_PORT_IN_USE', 'part.networks[0].resource.listenPort');
  } finally {
    bed.close();
  }
});

test('removing a blueprint tears its networks down; an old version cannot come back', async () => {
  const bed = agentBed();
  try {
    const plan = planFor(bp1, nodes);
    await bed.agent.submit(signed(bp1), part(plan, 'node-a'));
    await bed.agent.remove('acme', 'shop');
    assert.deepEqual(bed.driver.calls.at(-1), []);
    assert.equal(bed.state.blueprints().length, 0);
    await rejects(bed.agent.submit(signed(bp1), part(plan, 'node-a')), 'E_REPLAY');
    await assert.rejects(bed.agent.remove('acme', 'shop'), { code: 'E_NOT_FOUND' });
  } finally {
    bed.close();
  }
});

test('a failing data plane is reported, retried on the next reconcile, and the blueprint stays accepted', async () => {
  const bed = agentBed();
  try {
    bed.driver.failNext = 'wireguard-go did not start';
    const r = await bed.agent.submit(signed(bp1), part(planFor(bp1, nodes), 'node-a'));
    assert.equal(r.networks[0].ok, false);
    assert.match(r.networks[0].errors[0].message, /wireguard-go did not start/);
    assert.equal(bed.agent.status().errors.length, 1);
    const again = await bed.agent.reconcile('test');
    assert.ok(again.ok);
    assert.equal(bed.agent.networks()[0].applied, true);
  } finally {
    bed.close();
  }
});

test('concurrent submissions are serialized', async () => {
  const bed = agentBed();
  try {
    const a = blueprint([net({ nodes })]);
    const b = blueprint([net({ nodes, ipRange: '10.7.0.0/16' })], { tenant: 'globex', name: 'ops' });
    const pa = part(planFor(a, nodes), 'node-a');
    const pbPlan = planFor(b, [{ id: 'node-a', endpoints: ['203.0.113.1'], reservedPorts: [51820] }, 'node-b']);
    await Promise.all([bed.agent.submit(signed(a), pa), bed.agent.submit(signed(b), part(pbPlan, 'node-a')), bed.agent.reconcile('x')]);
    assert.equal(bed.state.blueprints().length, 2);
    assert.equal(bed.driver.calls.at(-1)!.length, 2);
  } finally {
    bed.close();
  }
});

test('each reconcile reports its cost: agent CPU, the CPU of the commands it waited for, commands by kind', async () => {
  const bed = agentBed();
  try {
    await bed.agent.submit(signed(bp1), part(planFor(bp1, nodes), 'node-a'));
    assert.deepEqual({ ...bed.agent.lastReconcile!.cost, agentCpuMs: 0, commandsCpuMs: 0 }, { agentCpuMs: 0, commandsCpuMs: 0, reads: 1, mutating: 1 });
    const noop = await bed.agent.reconcile('test');
    assert.equal(noop.changes, 0);
    assert.deepEqual([noop.cost!.reads, noop.cost!.mutating], [1, 0]);
    assert.ok(noop.cost!.agentCpuMs >= 0 && noop.cost!.commandsCpuMs! >= 0);
  } finally {
    bed.close();
  }
});

test('children CPU comes from cutime + cstime of /proc/self/stat, in ms (USER_HZ 100)', () => {
  // A comm with spaces and a ")" must not shift the fields.
  const stat = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 40 17 6 20 0 11 0 1234 1000 200';
  assert.equal(childrenCpuMs(() => stat), 230);
  assert.equal(childrenCpuMs(() => { throw new Error('no /proc'); }), null);
  assert.equal(childrenCpuMs(() => '1 (x) S'), null);
});
