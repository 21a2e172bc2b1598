// Membership, grace and hold-down with an injected clock; re-homing hidden nodes when their access node is
// held; no flapping when it returns; rebalancing only on request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/crypto/rng.ts';
import { planBlueprint, type Plan } from '../../src/plan/index.ts';
import { decideMembership, rebalanceRelease, releaseAccess, type MemberRecord, type Registration } from '../../src/control/index.ts';
import { blueprint, inventory, net } from '../helpers/fixtures.ts';

const hd = { graceMs: 5000, holdDownMs: 60000 };
const inv = inventory([
  { id: 'p1', endpoints: ['203.0.113.1'] },
  { id: 'p2', endpoints: ['203.0.113.2'] },
  { id: 'p3', endpoints: ['203.0.113.3'] },
  { id: 'h1' },
  { id: 'h2' },
  { id: 'h3' },
]);
const reg = (id: string): Registration => {
  const n = inv.nodes.find((x) => x.id === id)!;
  return { id, publicKey: n.publicKey, endpoints: n.endpoints, reservedPorts: [] };
};
const regs = (...ids: string[]) => new Map(ids.map((id) => [id, reg(id)]));

test('states by the clock: live → grace → held → dropped; nextAt says when to look again', () => {
  let d = decideMembership(new Map(), regs('p1', 'p2'), 1000, hd);
  assert.deepEqual(Object.fromEntries(d.states), { p1: 'live', p2: 'live' });
  assert.equal(d.nextAt, null);
  d = decideMembership(d.members, regs('p1'), 2000, hd);
  assert.equal(d.states.get('p2'), 'grace');
  assert.equal(d.members.get('p2')!.since, 2000);
  assert.equal(d.nextAt, 7000);
  assert.deepEqual(d.inventory.find((n) => n.id === 'p2')!.endpoints, ['203.0.113.2'], 'grace: planned as registered');
  assert.ok(d.reachable.has('p2'));
  d = decideMembership(d.members, regs('p1'), 7000, hd);
  assert.equal(d.states.get('p2'), 'held');
  assert.deepEqual(d.inventory.find((n) => n.id === 'p2')!.endpoints, [], 'held: planned hidden');
  assert.ok(!d.reachable.has('p2'), 'nobody writes to a held node');
  assert.equal(d.nextAt, 62000);
  const m = d.members;
  d = decideMembership(m, regs('p1'), 62000, hd);
  assert.equal(d.states.has('p2'), false, 'dropped');
  assert.equal(d.members.has('p2'), false);
  // Back within the hold-down: live at once.
  d = decideMembership(m, regs('p1', 'p2'), 30000, hd);
  assert.equal(d.states.get('p2'), 'live');
  assert.equal(d.members.get('p2')!.since, 30000);
});

test('records are reused while nothing changes; a new endpoint is taken', () => {
  const d1 = decideMembership(new Map(), regs('p1'), 1, hd);
  const d2 = decideMembership(d1.members, regs('p1'), 99, hd);
  assert.equal(d2.members.get('p1'), d1.members.get('p1'));
  const moved = regs('p1');
  moved.get('p1')!.endpoints = ['198.51.100.9'];
  const d3 = decideMembership(d2.members, moved, 100, hd);
  assert.deepEqual(d3.members.get('p1')!.endpoints, ['198.51.100.9']);
  assert.equal(d3.members.get('p1')!.since, 1, 'still live since the start');
});

test('a restarted controller counts a member without registration as down from now', () => {
  const rec: MemberRecord = { ...reg('p1'), live: true, since: 0 };
  const d = decideMembership(new Map([['p1', rec]]), new Map(), 50000, hd);
  assert.equal(d.members.get('p1')!.since, 50000);
  assert.equal(d.states.get('p1'), 'grace');
});

const bp = blueprint([net({ nodes: ['p1', 'p2', 'p3', 'h1', 'h2', 'h3'] })]);
const plan = (d: ReturnType<typeof decideMembership>, previous?: Plan) => planBlueprint(bp, { nodes: d.inventory }, { random: seededRandom('m'), previous });
const access = (p: Plan) => Object.fromEntries(p.networks[0].resources.filter((r) => r.hidden && r.node.startsWith('h')).map((r) => [r.node, r.accessNode]));

test('an access node held: its hidden nodes move to live public nodes; it keeps subnet, port and keys; back: no flapping', () => {
  const all = regs('p1', 'p2', 'p3', 'h1', 'h2', 'h3');
  const d0 = decideMembership(new Map(), all, 0, hd);
  const p0 = plan(d0);
  assert.deepEqual(access(p0), { h1: 'p1', h2: 'p2', h3: 'p3' });
  const without = regs('p2', 'p3', 'h1', 'h2', 'h3');
  const d1 = decideMembership(d0.members, without, 1000, hd);
  const p1 = plan(d1, p0);
  assert.equal(p1.generation, p0.generation + 1);
  assert.deepEqual(access(p1), { h1: 'p1', h2: 'p2', h3: 'p3' }, 'grace: nothing moves yet');
  const d2 = decideMembership(d1.members, without, 7000, hd);
  const p2 = plan(d2, p1);
  const a2 = access(p2);
  assert.ok(a2.h1 === 'p2' || a2.h1 === 'p3', `h1 re-homed to ${a2.h1}`);
  assert.equal(a2.h2, 'p2');
  assert.equal(a2.h3, 'p3');
  const held = p2.networks[0].resources.find((r) => r.node === 'p1')!;
  const was = p0.networks[0].resources.find((r) => r.node === 'p1')!;
  assert.deepEqual([held.subnet, held.listenPort, held.publicKey, held.hidden], [was.subnet, was.listenPort, was.publicKey, true]);
  // p1 comes back: public again with the same resource; h1 stays where it went.
  const d3 = decideMembership(d2.members, all, 20000, hd);
  const p3 = plan(d3, p2);
  const back = p3.networks[0].resources.find((r) => r.node === 'p1')!;
  assert.deepEqual([back.subnet, back.listenPort, back.publicKey, back.hidden], [was.subnet, was.listenPort, was.publicKey, false]);
  assert.deepEqual(access(p3), a2, 'no flapping');
  // Only a rebalance moves one back to the idle p1.
  const rel = rebalanceRelease(p3, new Set(['p1', 'p2', 'p3']));
  assert.deepEqual([...(rel.get('net') ?? [])].length, 1);
  const p4 = plan(d3, releaseAccess(p3, rel));
  const loads = Object.values(access(p4)).sort();
  assert.deepEqual(loads, ['p1', 'p2', 'p3']);
});

test('rebalance moves nothing when the load is even', () => {
  const d = decideMembership(new Map(), regs('p1', 'p2', 'p3', 'h1', 'h2', 'h3'), 0, hd);
  assert.equal(rebalanceRelease(plan(d), new Set(['p1', 'p2', 'p3'])).size, 0);
});
