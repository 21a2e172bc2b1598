// Rosters on a real etcd with TLS, client certificates and RBAC (src/control/roster.ts, docs/control-plane.md): a
// member's part no longer carries every member's subnet and name; the controller writes each member's roster entry
// once per network under roster/<network>/<epoch>/, grants read on that epoch to the network's members only, and
// each member's signed part says how many entries the roster holds and their SHA-256. acme's network has the public
// pa and pb and the hidden h1; globex's has pa and the hidden h4.
// Checked: the agents end up with every member's subnet and name, from parts that carry none of them; then, as each
// adversary:
//   - a node of another network (h4): cannot read or watch acme's roster;
//   - a member (h1): reads its own network's roster (the control), cannot write it nor read globex's;
//   - a member that leaves (pb, dropped by version 2): the watch it opened as a member shows nothing of the new
//     epoch; it cannot read or watch the new one; the old epoch's keys are gone;
//   - a writer of etcd (root, as a node that escalated would be): an entry added to the roster, one altered
//     (another subnet for pa), or two swapped (pa's and h1's: same count and hash of values) holds the next part
//     back (E_ROSTER_PENDING) and never reaches the node; once the forgery is gone, the part applies.
// Each attempt is a case; one that gets through is an exposure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blueprint, net } from '../helpers/fixtures.ts';
import { controlBed, nodeClients, waitFor, type BedAgent } from '../helpers/control-bed.ts';
import { etcdAvailable } from '../helpers/etcd.ts';
import { leaverCases, trustCases } from '../helpers/trust-cases.ts';
import type { Etcd3 } from '../../src/control/index.ts';
import { networkId } from '../../src/plan/planner.ts';
import { ROSTER_HINT } from '../../src/control/roster.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';

const netOf = (a: BedAgent) => a.bed.state.blueprint('acme', 'shop')?.part.networks[0];
const names = (a: BedAgent) => Object.keys(netOf(a)?.names?.nodes ?? {}).join(',');

test('rosters: one entry per member, read only by the network\'s members, taken only as the signed part says', { skip, timeout: 120_000 }, async () => {
  const bed = await controlBed({ rbac: true, tenants: ['acme', 'globex'] });
  const { cases, attempt, exposures: exposed } = trustCases();
  const nodes = nodeClients(bed);
  const { connect, watchers } = nodes;
  try {
    const k = bed.keys;
    await bed.controller();
    const pa = await bed.agent('pa', ['203.0.113.1']);
    const pb = await bed.agent('pb', ['203.0.113.2']);
    const h1 = await bed.agent('h1', []);
    await bed.agent('h4', []);
    await bed.submit(blueprint([net({ nodes: ['pa', 'pb', 'h1'] })]));
    await bed.submit(blueprint([net({ nodes: ['pa', 'h4'], ipRange: '10.9.0.0/16' })], { tenant: 'globex', name: 'web' }));
    const A = networkId('acme', 'shop', 'net');
    const G = networkId('globex', 'web', 'net');
    // The members' entries (a new epoch also holds its hint, `_from`: src/control/roster.ts).
    const rosterKeys = async (id: string) => (await bed.client.getAll().prefix(`${k.rosters()}${id}/`).keys()).filter((x) => !x.endsWith(`/${ROSTER_HINT}`)).sort();
    await waitFor('every acme member knows every member by name', () => [pa, pb, h1].every((a) => names(a) === 'h1,pa,pb'), 30_000);

    // One entry per member, one epoch; the parts carry no member's subnet or name.
    const keysA = await rosterKeys(A);
    const epochA = k.parseRosterKey(keysA[0])!.epoch;
    assert.deepEqual(keysA, ['h1', 'pa', 'pb'].map((n) => k.rosterEntry(A, epochA, n)));
    assert.equal((await rosterKeys(G)).length, 2);
    const h1Part = await bed.client.getAll().prefix(k.part({ node: 'h1', tenant: 'acme', blueprint: 'shop' })).keys();
    const suffixes = h1Part.map((x) => x.slice(k.part({ node: 'h1', tenant: 'acme', blueprint: 'shop' }).length)).sort();
    assert.deepEqual(suffixes.filter((s) => s.startsWith('subnets/') || s.startsWith('names/')), ['names/net'], suffixes.join(' '));
    // What the agent applied: every member's subnet, as the plan has them.
    const subnets = [pa, pb, h1].map((a) => netOf(a)!.resource.subnet).sort();
    for (const a of [pa, pb, h1]) assert.deepEqual(netOf(a)!.subnets, subnets);

    const asH1 = connect('h1');
    const asPb = connect('pb');
    const asH4 = connect('h4');
    const prefixA = k.rosterPrefix(A, epochA);
    const present = (v: string | null) => (v === null ? Promise.reject(new Error('absent')) : v);
    const list = (c: Etcd3, prefix: string) => c.getAll().prefix(prefix).keys().then((x) => (x.length ? x : Promise.reject(new Error('empty'))));
    await attempt('h1 (member)', `read ${prefixA} (its network's roster)`, () => list(asH1, prefixA), 'allowed');
    await attempt('h1 (member)', `put ${prefixA}hx`, () => asH1.put(`${prefixA}hx`).value('{}'));
    await attempt('h1 (member)', `put ${prefixA}pa (another member's entry)`, () => asH1.put(`${prefixA}pa`).value('{}'));
    await attempt('h1 (member)', `delete ${prefixA}pa`, () => asH1.delete().key(`${prefixA}pa`));
    const [gKey] = await rosterKeys(G);
    await attempt('h1 (member)', `read ${gKey} (another tenant's network)`, () => asH1.get(gKey).string().then(present));
    await attempt('h1 (member)', `read the prefix ${k.rosters()}`, () => list(asH1, k.rosters()));
    await attempt('h4 (member elsewhere)', `read ${prefixA}`, () => list(asH4, prefixA));
    await attempt('h4 (member elsewhere)', `watch ${prefixA}`, async () => {
      const w = await asH4.watch().prefix(prefixA).create();
      await w.cancel();
    });

    // A member that leaves: pb watches the roster while it may, then version 2 drops it. pa and h1 take the new
    // epoch from the one they hold and its hint (no whole read: src/control/roster.ts).
    const reads = () => [pa, h1].map((a) => ({ ...a.link.rosterReads }));
    const before = reads();
    const { prefix: prefixA2, epoch: epochA2 } = await leaverCases({
      who: 'pb (a member that left)',
      client: asPb,
      prefix: prefixA,
      watchers,
      cases,
      attempt,
      leave: async () => {
        await bed.submit(blueprint([net({ nodes: ['pa', 'h1'] })], { version: 2 }));
        await waitFor('pa and h1 forget pb', () => names(pa) === 'h1,pa' && names(h1) === 'h1,pa', 30_000);
        const keysA2 = await rosterKeys(A);
        const epochA2 = k.parseRosterKey(keysA2[0])!.epoch;
        assert.notEqual(epochA2, epochA, 'a new epoch when a member leaves');
        assert.deepEqual(keysA2, ['h1', 'pa'].map((n) => k.rosterEntry(A, epochA2, n)), 'the old epoch is gone');
        return { epoch: epochA2, prefix: k.rosterPrefix(A, epochA2) };
      },
    });

    assert.deepEqual(
      reads().map((r, i) => [r.whole - before[i].whole, r.derived - before[i].derived]),
      [
        [0, 1],
        [0, 1],
      ],
      'pa and h1: the new epoch from the hint, not read whole',
    );
    assert.deepEqual(JSON.parse((await bed.client.get(`${prefixA2}${ROSTER_HINT}`).string())!), {
      from: epochA,
      left: ['pb'],
      n: 2,
      sha256: JSON.parse((await bed.client.get(`${k.part({ node: 'pa', tenant: 'acme', blueprint: 'shop' })}net/net`).string())!).roster.sha256,
    });
    assert.ok(epochA2);

    // A writer of etcd adds an entry, then alters one: the next part waits, and nothing forged reaches the node.
    const forge = async (what: string, key: string, value: (old: string) => string) => {
      const old = (await bed.client.get(key).string()) ?? JSON.stringify({ subnet: '10.1.99.0/24', name: { ip: '10.1.99.1' } });
      await bed.client.put(key).value(value(old));
      const gen = h1.generation();
      const version = 3 + cases.filter((c) => c.who.startsWith('a writer')).length;
      await bed.submit(blueprint([net({ nodes: ['pa', 'h1'], egress: version % 2 === 1 })], { version }));
      await waitFor(`h1 holds version ${version} back (${what})`, () => h1.link.status.blueprints['acme/shop']?.problems.some((p) => p.code === 'E_ROSTER_PENDING'), 20_000);
      await new Promise((r) => setTimeout(r, 600)); // past a retry of the part (500 ms in the bed)
      const held = h1.generation() === gen && names(h1) === 'h1,pa' && !netOf(h1)!.subnets.includes('10.1.99.0/24');
      cases.push({ who: 'a writer of etcd', attempt: `${what}: make h1 take the forged roster`, expect: 'refused', got: held ? 'refused' : 'allowed', detail: `${names(h1)} ${netOf(h1)!.subnets.join(' ')} gen ${gen}→${h1.generation()}` });
      // Undone: the part applies.
      if (key.endsWith('/hx')) await bed.client.delete().key(key);
      else await bed.client.put(key).value(old);
      await waitFor(`h1 applies version ${version} once the forgery is gone`, () => h1.generation() > gen && names(h1) === 'h1,pa', 20_000);
    };
    await forge('an added entry', `${prefixA2}hx`, (old) => old);
    const paEntry = `${prefixA2}pa`;
    await forge("pa's entry with another subnet", paEntry, (old) => JSON.stringify({ ...(JSON.parse(old) as object), subnet: '10.1.99.0/24' }));
    assert.deepEqual(netOf(h1)!.subnets, [netOf(pa)!.resource.subnet, netOf(h1)!.resource.subnet].sort(), "h1 holds pa's true subnet");
    // Swapped keys keep the count and the hash of the values (found by review: each value names its node now).
    {
      const h1Entry = `${prefixA2}h1`;
      const [vPa, vH1] = [(await bed.client.get(paEntry).string())!, (await bed.client.get(h1Entry).string())!];
      await bed.client.put(paEntry).value(vH1);
      await bed.client.put(h1Entry).value(vPa);
      const gen = pa.generation();
      const paName = netOf(pa)!.names!.nodes.pa.ip;
      await bed.submit(blueprint([net({ nodes: ['pa', 'h1'], egress: true })], { version: 5 }));
      await waitFor('pa holds version 5 back (swapped entries)', () => pa.link.status.blueprints['acme/shop']?.problems.some((p) => p.code === 'E_ROSTER_PENDING'), 20_000);
      await new Promise((r) => setTimeout(r, 600));
      const held = pa.generation() === gen && netOf(pa)!.names!.nodes.pa.ip === paName;
      cases.push({ who: 'a writer of etcd', attempt: "swap pa's and h1's roster entries: make pa take h1's name for pa", expect: 'refused', got: held ? 'refused' : 'allowed', detail: `pa → ${netOf(pa)!.names!.nodes.pa.ip} gen ${gen}→${pa.generation()}` });
      await bed.client.put(paEntry).value(vPa);
      await bed.client.put(h1Entry).value(vH1);
      await waitFor('pa applies version 5 once the entries are back', () => pa.generation() > gen && netOf(pa)!.names!.nodes.pa.ip === paName, 20_000);
    }

    const exposures = exposed();
    assert.deepEqual(exposures, []);
    assert.equal(cases.length, 14);
  } finally {
    await nodes.close();
    await bed.close();
  }
});
