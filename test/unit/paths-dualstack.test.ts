// Direct paths on a dual-stack network (issue #20): a move takes the other hidden node's IPv4 AND IPv6 subnet
// off the relay and onto the direct peer in one `wg set` on that one peer, and back; the relay's entry is never
// touched (the halves are more specific). Exact argv on the fake OS; adoption needs both families' halves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Driver } from '../../netns/index.ts';
import { PathManager, type PeerCounters } from '../../src/agent/paths.ts';
import type { DesiredNetwork } from '../../src/agent/ports.ts';
import type { Peer } from '../../src/plan/types.ts';
import { directAllowedIps, directPeerAllowedIps, PATH_PARAMS as P, withPaths, type DirectPeerConfig } from '../../topology/paths.ts';
import { FakeOs } from '../helpers/fake-os.ts';
import { handPlan } from '../helpers/plan.ts';

const stateDir = mkdtempSync(join(tmpdir(), 'zmesh-paths6-'));
test.after(() => rmSync(stateDir, { recursive: true, force: true }));

const ID = 'pathsdual1';
const net = handPlan({
  ipRange: '10.40.0.0/16',
  ipv6Range: 'fd00:40::/48',
  networkId: ID,
  nodes: [
    { node: 'a', underlay: '198.51.100.1' },
    { node: 'h1', hidden: true, accessNode: 'a' },
    { node: 'h2', hidden: true, accessNode: 'a' },
  ],
  seed: 'paths-dual',
});
const h1 = structuredClone(net.desired.get('h1')!);
const h2Key = net.desired.get('h2')!.resource.publicKey;
// The direct peer as the planner emits it for a pair of hidden nodes: no allowed-ips, both subnets named.
const direct: Peer = { node: 'h2', kind: 'node', publicKey: h2Key, endpoint: null, allowedIps: [], persistentKeepalive: null, directSubnet: '10.40.3.0/24', directSubnet6: 'fd00:40:0:3::/64' };
h1.resource.peers.push(direct);
h1.resource.hidden = true;
const relayKey = h1.resource.peers[0].publicKey;
const HALVES = ['10.40.3.0/25', '10.40.3.128/25', 'fd00:40:0:3::/65', 'fd00:40:0:3:8000::/65'];

test('the halves of an IPv6 subnet; a direct peer takes both families, IPv4 first', () => {
  assert.deepEqual(directAllowedIps('fd00:40:0:3::/64'), ['fd00:40:0:3::/65', 'fd00:40:0:3:8000::/65']);
  assert.deepEqual(directAllowedIps('fd00:40:0:3::/120'), ['fd00:40:0:3::/121', 'fd00:40:0:3::80/121']);
  assert.deepEqual(directAllowedIps('fd00:40:0:3::5/128'), ['fd00:40:0:3::5/128']);
  assert.deepEqual(directPeerAllowedIps(direct), HALVES);
  assert.deepEqual(directPeerAllowedIps({ directSubnet: '10.40.3.0/24' }), ['10.40.3.0/25', '10.40.3.128/25'], 'IPv4-only as before');
  const on = (c: DirectPeerConfig | null) => withPaths(h1.resource.peers, c ? new Map([['h2', c]]) : new Map()).find((p) => p.node === 'h2')!;
  assert.deepEqual(on({ endpoint: null, forceEndpoint: false, persistentKeepalive: P.directKeepalive, direct: true }).allowedIps, HALVES);
  assert.deepEqual(on({ endpoint: '198.51.100.9:4000', forceEndpoint: true, persistentKeepalive: P.probeKeepalive, direct: false }).allowedIps, [], 'probing: nothing moved yet');
  assert.deepEqual(on(null).allowedIps, []);
  // The relay keeps its planned entry in both families whatever the path.
  assert.deepEqual(withPaths(h1.resource.peers, new Map())[0].allowedIps, ['10.40.1.0/24', '10.40.3.0/24', 'fd00:40:0:1::/64', 'fd00:40:0:3::/64']);
});

test('a move is ONE `wg set` on the direct peer with both families; back to the relay likewise', async () => {
  const os = new FakeOs();
  const driver = new Driver({ runner: os, backend: 'kernel', stateDir, socketDir: join(stateDir, 'wg'), clock: () => 1_700_000_000_000 });
  const relayed = withPaths(h1.resource.peers, new Map());
  const r = await driver.apply([{ ...h1, resource: { ...h1.resource, peers: relayed } }], net.identity.get('h1')!);
  assert.deepEqual(os.unexpected, []);
  assert.ok(r.ok, JSON.stringify(r.resources[0].failures));
  const wg = () => os.namespaces.get(`n-${ID}`)!.links.get(`w-${ID}`)!.wg!;
  assert.deepEqual(wg().peers.get(h2Key)!.allowedIps, []);

  os.commands.length = 0;
  const moved = withPaths(h1.resource.peers, new Map([['h2', { endpoint: null, forceEndpoint: false, persistentKeepalive: P.directKeepalive, direct: true }]]));
  const lines = await driver.setPeers(ID, moved);
  const writes = os.commands.filter((c) => c.mutating);
  // The driver's canonical order (netns/layout.ts normalizePeers: sorted as text, so IPv4 before the ULA).
  const inWg = '10.40.3.0/25,10.40.3.128/25,fd00:40:0:3:8000::/65,fd00:40:0:3::/65';
  assert.deepEqual(writes.map((c) => c.argv), [['wg', 'set', `w-${ID}`, 'peer', h2Key, 'persistent-keepalive', String(P.directKeepalive), 'allowed-ips', inWg]]);
  assert.deepEqual(lines, [`peer update ${h2Key} allowed-ips ${inWg} keepalive ${P.directKeepalive}`]);
  assert.deepEqual([...wg().peers.get(h2Key)!.allowedIps].sort(), [...HALVES].sort());
  assert.deepEqual(wg().peers.get(relayKey)!.allowedIps, ['10.40.1.0/24', '10.40.3.0/24', 'fd00:40:0:1::/64', 'fd00:40:0:3::/64'], 'the relay untouched');
  os.commands.length = 0;
  assert.deepEqual(await driver.setPeers(ID, moved), [], 'the same paths again: nothing to do');
  assert.equal(os.commands.filter((c) => c.mutating).length, 0);

  const back = await driver.setPeers(ID, withPaths(h1.resource.peers, new Map()));
  assert.deepEqual(os.commands.filter((c) => c.mutating).map((c) => c.argv), [['wg', 'set', `w-${ID}`, 'peer', h2Key, 'persistent-keepalive', 'off', 'allowed-ips', '']]);
  assert.deepEqual(back, [`peer update ${h2Key} allowed-ips (none) keepalive off`]);
  assert.deepEqual(wg().peers.get(h2Key)!.allowedIps, []);
});

test('adoption after a restart needs both families\' halves on the direct peer', async () => {
  const T0 = 1_700_000_000_000;
  const desired: DesiredNetwork = { tenant: 'acme', blueprint: 'shop', networkId: ID, networkName: 'net', ipRange: '10.40.0.0/16', egress: false, resource: h1.resource };
  const adopt = async (allowedIps: string[]) => {
    const counters: PeerCounters = { publicKey: h2Key, rxBytes: 5000, latestHandshake: Math.floor((T0 - 10_000) / 1000), endpoint: '198.51.100.7:51820', allowedIps };
    const m = new PathManager({ now: () => T0, desired: () => [desired], read: async () => [counters], setPeers: async () => [], event: () => undefined });
    const n = await m.adopt();
    return { n, peer: m.effective(desired).resource.peers.find((p) => p.node === 'h2')! };
  };
  const both = await adopt([...HALVES].reverse());
  assert.equal(both.n, 1);
  assert.deepEqual(both.peer.allowedIps, HALVES);
  assert.equal((await adopt(HALVES.slice(0, 2))).n, 0, 'IPv4 halves alone: not a dual-stack direct path');
});

test('back to the relay with a reset: the direct peer is removed and added again in ONE `wg set` (its session gone)', async () => {
  const os = new FakeOs();
  const driver = new Driver({ runner: os, backend: 'kernel', stateDir, socketDir: join(stateDir, 'wg-reset'), clock: () => 1_700_000_000_000 });
  await driver.apply([{ ...h1, resource: { ...h1.resource, peers: withPaths(h1.resource.peers, new Map()) } }], net.identity.get('h1')!);
  const moved = withPaths(h1.resource.peers, new Map([['h2', { endpoint: null, forceEndpoint: false, persistentKeepalive: P.directKeepalive, direct: true }]]));
  await driver.setPeers(ID, moved);
  const wg = () => os.namespaces.get(`n-${ID}`)!.links.get(`w-${ID}`)!.wg!;
  wg().peers.get(h2Key)!.latestHandshake = 1_699_999_990; // a live session
  os.commands.length = 0;
  const back = await driver.setPeers(ID, withPaths(h1.resource.peers, new Map()), [h2Key, 'not-a-peer-of-this-network=']);
  assert.deepEqual(os.commands.filter((c) => c.mutating).map((c) => c.argv), [['wg', 'set', `w-${ID}`, 'peer', h2Key, 'remove', 'peer', h2Key]]);
  assert.deepEqual(back, [`peer remove ${h2Key}`, `peer add ${h2Key}`]);
  const p = wg().peers.get(h2Key)!;
  assert.deepEqual([p.allowedIps, p.keepalive, p.latestHandshake], [[], null, 0], 'a fresh peer: no subnet, no keepalive, no session');
  assert.deepEqual(wg().peers.get(relayKey)!.allowedIps, ['10.40.1.0/24', '10.40.3.0/24', 'fd00:40:0:1::/64', 'fd00:40:0:3::/64'], 'the relay untouched');
  os.commands.length = 0;
  assert.deepEqual(await driver.setPeers(ID, withPaths(h1.resource.peers, new Map())), [], 'then a no-op');
  assert.equal(os.commands.filter((c) => c.mutating).length, 0);
});

test('the path manager resets the direct peer when a direct path goes stale, not after a failed probe', async () => {
  const T0 = 1_700_000_000_000;
  let now = T0;
  let counters: PeerCounters = { publicKey: h2Key, rxBytes: 5000, latestHandshake: Math.floor((T0 - 10_000) / 1000), endpoint: '198.51.100.7:51820', allowedIps: HALVES };
  const desired: DesiredNetwork = { tenant: 'acme', blueprint: 'shop', networkId: ID, networkName: 'net', ipRange: '10.40.0.0/16', egress: false, resource: h1.resource };
  const calls: { peers: string[]; reset: readonly string[] }[] = [];
  const m = new PathManager({
    now: () => now,
    desired: () => [desired],
    read: async () => [counters],
    setPeers: async (_id, peers, reset = []) => {
      calls.push({ peers: peers.find((p) => p.node === 'h2')!.allowedIps, reset });
      return [];
    },
    event: () => undefined,
  });
  assert.equal(await m.adopt(), 1);
  // Silence past the stale time: back to the relay, and the session goes.
  now = T0 + P.staleMs + 1000;
  await m.tick();
  assert.deepEqual(calls, [{ peers: [], reset: [h2Key] }]);
  // A candidate arrives after the backoff: probing (no reset), then the window ends without a proof: relay, no reset.
  counters = { ...counters, rxBytes: 0, latestHandshake: 0, allowedIps: [] };
  assert.deepEqual(m.setCandidates({ networks: { [ID]: { h2: ['198.51.100.9:4000'] } } }), []);
  now += P.backoffBaseMs + 1000;
  await m.tick();
  assert.deepEqual(calls.at(-1), { peers: [], reset: [] }, 'relay → probing: no reset');
  now += P.probeWindowMs + 1000;
  await m.tick();
  assert.deepEqual(calls.at(-1), { peers: [], reset: [] }, 'probing → relay: no reset (the other end may be probing on that session)');
  assert.equal(calls.length, 3);
});
