// The roster of a network (src/control/roster.ts): each member's subnet, name and policy addresses once per network
// instead of in every member's part, and the parts completed from it exactly as the full derivation has them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/crypto/index.ts';
import { planCompact } from '../../src/plan/planner.ts';
import { nodePart } from '../../src/plan/part.ts';
import { directoryEntries } from '../../src/plan/derive.ts';
import { assemblePart, Keys, partWithHead, planPartEntries } from '../../src/control/index.ts';
import { directoryHash, directoryHead, directoryOps, directPeersFrom, nextDirectories, readDirectories } from '../../src/control/directory.ts';
import { fillFromRoster, fromHint, ROSTER_HINT, rosterEntries, rosterFrom, rosterHints, rosterValue } from '../../src/control/roster.ts';
import { blueprint, inventory, net, type NodeDef } from '../helpers/fixtures.ts';

const keys = new Keys('/t');
const env = keys.envelopeAt('acme', 'shop', 1);

/** 40 nodes (12 hidden); three networks: a big one with two devices, a dual-stack one with a policy, a small one. */
function world() {
  const defs: NodeDef[] = [];
  for (let i = 1; i <= 40; i++) defs.push(i <= 12 ? { id: `h${String(i).padStart(2, '0')}` } : { id: `p${i}`, endpoints: [`203.0.113.${i}`] });
  const ids = defs.map((d) => d.id);
  const bp = blueprint(
    [
      net({ nodes: ids, ipRange: '10.8.0.0/16', access: [{ name: 'laptop' }, { name: 'phone' }] }),
      net({
        name: 'pol',
        nodes: ids.slice(5, 25),
        ipRange: '10.9.0.0/16',
        ipv6Range: 'fd00:9::/48',
        policy: { default: 'deny', rules: [{ from: ['node:p20'], to: ['any'], ports: [] }] },
      }),
      net({ name: 'small', nodes: ids.slice(-2), ipRange: '10.10.0.0/16', ipv6: false }),
    ],
    { workloads: [{ name: 'web', node: 'p30', image: 'nginx', command: [], network: { name: 'net' }, cpu: 1, memory: 1 << 26, volumes: [] }] },
  );
  return { plan: planCompact(bp, inventory(defs), { random: seededRandom('roster') }), ids };
}

test('through the roster (and the directory), every part is exactly the full derivation\'s; the members\' buckets are gone from the parts', () => {
  const { plan, ids } = world();
  const rosters = nextDirectories(rosterEntries(plan), new Map(), 'roster');
  assert.deepEqual([...rosters.values()].map((d) => d.entries.size).sort((a, b) => a - b), [2, 20, 40]);
  const dirs = nextDirectories(directoryEntries(plan), new Map());
  const heads = (m: typeof rosters) => new Map([...m].map(([n, d]) => [n, directoryHead(d)]));
  const full = planPartEntries(plan, env);
  const slim = planPartEntries(plan, env, undefined, heads(dirs), heads(rosters));
  for (const node of ids) {
    const ref = { node, tenant: 'acme', blueprint: 'shop' };
    const want = nodePart(plan, node);
    assert.deepEqual(full.get(node), partWithHead(want, env), `${node}: the full entries are the part's (policy members included)`);
    const got = assemblePart(ref, slim.get(node)!)!;
    assert.equal(got.rosters.size, want.networks.length, `${node}: every network names its roster`);
    for (const [name, head] of got.rosters) {
      const n = got.part.networks.find((x) => x.name === name)!;
      const r = rosterFrom(head, rosters.get(n.id)!.entries);
      assert.ok(!('waiting' in r), JSON.stringify(r));
      fillFromRoster(n, r);
    }
    for (const [name, head] of got.directories) {
      const n = got.part.networks.find((x) => x.name === name)!;
      const r = directPeersFrom(head, node, dirs.get(n.id)!.entries);
      assert.ok('peers' in r, JSON.stringify(r));
      n.resource.peers = [...n.resource.peers, ...r.peers].sort((a, b) => (a.node < b.node ? -1 : 1));
    }
    assert.deepEqual(got.part, want, node);
    const suffixes = [...slim.get(node)!.keys()];
    // Only the devices' subnets stay (network "net": one bucket); no node-name buckets at all.
    assert.deepEqual(suffixes.filter((s) => s.startsWith('subnets/')), suffixes.includes('net/net') ? ['subnets/net/0'] : [], node);
    assert.deepEqual(suffixes.filter((s) => s.startsWith('names/')), want.networks.map((n) => `names/${n.name}`), node);
  }
  const p20 = assemblePart({ node: 'p20', tenant: 'acme', blueprint: 'shop' }, slim.get('p20')!)!.part.networks.find((n) => n.name === 'pol')!;
  assert.deepEqual(p20.members!.nodes, {}, 'the policy members of the nodes come from the roster');
  assert.deepEqual(p20.members!.nodes6, {});
  // The roster's entries, exactly (a dual-stack member of a policy network).
  const pol = plan.networks.find((n) => n.name === 'pol')!;
  const r = pol.resources.find((x) => x.node === 'p20')!;
  assert.equal(
    rosters.get(pol.id)!.entries.get('p20'),
    JSON.stringify({ node: 'p20', subnet: r.subnet, name: { ip: r.gateway, ip6: r.gateway6 }, member: [`${r.gateway}/32`, r.wgAddress], member6: [`${r.gateway6}/128`, r.wgAddress6] }),
  );
  const small = plan.networks.find((n) => n.name === 'small')!;
  const s = small.resources[0];
  assert.equal(rosters.get(small.id)!.entries.get(s.node), JSON.stringify({ node: s.node, subnet: s.subnet, name: { ip: s.gateway } }));
});

test('what an agent takes from a roster: only exactly what its part says (count and hash), in the shape of a member', () => {
  const a = rosterValue({ node: 'a', subnet: '10.8.0.0/24', name: { ip: '10.8.0.1' } });
  const b = rosterValue({ node: 'b', subnet: '10.8.1.0/24', name: { ip: '10.8.1.1', ip6: 'fd00::1' }, member: ['10.8.1.1/32', '10.8.1.254/32'] });
  const entries = new Map([
    ['b', b],
    ['a', a],
  ]);
  const head = { epoch: '0123456789abcdef', n: 2, sha256: directoryHash([a, b]) };
  assert.deepEqual(rosterFrom(head, entries), {
    subnets: ['10.8.1.0/24', '10.8.0.0/24'],
    nodes: { a: { ip: '10.8.0.1' }, b: { ip: '10.8.1.1', ip6: 'fd00::1' } },
    members: { b: ['10.8.1.1/32', '10.8.1.254/32'] },
    members6: {},
  });
  assert.deepEqual(Object.keys((rosterFrom(head, entries) as { nodes: object }).nodes), ['a', 'b'], 'sorted by node');
  assert.deepEqual(rosterFrom(head, undefined), { waiting: 'roster 0123456789abcdef not read yet' });
  assert.deepEqual(rosterFrom(head, new Map([['a', a]])), { waiting: 'roster 0123456789abcdef holds 1 entries, the part says 2' });
  // A writer of etcd: another subnet for b, an added member, b's entry moved to another key.
  const evil = rosterValue({ node: 'b', subnet: '10.8.9.0/24', name: { ip: '10.8.1.1' } });
  assert.deepEqual(rosterFrom(head, new Map([['a', a], ['b', evil]])), { waiting: "roster 0123456789abcdef does not match the part's hash" });
  assert.deepEqual(rosterFrom({ ...head, n: 3 }, new Map([['a', a], ['b', b], ['x', evil]])), { waiting: "roster 0123456789abcdef does not match the part's hash" });
  // Keys swapped or moved keep the count and the hash of the values: the node id inside each value refuses them
  // (a writer of etcd swapping a and b would swap their names and policy addresses; found by review).
  assert.deepEqual(rosterFrom(head, new Map([['a', b], ['b', a]])), { waiting: "roster entry a is not a's" });
  assert.deepEqual(rosterFrom(head, new Map([['a', a], ['c', b]])), { waiting: "roster entry c is not c's" });
  // Malformed entries that match their hash (a controller bug) are refused by shape, never half taken.
  for (const bad of ['{', 'null', '{"node":"z","subnet":"10.8.0.0/24"}', '{"node":"z","subnet":1,"name":{"ip":"x"}}', '{"node":"z","subnet":"s","name":{"ip":"x"},"member":"10.8.0.1/32"}', '{"node":"z","subnet":"s","name":{"ip":"x"},"member":[1]}', '{"subnet":"s","name":{"ip":"x"}}']) {
    const r = rosterFrom({ ...head, n: 1, sha256: directoryHash([bad]) }, new Map([['z', bad]]));
    assert.ok('waiting' in r && /entry z is not/.test(r.waiting), bad);
  }
  // A node id "__proto__" is an own key like any other.
  const p = rosterValue({ node: '__proto__', subnet: '10.8.0.0/24', name: { ip: '10.8.0.1' } });
  const proto = rosterFrom({ ...head, n: 1, sha256: directoryHash([p]) }, new Map([['__proto__', p]]));
  assert.ok(!('waiting' in proto) && Object.hasOwn(proto.nodes, '__proto__') && Object.getPrototypeOf(proto.nodes) === Object.prototype);
});

test('roster epochs and writes: a join is one put and keeps the epoch; a leave is a new epoch under new keys, the old deleted', () => {
  const m = (...nodes: string[]) => new Map(nodes.map((n) => [n, rosterValue({ node: n, subnet: `10.8.${n.length}.0/24`, name: { ip: `10.8.${n.length}.1` } })]));
  const first = nextDirectories(new Map([['N', m('a', 'bb')]]), new Map(), 'roster');
  const e1 = first.get('N')!.epoch;
  const ops1 = directoryOps(keys, new Map(), first, 'roster');
  assert.deepEqual(ops1.puts.map((o) => o.key), [`/t/roster/N/${e1}/a`, `/t/roster/N/${e1}/bb`]);
  const stored = readDirectories(keys, ops1.puts.map((o) => [o.key, o.value!] as const), 'roster');
  assert.deepEqual(readDirectories(keys, ops1.puts.map((o) => [o.key, o.value!] as const)), new Map(), 'roster keys are not directory keys');
  const joined = nextDirectories(new Map([['N', m('a', 'bb', 'ccc')]]), stored, 'roster');
  assert.equal(joined.get('N')!.epoch, e1);
  assert.deepEqual(directoryOps(keys, stored, joined, 'roster'), { puts: [{ type: 'put', key: `/t/roster/N/${e1}/ccc`, value: m('ccc').get('ccc') }], deletes: [] });
  const left = nextDirectories(new Map([['N', m('a')]]), stored, 'roster');
  const e2 = left.get('N')!.epoch;
  assert.notEqual(e2, e1);
  assert.deepEqual(directoryOps(keys, stored, left, 'roster'), {
    puts: [{ type: 'put', key: `/t/roster/N/${e2}/a`, value: m('a').get('a') }],
    deletes: [
      { type: 'delete', key: `/t/roster/N/${e1}/a` },
      { type: 'delete', key: `/t/roster/N/${e1}/bb` },
    ],
  });
});

test('a leave without re-reads: the new epoch\'s hint, and what a member takes from it', () => {
  const v = (n: string, i: number) => rosterValue({ node: n, subnet: `10.8.${i}.0/24`, name: { ip: `10.8.${i}.1` } });
  const all = new Map([['a', v('a', 0)], ['b', v('b', 1)], ['c', v('c', 2)]]);
  const first = nextDirectories(new Map([['N', all]]), new Map(), 'roster');
  const e1 = first.get('N')!.epoch;
  const stored = new Map([...first].map(([n, d]) => [n, [d]]));
  assert.deepEqual(rosterHints(new Map(), first), new Map(), 'a first epoch has no hint');
  assert.deepEqual(rosterHints(stored, nextDirectories(new Map([['N', new Map([...all, ['d', v('d', 3)]])]]), stored, 'roster')), new Map(), 'a join keeps the epoch: no hint');
  const left = nextDirectories(new Map([['N', new Map([['a', all.get('a')!], ['c', all.get('c')!]])]]), stored, 'roster');
  const e2 = left.get('N')!.epoch;
  const hint = rosterHints(stored, left).get('N')!;
  assert.equal(hint, JSON.stringify({ from: e1, left: ['b'], n: 2, sha256: directoryHash([all.get('a')!, all.get('c')!]) }));
  assert.deepEqual(rosterHints(new Map([['N', [left.get('N')!]]]), left), new Map(), 'an epoch that is the stored one gets no second hint');
  assert.deepEqual(rosterHints(new Map([['N', [first.get('N')!, left.get('N')!]]]), left), new Map([['N', hint]]), 'stored beside the old one (a controller stopped before its hint): the hint');
  const many = new Map(Array.from({ length: 1030 }, (_, i) => [`m${i}`, v(`m${i}`, i % 250)] as const));
  const bigStored = new Map([['M', [{ epoch: 'aaaaaaaaaaaaaaaa', entries: many }]]]);
  assert.deepEqual(rosterHints(bigStored, new Map([['M', { epoch: 'bbbbbbbbbbbbbbbb', entries: new Map([['m0', many.get('m0')!]]) }]])), new Map(), 'more than 1,024 left: no hint');
  // A member holding the old epoch takes it minus who left; anything else is null (then it reads the epoch whole).
  const holding = (epoch: string, entries: ReadonlyMap<string, string>) => (e: string) => (e === epoch ? entries : undefined);
  assert.deepEqual(fromHint(hint, holding(e1, all)), new Map([['a', all.get('a')!], ['c', all.get('c')!]]));
  assert.equal(fromHint(hint, holding(e2, all)), null, 'another epoch');
  assert.equal(fromHint(hint, holding(e1, new Map([...all, ['a', v('a', 9)]]))), null, 'a seed that differs');
  for (const bad of ['{', 'null', '[]', JSON.stringify({ ...JSON.parse(hint), left: 'b' }), JSON.stringify({ ...JSON.parse(hint), n: 3 }), JSON.stringify({ ...JSON.parse(hint), left: Array.from({ length: 1025 }, (_, i) => `x${i}`) })]) {
    assert.equal(fromHint(bad, holding(e1, all)), null, bad.slice(0, 60));
  }
  // The controller's mirror never takes a hint (or any key that is no node id) for an entry.
  const keysOf = [[keys.rosterEntry('N', e2, 'a'), 'x'], [keys.rosterEntry('N', e2, ROSTER_HINT), hint], [keys.rosterEntry('N', e2, 'Not_A_Label'), 'y']] as const;
  assert.deepEqual([...readDirectories(keys, keysOf, 'roster').get('N')![0].entries.keys()], ['a']);
  // A hint alone (its entries deleted, by a writer or by a controller stopped halfway before hints went first):
  // its epoch is in the mirror without entries, so the next round deletes it.
  assert.deepEqual(readDirectories(keys, [[keys.rosterEntry('N', e1, ROSTER_HINT), hint]], 'roster'), new Map([['N', [{ epoch: e1, entries: new Map() }]]]));
  assert.deepEqual(readDirectories(keys, [[keys.directoryEntry('N', e1, '_from'), 'x'], [keys.directoryEntry('N', e1, 'Junk'), 'y']]), new Map(), 'a directory has no hints, and junk is no entry');
});
