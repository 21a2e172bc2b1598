// Direct-path candidate tables on a real etcd with TLS, client certificates and RBAC (docs/paths.md): the
// controller publishes one signed table per network (candidate-tables/<network>) and grants read on it to the
// nodes the plans make hidden in that network, and to nobody else. Two tenants: acme's network has the public pa
// and the hidden h1 and h2; globex's has pa and the hidden h3. The real agents run over a fake data plane that
// reports one underlay address and reads no counters. Then, as each adversary:
//   - a hidden node of another network (h3), the public access node of the network (pa): cannot read or watch
//     acme's table;
//   - a member (h1): can read its network's table (the control) but not write it, nor read globex's;
//   - a member that leaves (h2, dropped by a new version): the watches it opened while a member never show a
//     later table (a new epoch, a new key) nor the members; it cannot read or watch the new one;
//   - a member claiming in its signed status to be hidden in globex's network too: is not put in globex's table,
//     and what it claims reaches nobody;
//   - the table itself: each member's agent takes from it only its own direct peers' candidates.
// Each attempt is a case; one that gets through is an exposure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blueprint, net } from '../helpers/fixtures.ts';
import { controlBed, nodeClients, waitFor } from '../helpers/control-bed.ts';
import { FakeDriver } from '../helpers/agent-fixtures.ts';
import { etcdAvailable } from '../helpers/etcd.ts';
import { trustCases } from '../helpers/trust-cases.ts';
import type { Etcd3 } from '../../src/control/index.ts';
import { readCandidates, signerOf } from '../../src/control/signed.ts';
import { tableFrom, type CandidateTable } from '../../src/control/candidates.ts';
import { networkId } from '../../src/plan/planner.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';


// The fake data plane grows what direct paths need: an underlay address, peer counters (none), setPeers.
const proto = FakeDriver.prototype as unknown as Record<string, unknown>;
proto.underlayAddresses = async () => ['198.51.100.7'];
proto.peerCounters = async () => [];
proto.setPeers = async () => [];

test('candidate tables: read only by the network\'s hidden members, written only by the controller, members only from the plans', { skip, timeout: 120_000 }, async () => {
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
    await bed.submit(blueprint([net({ nodes: ['pa', 'h1', 'h2'] })]));
    await bed.submit(blueprint([net({ nodes: ['pa', 'h3'], ipRange: '10.9.0.0/16' })], { tenant: 'globex', name: 'web' }));
    const A = networkId('acme', 'shop', 'net');
    const G = networkId('globex', 'web', 'net');
    const trusted = new Set([signerOf(bed.controllerKey!)]);
    const epoch = async (id: string) => {
      const p = await bed.client.get(k.candidatePointer(id)).string();
      return p === null ? null : (JSON.parse(p) as { epoch: string }).epoch;
    };
    const tableKey = async (id: string) => k.candidateTable(id, (await epoch(id)) ?? 'none');
    const table = async (id: string): Promise<CandidateTable | null> => {
      const key = await tableKey(id);
      const text = await bed.client.get(key).string();
      if (text === null) return null;
      const r = readCandidates(key, text, trusted);
      assert.ok(!('problem' in r), JSON.stringify(r));
      return tableFrom(r.candidates);
    };
    const members = async (id: string) => Object.keys((await table(id))?.nodes ?? {}).sort().join(',');
    await waitFor('both tables published', async () => (await members(A)) === 'h1,h2' && (await members(G)) === 'h3', 30_000);
    const acme = (await table(A))!;
    assert.equal(acme.nodes.h1.local.length, 1, JSON.stringify(acme));

    // Each member's agent takes its direct peer's candidates from the table.
    const paths = (x: typeof h1, peer: string) => x.bed.agent.paths!.candidatesOf(A, peer);
    await waitFor('h1 and h2 hold each other\'s candidates', () => paths(h1, 'h2').length > 0 && paths(h2, 'h1').length > 0, 20_000);
    assert.deepEqual(paths(h1, 'h2'), acme.nodes.h2.local);
    assert.deepEqual(h3.bed.agent.paths!.views().filter((v) => v.candidates.length), [], 'h3 (another network) holds no candidate');
    void pa;

    const asH1 = connect('h1');
    const asH2 = connect('h2');
    const asH3 = connect('h3');
    const asPa = connect('pa');
    const tA = await tableKey(A);
    const tG = await tableKey(G);
    const present = (v: string | null) => (v === null ? Promise.reject(new Error('absent')) : v);
    await attempt('h1 (member)', `read ${tA} (its network's table)`, () => asH1.get(tA).string().then(present), 'allowed');
    await attempt('h1 (member)', `read ${k.candidatePointer(A)} (its network's pointer)`, () => asH1.get(k.candidatePointer(A)).string().then(present), 'allowed');
    await attempt('h1 (member)', `put ${tA}`, () => asH1.put(tA).value('{}'));
    await attempt('h1 (member)', `put ${k.candidatePointer(A)}`, () => asH1.put(k.candidatePointer(A)).value('{"epoch":"00"}'));
    await attempt('h1 (member)', `read ${tG} (another tenant's network)`, () => asH1.get(tG).string());
    await attempt('h1 (member)', `read the prefix ${k.candidateTables()}`, () => asH1.getAll().prefix(k.candidateTables()).keys());
    await attempt('h3 (hidden elsewhere)', `read ${tA}`, () => asH3.get(tA).string());
    await attempt('h3 (hidden elsewhere)', `read ${k.candidatePointer(A)}`, () => asH3.get(k.candidatePointer(A)).string());
    await attempt('h3 (hidden elsewhere)', `watch ${tA}`, async () => {
      const w = await asH3.watch().key(tA).create();
      await w.cancel();
    });
    await attempt("pa (the network's public access node)", `read ${tA}`, () => asPa.get(tA).string());

    // A member that leaves: h2 watches acme's pointer and table while it may (the attacker's best position),
    // then acme's version 2 drops it. Its open watches must never show the table written after it left.
    const seen: string[] = [];
    const wTable = await asH2.watch().key(tA).create();
    watchers.push(wTable);
    wTable.on('data', (r) => r.events.forEach((e) => seen.push(`${e.type} ${e.kv.value.toString().slice(0, 200)}`)));
    const wPointer = await asH2.watch().key(k.candidatePointer(A)).create();
    watchers.push(wPointer);
    // Its best position: a watch on the network's whole prefix, opened while a member (stop 28 granted the prefix:
    // such a watch showed every later table after the node left). Now a member is granted one epoch's keys only.
    const wide: string[] = [];
    let wPrefix: Awaited<ReturnType<ReturnType<Etcd3['watch']>['create']>> | null = null;
    await attempt('h2 (member)', `watch the network's whole prefix ${k.candidateTablePrefix(A)}`, async () => {
      wPrefix = await asH2.watch().prefix(k.candidateTablePrefix(A)).create();
      watchers.push(wPrefix);
      wPrefix.on('data', (r) => r.events.forEach((e) => wide.push(`${e.type} ${e.kv.key.toString()} ${e.kv.value.toString().slice(0, 120)}`)));
    });
    const pointers: string[] = [];
    wPointer.on('data', (r) => r.events.forEach((e) => pointers.push(e.kv.value.toString())));
    await bed.submit(blueprint([net({ nodes: ['pa', 'h1'] })], { version: 2 }));
    await waitFor('a new epoch for acme', async () => (await tableKey(A)) !== tA, 30_000);
    const tA2 = await tableKey(A);
    // h1's new endpoint (after h2 left) is in the new table only.
    await waitFor('the new table holds h1', async () => (await table(A))?.nodes.h1 !== undefined, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    watchers.length = 0;
    await wTable.cancel().catch(() => undefined);
    await wPointer.cancel().catch(() => undefined);
    await (wPrefix as { cancel(): Promise<void> } | null)?.cancel().catch(() => undefined);
    cases.push({ who: 'h2 (a member that left)', attempt: "see the new table through a watch on the network's whole prefix, opened as a member", expect: 'refused', got: wide.some((x) => x.startsWith('Put') && x.includes(tA2)) ? 'allowed' : 'refused', detail: wide.join('; ').slice(0, 200) });
    cases.push({ who: 'h2 (a member that left)', attempt: 'see a later table through the watch it opened as a member', expect: 'refused', got: seen.some((x) => x.startsWith('Put')) ? 'allowed' : 'refused', detail: seen.join('; ').slice(0, 160) });
    cases.push({ who: 'h2 (a member that left)', attempt: 'learn the members through the pointer watch it opened as a member', expect: 'refused', got: pointers.some((x) => x.includes('h1')) ? 'allowed' : 'refused', detail: pointers.join('; ').slice(0, 160) });
    await attempt('h2 (a member that left)', `read the new table ${tA2}`, () => asH2.get(tA2).string());
    await attempt('h2 (a member that left)', `watch the new table ${tA2}`, async () => {
      const w = await asH2.watch().key(tA2).create();
      await w.cancel();
    });

    // h1 signs a status claiming to be hidden in globex's network too, naming h3 as its direct peer; and (the
    // control: its report was taken) a new endpoint of its own in acme's.
    const own = (h1.link.status.candidates ?? []).map((n) => (n.networkId === A ? { ...n, local: ['192.0.2.77:1'] } : n));
    h1.link.status.candidates = [...own, { networkId: G, ipRange: '10.9.0.0/16', hidden: true, directPeers: ['h3'], via: 'pa', local: ['192.0.2.66:1'], observed: {} }];
    await (h1.link as unknown as { writeStatus(force: boolean): Promise<boolean> }).writeStatus(false);
    await waitFor("h1's report taken (after its hold)", async () => (await table(A))?.nodes.h1?.local.join() === '192.0.2.77:1', 30_000);
    cases.push({ who: 'h1 (member)', attempt: `claim to be hidden in ${G} (globex) in its signed status`, expect: 'refused', got: (await members(G)) === 'h3' ? 'refused' : 'allowed', detail: await members(G) });
    cases.push({ who: 'h1 (member)', attempt: 'reach h3 with a candidate it claims', expect: 'refused', got: JSON.stringify(h3.bed.agent.paths!.views()).includes('192.0.2.66') ? 'allowed' : 'refused' });

    const exposures = exposed();
    assert.deepEqual(exposures, []);
    assert.equal(cases.length, 18);
  } finally {
    await nodes.close();
    await bed.close();
  }
});
