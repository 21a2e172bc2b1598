// Direct-peer directories (src/control/directory.ts): the hash a part carries, when an epoch is kept or replaced,
// the exact operations, what an agent takes from a directory it read, and that a hidden node's part through the
// directory is exactly the part the full derivation gives (for every node of a plan with many hidden nodes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { seededRandom } from '../../src/crypto/rng.ts';
import { planCompact } from '../../src/plan/index.ts';
import { directoryEntries } from '../../src/plan/derive.ts';
import { assemblePart, Keys, planPartEntries } from '../../src/control/index.ts';
import { directoryHash, directoryHead, directoryOps, directPeersFrom, isDirectoryHead, nextDirectories, nextEpoch, readDirectories, type Directory } from '../../src/control/directory.ts';
import { blueprint, inventory, net, type NodeDef } from '../helpers/fixtures.ts';

const keys = new Keys('/t');
const entry = (node: string, key = `K${node}`) => JSON.stringify({ node, kind: 'node', publicKey: key, endpoint: null, allowedIps: [], persistentKeepalive: null, directSubnet: `10.1.${node.length}.0/24` });

test('the hash: SHA-256 of the values sorted, each after its length and a newline, whatever the order they come in', () => {
  const want = createHash('sha256').update('1\na1\nb1\nc').digest('hex');
  assert.equal(directoryHash(['c', 'a', 'b']), want);
  assert.equal(directoryHash(new Map([['x', 'b'], ['y', 'c'], ['z', 'a']]).values()), want);
  assert.equal(directoryHash([]), createHash('sha256').digest('hex'));
  assert.notEqual(directoryHash(['a', 'b']), directoryHash(['a\nb']), 'the same text split differently');
  assert.notEqual(directoryHash(['a', 'b']), directoryHash(['1\na1\nb']), 'a value holding the framing');
  assert.equal(directoryHash(['é']), createHash('sha256').update('2\né').digest('hex'), 'the length in bytes');
});

test('epochs: kept while nobody leaves (joins and changed entries are puts), a new one when a member leaves', () => {
  const m = (...nodes: string[]) => new Map(nodes.map((n) => [n, entry(n)]));
  const first = nextDirectories(new Map([['N', m('h1', 'h2')], ['E', new Map()]]), new Map());
  assert.deepEqual([...first.keys()], ['N'], 'no directory for a network without hidden members');
  const e1 = first.get('N')!.epoch;
  assert.equal(e1, nextEpoch('N', '', ['h2', 'h1']));
  assert.match(e1, /^[0-9a-f]{16}$/);
  const stored = new Map([['N', [first.get('N')!]]]);
  // h3 joins, h1's entry changes: same epoch, two puts, nothing deleted.
  const joined = nextDirectories(new Map([['N', new Map([['h1', entry('h1', 'new')], ['h2', entry('h2')], ['h3', entry('h3')]])]]), stored);
  assert.equal(joined.get('N')!.epoch, e1);
  assert.deepEqual(directoryOps(keys, stored, joined), {
    puts: [
      { type: 'put', key: `/t/directory/N/${e1}/h1`, value: entry('h1', 'new') },
      { type: 'put', key: `/t/directory/N/${e1}/h3`, value: entry('h3') },
    ],
    deletes: [],
  });
  // h2 leaves: a new epoch chained from the old one; every entry written anew, every old key deleted.
  const left = nextDirectories(new Map([['N', m('h1')]]), stored);
  const e2 = left.get('N')!.epoch;
  assert.equal(e2, nextEpoch('N', e1, ['h1']));
  assert.notEqual(e2, e1);
  assert.deepEqual(directoryOps(keys, stored, left), {
    puts: [{ type: 'put', key: `/t/directory/N/${e2}/h1`, value: entry('h1') }],
    deletes: [
      { type: 'delete', key: `/t/directory/N/${e1}/h1` },
      { type: 'delete', key: `/t/directory/N/${e1}/h2` },
    ],
  });
  // The network gone: its keys go.
  assert.deepEqual(directoryOps(keys, stored, new Map()).deletes.length, 2);
  // Nothing changed: nothing written.
  assert.deepEqual(directoryOps(keys, stored, nextDirectories(new Map([['N', m('h1', 'h2')]]), stored)), { puts: [], deletes: [] });
});

test('stored keys back into directories: two epochs of one network (a stopped controller), the larger one counts', () => {
  const read = readDirectories(keys, [
    ['/t/directory/N/aaaaaaaaaaaaaaaa/h1', 'x'],
    ['/t/directory/N/bbbbbbbbbbbbbbbb/h1', 'y'],
    ['/t/directory/N/bbbbbbbbbbbbbbbb/h2', 'z'],
    ['/t/directory/N/only-two', 'ignored'],
    ['/t/directory/N/cccccccccccccccc/h1/deeper', 'ignored'],
  ]);
  assert.deepEqual(read.get('N')!.map((d: Directory) => [d.epoch, [...d.entries]]), [
    ['aaaaaaaaaaaaaaaa', [['h1', 'x']]],
    ['bbbbbbbbbbbbbbbb', [['h1', 'y'], ['h2', 'z']]],
  ]);
  const next = nextDirectories(new Map([['N', new Map([['h1', 'y'], ['h2', 'z']])]]), read);
  assert.equal(next.get('N')!.epoch, 'bbbbbbbbbbbbbbbb');
  assert.deepEqual(directoryOps(keys, read, next), { puts: [], deletes: [{ type: 'delete', key: '/t/directory/N/aaaaaaaaaaaaaaaa/h1' }] });
});

test('what an agent takes: only a directory that holds exactly what its part says; its own entry left out', () => {
  const d: Directory = { epoch: '0123456789abcdef', entries: new Map([['h1', entry('h1')], ['h2', entry('h2')], ['h3', entry('h3')]]) };
  const head = directoryHead(d);
  assert.ok(isDirectoryHead(head));
  assert.deepEqual(head, { epoch: d.epoch, n: 3, sha256: directoryHash([entry('h1'), entry('h2'), entry('h3')]) });
  const ok = directPeersFrom(head, 'h2', d.entries);
  assert.deepEqual('peers' in ok && ok.peers.map((p) => p.node), ['h1', 'h3']);
  assert.match((directPeersFrom(head, 'h2', undefined) as { waiting: string }).waiting, /not read yet/);
  const added = new Map([...d.entries, ['hx', entry('hx')]]);
  assert.match((directPeersFrom(head, 'h2', added) as { waiting: string }).waiting, /holds 4 entries, the part says 3/);
  const altered = new Map([...d.entries, ['h3', entry('h3', 'forged')]]);
  assert.match((directPeersFrom(head, 'h2', altered) as { waiting: string }).waiting, /hash/);
  // An entry under another node's name (moved): refused even when the hash is what the part says.
  const moved = new Map([['h1', entry('h1')], ['h2', entry('h2')], ['h9', entry('h3')]]);
  assert.match((directPeersFrom(directoryHead({ epoch: d.epoch, entries: moved }), 'h1', moved) as { waiting: string }).waiting, /not h9's/);
  for (const bad of [null, {}, { ...head, epoch: 'XYZ' }, { ...head, n: 0 }, { ...head, sha256: 'ab' }, { ...head, n: 1.5 }]) assert.equal(isDirectoryHead(bad), false, JSON.stringify(bad));
});

test("through the directory, every hidden node's part is exactly the full derivation's (40 nodes, 30 hidden, two networks)", () => {
  const defs: NodeDef[] = [];
  for (let i = 1; i <= 40; i++) defs.push(i <= 30 ? { id: `h${String(i).padStart(2, '0')}` } : { id: `p${i}`, endpoints: [`203.0.113.${i}`] });
  const ids = defs.map((d) => d.id);
  const bp = blueprint([net({ nodes: ids, ipRange: '10.8.0.0/16' }), net({ name: 'small', nodes: [...ids.slice(0, 2), ...ids.slice(-2)], ipRange: '10.9.0.0/16', ipv6Range: 'fd00:9::/48' })]);
  const plan = planCompact(bp, inventory(defs), { random: seededRandom('dir') });
  const env = keys.envelopeAt('acme', 'shop', 1);
  const full = planPartEntries(plan, env);
  const dirs = nextDirectories(directoryEntries(plan), new Map());
  assert.deepEqual([...dirs.values()].map((d) => d.entries.size).sort((a, b) => a - b), [2, 30]);
  const heads = new Map([...dirs].map(([n, d]) => [n, directoryHead(d)]));
  const slim = planPartEntries(plan, env, undefined, heads);
  let hiddenParts = 0;
  for (const node of ids) {
    const ref = { node, tenant: 'acme', blueprint: 'shop' };
    const want = assemblePart(ref, full.get(node)!)!;
    const got = assemblePart(ref, slim.get(node)!)!;
    assert.equal(want.directories.size, 0);
    if (node.startsWith('p')) {
      assert.deepEqual(slim.get(node), full.get(node), `${node}: a public node's part is unchanged`);
      continue;
    }
    hiddenParts++;
    assert.ok([...slim.get(node)!.keys()].filter((s) => s.startsWith('peer/')).length <= 2, `${node}: one relay entry per network`);
    for (const [name, head] of got.directories) {
      const n = got.part.networks.find((x) => x.name === name)!;
      const r = directPeersFrom(head, node, dirs.get(n.id)!.entries);
      assert.ok('peers' in r, JSON.stringify(r));
      n.resource.peers = [...n.resource.peers, ...r.peers].sort((a, b) => (a.node < b.node ? -1 : 1));
    }
    assert.deepEqual(got.part, want.part, node);
  }
  assert.equal(hiddenParts, 30);
  // The bytes a hidden part no longer carries: each of 30 parts named 29 direct peers.
  const bytes = (m: Map<string, Map<string, string>>) => [...m.values()].reduce((s, e) => s + [...e.values()].reduce((t, v) => t + v.length, 0), 0);
  assert.ok(bytes(slim) < bytes(full) / 2, `${bytes(slim)} < ${bytes(full)} / 2`);
});

test('two blueprints with one network id (a tenant that searched for a collision): found, and neither gets a directory', async () => {
  const { collidedNetworks } = await import('../../src/control/round.ts');
  const inv = inventory([{ id: 'a', endpoints: ['203.0.113.1'] }, { id: 'c' }, { id: 'd' }, { id: 'e' }, { id: 'f' }]);
  const victim = planCompact(blueprint([net({ nodes: ['a', 'c', 'd'] })]), inv, { random: seededRandom('v') });
  const evil = planCompact(blueprint([net({ nodes: ['a', 'e', 'f'] })], { tenant: 'evil', name: 'x' }), inv, { random: seededRandom('e') });
  assert.deepEqual(collidedNetworks([['acme/shop', victim], ['evil/x', evil]]), new Map());
  (evil.networks[0] as { id: string }).id = victim.networks[0].id; // forced: 2^50 work to find by names
  assert.deepEqual(collidedNetworks([['acme/shop', victim], ['evil/x', evil]]), new Map([[victim.networks[0].id, ['acme/shop', 'evil/x']]]));
  assert.deepEqual(collidedNetworks([['acme/shop', victim], ['acme/shop', victim]]), new Map(), 'one blueprint is not a collision');
  // Two networks of ONE blueprint with one id (the tenant searched its own names): collided too (found by review:
  // they would share a roster).
  const twin = planCompact(blueprint([net({ nodes: ['a', 'c'] }), net({ name: 'twin', nodes: ['a', 'd'], ipRange: '10.9.0.0/16' })]), inv, { random: seededRandom('t') });
  assert.deepEqual(collidedNetworks([['acme/shop', twin]]), new Map());
  (twin.networks[1] as { id: string }).id = twin.networks[0].id;
  assert.deepEqual(collidedNetworks([['acme/shop', twin]]), new Map([[twin.networks[0].id, ['acme/shop']]]));
});
