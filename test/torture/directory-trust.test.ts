// Direct-peer directories on a real etcd with TLS, client certificates and RBAC (src/control/directory.ts,
// docs/control-plane.md): a hidden node's part no longer lists every other hidden node; the controller writes each
// hidden member's entry once per network under directory/<network>/<epoch>/, grants read on that epoch to the
// network's hidden members only, and each hidden node's signed part says how many entries the directory holds and
// their SHA-256. acme's network has the public pa and the hidden h1, h2, h3; globex's has pa and the hidden h4.
// Checked: the agents end up with exactly the direct peers the full plan gives, through a part of one peer entry;
// then, as each adversary:
//   - a hidden node of another network (h4), the network's public node (pa): cannot read or watch the directory;
//   - a member (h1): reads its own network's directory (the control), cannot write it nor read globex's;
//   - a member that leaves (h3, dropped by version 2): the watch it opened as a member shows nothing of the new
//     epoch; it cannot read or watch the new one; the old epoch's keys are gone;
//   - a writer of etcd (root, as a node that escalated would be): an entry added to the directory, or one altered
//     (another key for h2), holds the next part back (E_DIRECTORY_PENDING) and never becomes a peer; once the
//     forgery is gone, the part applies.
// Each attempt is a case; one that gets through is an exposure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blueprint, net } from '../helpers/fixtures.ts';
import { controlBed, nodeClients, waitFor, type BedAgent } from '../helpers/control-bed.ts';
import { etcdAvailable } from '../helpers/etcd.ts';
import { leaverCases, trustCases } from '../helpers/trust-cases.ts';
import type { Etcd3 } from '../../src/control/index.ts';
import { networkId } from '../../src/plan/planner.ts';
import type { Peer } from '../../src/plan/types.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';

const peersOf = (a: BedAgent) => a.bed.state.blueprint('acme', 'shop')?.part.networks[0].resource.peers ?? [];
const directs = (a: BedAgent) =>
  peersOf(a)
    .filter((p) => p.directSubnet !== undefined)
    .map((p) => p.node)
    .join(',');

test('direct-peer directories: one entry per hidden member, read only by the network\'s hidden members, taken only as the signed part says', { skip, timeout: 120_000 }, async () => {
  const bed = await controlBed({ rbac: true, tenants: ['acme', 'globex'] });
  const { cases, attempt, exposures: exposed } = trustCases();
  const nodes = nodeClients(bed);
  const { connect, watchers } = nodes;
  try {
    const k = bed.keys;
    await bed.controller();
    const pa = await bed.agent('pa', ['203.0.113.1']);
    const h1 = await bed.agent('h1', []);
    const h2 = await bed.agent('h2', []);
    const h3 = await bed.agent('h3', []);
    await bed.agent('h4', []);
    await bed.submit(blueprint([net({ nodes: ['pa', 'h1', 'h2', 'h3'] })]));
    await bed.submit(blueprint([net({ nodes: ['pa', 'h4'], ipRange: '10.9.0.0/16' })], { tenant: 'globex', name: 'web' }));
    const A = networkId('acme', 'shop', 'net');
    const G = networkId('globex', 'web', 'net');
    const dirKeys = async (id: string) => (await bed.client.getAll().prefix(`${k.directories()}${id}/`).keys()).sort();
    await waitFor('the hidden nodes hold each other as direct peers', () => directs(h1) === 'h2,h3' && directs(h2) === 'h1,h3' && directs(h3) === 'h1,h2', 30_000);

    // One entry per hidden member, one epoch; a hidden node's part holds one peer entry (its relay), no direct one.
    const keysA = await dirKeys(A);
    assert.equal(keysA.length, 3, keysA.join(' '));
    const epochA = k.parseDirectoryKey(keysA[0])!.epoch;
    assert.deepEqual(keysA, ['h1', 'h2', 'h3'].map((n) => k.directoryEntry(A, epochA, n)));
    assert.equal((await dirKeys(G)).length, 1);
    const h1Peers = await bed.client.getAll().prefix(`${k.part({ node: 'h1', tenant: 'acme', blueprint: 'shop' })}peer/`).keys();
    assert.deepEqual(h1Peers.map((x) => x.split('/').pop()), ['pa'], 'h1\'s part: its relay only');
    // What the agent applied is exactly the full plan's peer list: the relay and the two direct peers, sorted.
    assert.deepEqual(peersOf(h1).map((p: Peer) => p.node), ['h2', 'h3', 'pa']);
    assert.equal(peersOf(pa).length, 3, 'pa: a peer per hidden node behind it');

    const asH1 = connect('h1');
    const asH3 = connect('h3');
    const asH4 = connect('h4');
    const asPa = connect('pa');
    const prefixA = k.directoryPrefix(A, epochA);
    const present = (v: string | null) => (v === null ? Promise.reject(new Error('absent')) : v);
    const list = (c: Etcd3, prefix: string) => c.getAll().prefix(prefix).keys().then((x) => (x.length ? x : Promise.reject(new Error('empty'))));
    await attempt('h1 (member)', `read ${prefixA} (its network's directory)`, () => list(asH1, prefixA), 'allowed');
    await attempt('h1 (member)', `put ${prefixA}hx`, () => asH1.put(`${prefixA}hx`).value('{}'));
    await attempt('h1 (member)', `put ${prefixA}h2 (another member's entry)`, () => asH1.put(`${prefixA}h2`).value('{}'));
    await attempt('h1 (member)', `delete ${prefixA}h2`, () => asH1.delete().key(`${prefixA}h2`));
    const [gKey] = await dirKeys(G);
    await attempt('h1 (member)', `read ${gKey} (another tenant's network)`, () => asH1.get(gKey).string().then(present));
    await attempt('h1 (member)', `read the prefix ${k.directories()}`, () => list(asH1, k.directories()));
    await attempt('h4 (hidden elsewhere)', `read ${prefixA}`, () => list(asH4, prefixA));
    await attempt('h4 (hidden elsewhere)', `watch ${prefixA}`, async () => {
      const w = await asH4.watch().prefix(prefixA).create();
      await w.cancel();
    });
    await attempt("pa (the network's public node)", `read ${prefixA}`, () => list(asPa, prefixA));

    // A member that leaves: h3 watches the directory while it may, then version 2 drops it.
    const { prefix: prefixA2 } = await leaverCases({
      who: 'h3 (a member that left)',
      client: asH3,
      prefix: prefixA,
      watchers,
      cases,
      attempt,
      leave: async () => {
        await bed.submit(blueprint([net({ nodes: ['pa', 'h1', 'h2'] })], { version: 2 }));
        await waitFor('h1 and h2 lose h3 as a direct peer', () => directs(h1) === 'h2' && directs(h2) === 'h1', 30_000);
        const keysA2 = await dirKeys(A);
        const epochA2 = k.parseDirectoryKey(keysA2[0])!.epoch;
        assert.notEqual(epochA2, epochA, 'a new epoch when a member leaves');
        assert.deepEqual(keysA2, ['h1', 'h2'].map((n) => k.directoryEntry(A, epochA2, n)), 'the old epoch is gone');
        return { epoch: epochA2, prefix: k.directoryPrefix(A, epochA2) };
      },
    });

    // A writer of etcd adds an entry, then alters one: the next part (version 3) waits, and no forged peer is taken.
    const forge = async (what: string, key: string, value: (old: string) => string) => {
      const old = (await bed.client.get(key).string()) ?? JSON.stringify({ node: 'hx', kind: 'node', publicKey: 'x', endpoint: null, allowedIps: [], persistentKeepalive: null, directSubnet: '10.1.99.0/24' });
      await bed.client.put(key).value(value(old));
      const gen = h1.generation();
      const version = 3 + cases.filter((c) => c.who.startsWith('a writer')).length;
      await bed.submit(blueprint([net({ nodes: ['pa', 'h1', 'h2'], egress: version % 2 === 1 })], { version }));
      await waitFor(`h1 holds version ${version} back (${what})`, () => h1.link.status.blueprints['acme/shop']?.problems.some((p) => p.code === 'E_DIRECTORY_PENDING'), 20_000);
      await new Promise((r) => setTimeout(r, 600)); // past a retry of the part (500 ms in the bed)
      const held = h1.generation() === gen && directs(h1) === 'h2';
      cases.push({ who: 'a writer of etcd', attempt: `${what}: make h1 take the forged directory`, expect: 'refused', got: held ? 'refused' : 'allowed', detail: `${directs(h1)} gen ${gen}→${h1.generation()}` });
      // Undone: the part applies.
      if (key.endsWith('/hx')) await bed.client.delete().key(key);
      else await bed.client.put(key).value(old);
      await waitFor(`h1 applies version ${version} once the forgery is gone`, () => h1.generation() > gen && directs(h1) === 'h2', 20_000);
    };
    await forge('an added entry', `${prefixA2}hx`, (old) => old);
    const h2Entry = `${prefixA2}h2`;
    await forge("h2's entry with another key", h2Entry, (old) => JSON.stringify({ ...(JSON.parse(old) as Peer), publicKey: pa.bed.state.blueprint('acme', 'shop')!.part.networks[0].resource.publicKey }));
    assert.equal(peersOf(h1).find((p) => p.node === 'h2')!.publicKey, JSON.parse((await bed.client.get(h2Entry).string())!).publicKey, "h1 holds h2's true key");

    const exposures = exposed();
    assert.deepEqual(exposures, []);
    assert.equal(cases.length, 14);
  } finally {
    await nodes.close();
    await bed.close();
  }
});
