// A restarted agent adopts the direct paths its predecessor proved (found in the soak: seed 21, kill-agent of a
// hidden node whose neighbour behind the same NAT was direct to it; the restarted side took the subnet back to
// the relay while the other kept sending direct, and the pair was wrong for 80 s until a rekey).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathManager, type PeerCounters } from '../../src/agent/paths.ts';
import type { DesiredNetwork } from '../../src/agent/ports.ts';
import { directPeerAllowedIps, PATH_PARAMS as P } from '../../topology/paths.ts';
import { part, planFor } from '../helpers/agent-fixtures.ts';
import { blueprint, net } from '../helpers/fixtures.ts';

const plan = planFor(blueprint([net({ nodes: ['pa', 'h1', 'h2'] })]), ['pa', { id: 'h1' }, { id: 'h2' }]);
const n = part(plan, 'h1').networks[0];
const h1 = structuredClone(plan.networks[0].resources.find((r) => r.node === 'h1')!);
const h2Peer = h1.peers.find((p) => p.node === 'h2')!;
const desired: DesiredNetwork = { tenant: 'acme', blueprint: 'shop', networkId: n.id, networkName: n.name, ipRange: n.ipRange, egress: false, resource: h1 };
const T0 = 1_700_000_000_000;

function manager(device: Partial<PeerCounters>) {
  const clock = { now: T0 };
  const events: string[] = [];
  const counters: PeerCounters = { publicKey: h2Peer.publicKey, rxBytes: 5000, latestHandshake: Math.floor((T0 - 10_000) / 1000), endpoint: '198.51.100.7:51820', ...device };
  const m = new PathManager({
    now: () => clock.now,
    desired: () => [desired],
    read: async () => [{ ...counters }],
    setPeers: async () => ['set'],
    event: (_l, kind) => void events.push(kind),
  });
  return { m, clock, counters, events };
}

const onH2 = (m: PathManager) => m.effective(desired).resource.peers.find((p) => p.node === 'h2')!;

test('a direct peer holding the subnet halves with a live session is adopted as direct: the first reconcile keeps it', async () => {
  const t = manager({ allowedIps: directPeerAllowedIps(h2Peer) });
  assert.deepEqual(onH2(t.m).allowedIps, [], 'before adoption the plan alone puts the subnet on the relay');
  assert.equal(await t.m.adopt(), 1);
  assert.deepEqual(t.events, ['path.adopted']);
  assert.deepEqual(onH2(t.m).allowedIps, directPeerAllowedIps(h2Peer));
  assert.equal(onH2(t.m).persistentKeepalive, P.directKeepalive);
  assert.equal(onH2(t.m).endpoint, null, 'the endpoint WireGuard learnt is left alone');
  assert.equal(t.m.views()[0].path, 'direct');
  assert.equal(await t.m.adopt(), 0, 'adopted once');
  // Packets keep it direct; silence longer than the stale time hands it back to the relay.
  t.clock.now += 2000;
  t.counters.rxBytes += 148;
  await t.m.tick();
  assert.equal(t.m.views()[0].path, 'direct');
  t.clock.now += P.staleMs + 1000;
  await t.m.tick();
  assert.equal(t.m.views()[0].path, 'relay');
  assert.equal(t.m.views()[0].reason, 'stale');
  assert.deepEqual(onH2(t.m).allowedIps, []);
});

test('not adopted: no live session, one half only, a probing peer, or a driver that reads no allowed-ips', async () => {
  const halves = directPeerAllowedIps(h2Peer);
  const cases: [string, Partial<PeerCounters>][] = [
    ['session older than 180 s', { allowedIps: halves, latestHandshake: Math.floor((T0 - 181_000) / 1000) }],
    ['never a handshake', { allowedIps: halves, latestHandshake: 0 }],
    ['a handshake an hour in the future (the clock stepped back)', { allowedIps: halves, latestHandshake: Math.floor((T0 + 3_600_000) / 1000) }],
    ['one half', { allowedIps: [halves[0]] }],
    ['probing (no subnet on the peer)', { allowedIps: [] }],
    ['halves plus something else', { allowedIps: [...halves, '10.99.0.0/24'] }],
    ['no allowed-ips read', {}],
  ];
  for (const [what, device] of cases) {
    const t = manager(device);
    assert.equal(await t.m.adopt(), 0, what);
    assert.deepEqual(onH2(t.m).allowedIps, [], what);
  }
});
