// The controller round's decisions as a pure function (src/control/round.ts): exact operations for a first
// round, nothing at all for a second round over what the first wrote, and what a refused or removed blueprint
// does. The Controller's own tests (integration, real etcd) cover the writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/crypto/rng.ts';
import { planEntries, type Entries } from '../../src/control/entries.ts';
import { Keys } from '../../src/control/keys.ts';
import type { Registration } from '../../src/control/membership.ts';
import { nextEpoch } from '../../src/control/directory.ts';
import { planRound, planRoundSliced, type RoundInput, type RoundPlan } from '../../src/control/round.ts';
import { blueprint, identity, net } from '../helpers/fixtures.ts';
import { signed, tenantKeys } from '../helpers/agent-fixtures.ts';

const k = new Keys('/t');
const reg = (id: string, endpoints: string[]): Registration => ({ id, publicKey: identity(id).publicKey.toString(), endpoints, reservedPorts: [] });
const registrations = new Map([
  ['a', reg('a', ['203.0.113.1'])],
  ['b', reg('b', ['203.0.113.2'])],
  ['c', reg('c', [])],
]);
const bp = blueprint([net({ nodes: ['a', 'b', 'c'] })]);
const envelope = signed(bp);

function input(over: Partial<RoundInput> = {}): RoundInput {
  return {
    keys: k,
    now: 1_000_000,
    hd: { graceMs: 5000, holdDownMs: 900_000 },
    random: seededRandom('round-test'),
    rebalance: false,
    registrations,
    members: new Map(),
    storedMembers: new Map(),
    tenants: new Map([['acme', tenantKeys('acme').publicKey.toString()]]),
    submitted: new Map([['acme/shop', envelope]]),
    planMirror: new Map(),
    partMirror: new Map(),
    envelopes: new Set(),
    directoryMirror: new Map(),
    rosterMirror: new Map(),
    enrolled: new Set(['a', 'b', 'c']),
    signingKey: null,
    ...over,
  };
}

/** What the controller's mirrors hold after writing a round's operations. */
function after(p: RoundPlan, prev: RoundInput): RoundInput {
  const planMirror = new Map<string, Entries>();
  for (const [id, c] of p.current) planMirror.set(id, planEntries(c.plan, c.envelope));
  const partMirror = new Map<string, Entries>();
  for (const [pid, e] of p.desired) if (e) partMirror.set(pid, e);
  const envelopes = new Set([...prev.envelopes, ...p.envelopeOps.map((o) => o.key)]);
  for (const o of p.staleEnvelopes) envelopes.delete(o.key);
  const directoryMirror = new Map([...p.directories].map(([net, d]) => [net, [d]]));
  const rosterMirror = new Map([...p.rosters].map(([net, d]) => [net, [d]]));
  return { ...prev, members: p.dec.members, storedMembers: p.dec.members, planMirror, partMirror, envelopes, directoryMirror, rosterMirror, random: seededRandom('round-test-2') };
}

test('a first round: member records, one plan, one part per node, the envelope and its grants', () => {
  const p = planRound(input());
  assert.deepEqual(p.warnings, []);
  assert.deepEqual(p.statuses, { 'acme/shop': { version: 1, generation: 1, problems: [] } });
  assert.deepEqual(p.replanned, ['acme/shop']);
  assert.deepEqual(
    p.memberOps.map((o) => [o.type, o.key]),
    [
      ['put', '/t/members/a'],
      ['put', '/t/members/b'],
      ['put', '/t/members/c'],
    ],
  );
  assert.equal(p.planOps.length, 1);
  assert.ok(p.planOps[0].every((o) => o.type === 'put' && o.key.startsWith('/t/plans/acme/shop/')));
  const env = k.envelopeAt('acme', 'shop', 1);
  assert.deepEqual(p.envelopeOps, [{ type: 'put', key: env, value: JSON.stringify(envelope) }]);
  // One group per node, sorted; each only puts under that node's own part prefix.
  assert.equal(p.partGroups.length, 3);
  p.partGroups.forEach((g, i) => {
    const prefix = k.part({ node: ['a', 'b', 'c'][i], tenant: 'acme', blueprint: 'shop' });
    assert.ok(g.length > 0 && g.every((o) => o.type === 'put' && o.key.startsWith(prefix)), `group ${i}`);
  });
  // The hidden node c also reads its network's candidate table (direct paths); the public ones do not.
  // And its network's direct-peer directory (epoch chained from none and the members).
  const netId = p.current.get('acme/shop')!.plan.networks[0].id;
  // Exactly this epoch's keys: never the network's whole prefix (a watch on it would outlive a member's leave).
  const epoch = nextEpoch(netId, '', ['c']);
  const dir = k.directoryPrefix(netId, epoch);
  // Every member reads its network's roster (this epoch's: chained from none and all members).
  const rosterEpoch = nextEpoch(netId, '', ['a', 'b', 'c'], 'roster');
  assert.notEqual(rosterEpoch, nextEpoch(netId, '', ['a', 'b', 'c']), 'a roster epoch is never a directory epoch');
  const roster = k.rosterPrefix(netId, rosterEpoch);
  assert.deepEqual([...p.wantGrants].map(([n, s]) => [n, [...s]]), [
    ['a', [env, roster]],
    ['b', [env, roster]],
    ['c', [env, roster, k.candidatePointer(netId), k.candidateTable(netId, epoch), dir]],
  ]);
  assert.deepEqual(p.directoryPuts.map((o) => o.key), [`${dir}c`, `${roster}a`, `${roster}b`, `${roster}c`]);
  assert.deepEqual(p.directoryDeletes, []);
  assert.deepEqual(p.hiddenMembers, new Map([[p.current.get('acme/shop')!.plan.networks[0].id, new Set(['c'])]]));
  assert.deepEqual(p.staleEnvelopes, []);
  // The hidden node is planned behind a public one.
  const c = p.current.get('acme/shop')!.plan.networks[0].resources.find((r) => r.node === 'c')!;
  assert.equal(c.hidden, true);
  assert.ok(c.accessNode === 'a' || c.accessNode === 'b');
});

test('the same inputs give the same decisions (pure), and a second round over what the first wrote writes nothing', () => {
  const first = planRound(input());
  const again = planRound(input());
  assert.deepEqual(again.planOps, first.planOps);
  assert.deepEqual(again.partGroups, first.partGroups);
  const second = planRound(after(first, input()));
  assert.deepEqual(second.memberOps, []);
  assert.deepEqual(second.planOps, []);
  assert.deepEqual(second.envelopeOps, []);
  assert.deepEqual(second.partGroups, []);
  assert.deepEqual(second.staleEnvelopes, []);
  assert.deepEqual(second.replanned, []);
  assert.deepEqual(second.statuses, { 'acme/shop': { version: 1, generation: 1, problems: [] } });
});

test('a blueprint of an unregistered tenant is refused with its code and plans nothing', () => {
  const p = planRound(input({ tenants: new Map() }));
  assert.deepEqual(p.statuses['acme/shop'].problems.map((x) => x.code), ['E_TENANT_UNTRUSTED']);
  assert.deepEqual(p.planOps, []);
  assert.deepEqual(p.partGroups, []);
  assert.deepEqual(p.envelopeOps, []);
});

test('a removed blueprint: its plan, every part and the envelope copy are deleted', () => {
  const first = planRound(input());
  const was = after(first, input());
  const p = planRound({ ...was, submitted: new Map() });
  assert.deepEqual(p.replanned, []);
  assert.deepEqual([...p.removed], ['acme/shop']);
  assert.equal(p.planOps.length, 1);
  assert.ok(p.planOps[0].length > 0 && p.planOps[0].every((o) => o.type === 'delete'));
  assert.equal(p.partGroups.length, 3);
  assert.ok(p.partGroups.every((g) => g.every((o) => o.type === 'delete')));
  assert.deepEqual(p.staleEnvelopes, [{ type: 'delete', key: k.envelopeAt('acme', 'shop', 1) }]);
  assert.deepEqual(p.wantGrants, new Map());
});

test('a revoked node loses its part; the others keep theirs untouched', () => {
  const was = after(planRound(input()), input());
  const p = planRound({ ...was, enrolled: new Set(['a', 'b']), registrations: new Map([...registrations].filter(([id]) => id !== 'c')), members: new Map([...was.members].filter(([id]) => id !== 'c')) });
  const touched = p.partGroups.flat().map((o) => o.key.split('/')[3]);
  assert.ok(touched.includes('c'));
  assert.ok(p.partGroups.flat().filter((o) => o.key.split('/')[3] === 'c').every((o) => o.type === 'delete'));
  assert.equal(p.desired.get('c/acme/shop'), undefined);
  assert.ok(p.desired.has('c/acme/shop'));
});

test('signed heads: an unchanged part keeps the head this controller signed (only when it wrote it), a changed one is signed anew', async () => {
  const { Key } = await import('../../src/crypto/keys.ts');
  const { checkPartSignature, signerOf, signPartEntries } = await import('../../src/control/signed.ts');
  const key = Key.fromBytes(seededRandom('controller')(32));
  const other = Key.fromBytes(seededRandom('another controller')(32));
  const first = planRound(input({ signingKey: key }));
  const mirror = after(first, input({ signingKey: key }));
  const own = new Set(first.desired.keys());
  // Same inputs: reusing the stored heads gives exactly the parts a full re-signing gives, and writes nothing.
  const reused = planRound({ ...mirror, ownHeads: own });
  const resigned = planRound({ ...mirror });
  assert.deepEqual(reused.desired, resigned.desired);
  assert.deepEqual(reused.partGroups, []);
  for (const [pid, e] of reused.desired) {
    const [node, tenant, name] = pid.split('/');
    assert.equal(checkPartSignature(k.part({ node, tenant, blueprint: name }), e!, new Set([signerOf(key)])), null, pid);
  }
  // The rule itself: the very head when nothing changed; a new signature when an entry, the key or the head's
  // fields changed, or when the stored head is not one of ours (read from etcd: a writer may have altered it).
  const pid = [...first.desired.keys()][0];
  const [node, tenant, name] = pid.split('/');
  const partKey = k.part({ node, tenant, blueprint: name });
  const stored = first.desired.get(pid)!;
  const unsigned = new Map(stored);
  unsigned.set('gen', JSON.stringify({ ...(JSON.parse(stored.get('gen')!) as object), signer: undefined, signature: undefined }));
  assert.equal(signPartEntries(partKey, unsigned, key, stored).get('gen'), stored.get('gen'));
  const changed = new Map(unsigned);
  const anyKey = [...changed.keys()].find((x) => x !== 'gen')!;
  changed.set(anyKey, `${changed.get(anyKey)} `);
  assert.notEqual(signPartEntries(partKey, changed, key, stored).get('gen'), stored.get('gen'));
  assert.equal(checkPartSignature(partKey, signPartEntries(partKey, changed, key, stored), new Set([signerOf(key)])), null);
  assert.equal(JSON.parse(signPartEntries(partKey, unsigned, other, stored).get('gen')!).signer, signerOf(other));
  const forged = new Map(stored);
  forged.set('gen', JSON.stringify({ ...(JSON.parse(stored.get('gen')!) as object), signature: 'A'.repeat(86) + '==' }));
  assert.equal(checkPartSignature(partKey, planRound({ ...mirror, partMirror: new Map([...mirror.partMirror, [pid, forged]]) }).desired.get(pid)!, new Set([signerOf(key)])), null, 'not ours: signed again');
});

test('the sliced round (the controller\'s) gives the event loop a turn between parts and decides exactly as planRound', async () => {
  let turns = 0;
  const sliced = await planRoundSliced(input(), async () => {
    turns++;
    await new Promise((r) => setImmediate(r));
  });
  assert.deepEqual(sliced, planRound(input()));
  // At least one turn per part signed and per part diffed (3 nodes), and one per blueprint planned.
  assert.ok(turns >= 7, `${turns} turns`);
});

test('a member leaving: the roster\'s new epoch is written, then its hint; the old epoch and its hint are deleted', () => {
  const was = after(planRound(input()), input());
  const netId = [...was.rosterMirror.keys()][0];
  const e1 = was.rosterMirror.get(netId)![0].epoch;
  const p = planRound({ ...was, submitted: new Map([['acme/shop', signed(blueprint([net({ nodes: ['a', 'b'] })], { version: 2 }))]]) });
  const e2 = p.rosters.get(netId)!.epoch;
  assert.equal(e2, nextEpoch(netId, e1, ['a', 'b'], 'roster'));
  const roster = p.directoryPuts.filter((o) => o.key.startsWith(k.rosters()));
  assert.deepEqual(roster.map((o) => o.key), [...['a', 'b'].map((n) => k.rosterEntry(netId, e2, n)), k.rosterEntry(netId, e2, '_from')], 'the hint last');
  assert.deepEqual(JSON.parse(roster[2].value!), { from: e1, left: ['c'], n: 2, sha256: JSON.parse(p.desired.get('a/acme/shop')!.get('net/net')!).roster.sha256 });
  assert.deepEqual(p.directoryDeletes.filter((o) => o.key.startsWith(k.rosters())).map((o) => o.key).sort(), [...['a', 'b', 'c'].map((n) => k.rosterEntry(netId, e1, n)), k.rosterEntry(netId, e1, '_from')].sort());
});
