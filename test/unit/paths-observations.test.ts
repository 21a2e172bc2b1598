// An access node's observations of its hidden peers (src/agent/observations.ts): what GET /v1/candidates reports
// as `observed`, kept by the agent and read from the device at most once per OBSERVE_MS per network, never per
// request. Exact expected values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessObservations, hiddenPeersOf, observationsDue, observedEndpoints, OBSERVE_MS, type Observation } from '../../src/agent/observations.ts';
import type { PeerCounters } from '../../src/agent/paths.ts';
import type { DesiredNetwork } from '../../src/agent/ports.ts';
import { planFor } from '../helpers/agent-fixtures.ts';
import { blueprint, net } from '../helpers/fixtures.ts';

const plan = planFor(blueprint([net({ nodes: ['pa', 'h1', 'h2'] })]), ['pa', { id: 'h1' }, { id: 'h2' }]);
const resource = (node: string) => structuredClone(plan.networks[0].resources.find((r) => r.node === node)!);
const desired = (networkId: string, node: string): DesiredNetwork => ({ tenant: 'acme', blueprint: 'shop', networkId, networkName: 'net', ipRange: plan.networks[0].ipRange, egress: false, resource: resource(node) });
const pa = resource('pa');
const key = (node: string) => pa.peers.find((p) => p.node === node)!.publicKey;
const NOW_S = 1_700_000_000;

test('hiddenPeersOf: the node peers without a planned endpoint of a public resource; none on a hidden one', () => {
  assert.deepEqual(hiddenPeersOf(desired('n1', 'pa')).map((p) => p.node), ['h1', 'h2']);
  assert.deepEqual(hiddenPeersOf(desired('n1', 'h1')), [], 'h1 is hidden (its access node pa has an endpoint, h2 is a direct peer)');
});

test('observedEndpoints: only an endpoint with a handshake within 180 s, only for planned keys', () => {
  const peers = [
    { node: 'h1', publicKey: 'K1' },
    { node: 'h2', publicKey: 'K2' },
    { node: 'h3', publicKey: 'K3' },
    { node: 'h4', publicKey: 'K4' },
    { node: 'h5', publicKey: 'K5' },
  ];
  const seen: Observation[] = [
    { publicKey: 'K1', endpoint: '198.51.100.7:40001', latestHandshake: NOW_S - 10 },
    { publicKey: 'K2', endpoint: '198.51.100.8:40001', latestHandshake: NOW_S - 180 },
    { publicKey: 'K3', endpoint: '198.51.100.9:40001', latestHandshake: 0 },
    { publicKey: 'K4', endpoint: null, latestHandshake: NOW_S - 1 },
    { publicKey: 'K5', endpoint: '[2001:db8::5]:40001', latestHandshake: NOW_S - 179 },
    { publicKey: 'other', endpoint: '198.51.100.10:40001', latestHandshake: NOW_S - 1 },
  ];
  assert.deepEqual(observedEndpoints(peers, seen, NOW_S), { h1: '198.51.100.7:40001', h5: '[2001:db8::5]:40001' });
  assert.deepEqual(observedEndpoints(peers, seen, NOW_S + 171), {}, 'the same observations 171 s later: all too old');
  assert.deepEqual(observedEndpoints([], seen, NOW_S), {});
});

test('observationsDue: never read, read OBSERVE_MS ago or more, or read after now (clock stepped back)', () => {
  const T = 1_000_000;
  const readAt = new Map([
    ['a', T - OBSERVE_MS],
    ['b', T - OBSERVE_MS + 1],
    ['c', T],
    ['d', T + 5000],
  ]);
  assert.equal(OBSERVE_MS, 900);
  assert.deepEqual(observationsDue(['a', 'b', 'c', 'd', 'e'], readAt, T), ['a', 'd', 'e']);
  assert.deepEqual(observationsDue([], readAt, T), []);
});

test('AccessObservations: reads access networks only when due, keeps what the report formats, drops unplanned networks', async () => {
  const clock = { now: NOW_S * 1000 };
  const reads: string[] = [];
  const device: PeerCounters[] = [
    { publicKey: key('h1'), rxBytes: 1, latestHandshake: NOW_S - 5, endpoint: '198.51.100.7:40001', allowedIps: ['10.1.1.0/24'] },
    { publicKey: key('h2'), rxBytes: 1, latestHandshake: 0, endpoint: null },
    { publicKey: 'not-a-planned-key', rxBytes: 1, latestHandshake: NOW_S - 1, endpoint: '198.51.100.66:40001' },
  ];
  const o = new AccessObservations({
    now: () => clock.now,
    read: async (id) => {
      reads.push(id);
      if (id === 'gone') throw new Error('no such device');
      return device.map((c) => ({ ...c }));
    },
  });
  const n1 = desired('n1', 'pa');
  const n2 = desired('n2', 'pa');
  const hidden = desired('n3', 'h1');
  const broken = desired('gone', 'pa');

  assert.deepEqual(o.observed(n1, NOW_S), {}, 'not read yet: nothing observed');
  assert.equal(await o.refresh([n1, n2, hidden, broken]), 3);
  assert.deepEqual(reads, ['n1', 'n2', 'gone'], 'the hidden network is never read here (the path tick reads it)');
  assert.deepEqual(o.networks(), ['gone', 'n1', 'n2']);
  assert.deepEqual(o.observed(n1, NOW_S), { h1: '198.51.100.7:40001' });
  assert.deepEqual(o.observed(broken, NOW_S), {}, 'a device that cannot be read: nothing observed');

  // Within OBSERVE_MS nothing is read again, however often asked; the report keeps answering from the cache.
  device[1] = { ...device[1], latestHandshake: NOW_S, endpoint: '198.51.100.8:40001' };
  clock.now += OBSERVE_MS - 1;
  assert.equal(await o.refresh([n1, n2, hidden, broken]), 0);
  assert.equal(await o.refresh([n1, n2, hidden, broken]), 0);
  assert.deepEqual(o.observed(n1, NOW_S), { h1: '198.51.100.7:40001' });
  clock.now += 1;
  assert.equal(await o.refresh([n1, n2, hidden, broken]), 3);
  assert.deepEqual(o.observed(n2, NOW_S), { h1: '198.51.100.7:40001', h2: '198.51.100.8:40001' });
  // The 180 s window is judged at report time: a kept handshake ages out without another read.
  assert.deepEqual(o.observed(n2, NOW_S + 176), { h2: '198.51.100.8:40001' });

  // A network removed from the plan (or no longer an access network) drops out at the next refresh.
  reads.length = 0;
  clock.now += OBSERVE_MS;
  assert.equal(await o.refresh([n2, desired('n1', 'h1')]), 1);
  assert.deepEqual(reads, ['n2']);
  assert.deepEqual(o.networks(), ['n2']);
  assert.deepEqual(o.observed(n1, NOW_S), {});
});
