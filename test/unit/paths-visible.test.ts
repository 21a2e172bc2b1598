// Direct paths made visible (issue #15): `zmesh peers` (PATH column, --json), diagnose's "direct path" check
// and its relayed direct peers (no FAIL by design), the path gauges in /v1/metrics, and `lab graph`'s edges.
// Exact text throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { diagnose, directPathCheck, pingTarget, type Check } from '../../src/agent/diagnose.ts';
import { renderMetrics } from '../../src/agent/metrics.ts';
import type { PathView } from '../../src/agent/paths.ts';
import type { ActualNetwork, ActualPeer, DesiredNetwork } from '../../src/agent/ports.ts';
import type { NetworkSummary } from '../../src/agent/agent.ts';
import type { Peer } from '../../src/plan/types.ts';
import { peerLines, peerRows, PEER_HEADER, type NetworkDetail } from '../../src/cli/ops-commands.ts';
import { colour, table } from '../../src/cli/format.ts';
import { labToDot } from '../../labs/graph.ts';
import type { Layout } from '../../labs/layout.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { planFor } from '../helpers/agent-fixtures.ts';

const NOW_SEC = 1_700_000_000; // 2023-11-14T22:13:20Z
const NOW = NOW_SEC * 1000;
const ID = 'abcdefghij';
const k = colour(false);

const ACCESS = ['10.1.0.0/24', '10.1.2.0/23', '10.1.4.0/22'];
const peer = (node: string, over: Partial<Peer> = {}): Peer => ({ node, kind: 'node', publicKey: node.toUpperCase(), endpoint: null, allowedIps: [], persistentKeepalive: null, ...over });

// h1 (hidden, access node a) with five direct peers: h2 direct, h3 no handshake, h4 probing, h5 no candidate, h6 stale.
const desired: DesiredNetwork = {
  tenant: 'acme',
  blueprint: 'shop',
  networkId: ID,
  networkName: 'mesh',
  ipRange: '10.1.0.0/16',
  egress: false,
  resource: {
    node: 'h1',
    subnet: '10.1.1.0/24',
    gateway: '10.1.1.1',
    wgAddress: '10.1.1.254/32',
    listenPort: 51820,
    publicKey: 'H1',
    sealedPrivateKey: 'x',
    sealedTo: 'y',
    hidden: true,
    accessNode: 'a',
    peers: [
      peer('a', { endpoint: '203.0.113.10:51820', allowedIps: ACCESS, persistentKeepalive: 25 }),
      peer('h2', { directSubnet: '10.1.2.0/24', allowedIps: ['10.1.2.0/25', '10.1.2.128/25'], persistentKeepalive: 2 }),
      peer('h3', { directSubnet: '10.1.3.0/24' }),
      peer('h4', { directSubnet: '10.1.4.0/24', endpoint: '198.51.100.66:51820', persistentKeepalive: 1 }),
      peer('h5', { directSubnet: '10.1.5.0/24' }),
      peer('h6', { directSubnet: '10.1.6.0/24' }),
    ],
  },
};
const SUBNETS = ['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24', '10.1.3.0/24', '10.1.4.0/24', '10.1.5.0/24', '10.1.6.0/24'];

const wgPeer = (p: Peer, over: Partial<ActualPeer> = {}): ActualPeer => ({ publicKey: p.publicKey, endpoint: p.endpoint, allowedIps: p.allowedIps, latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: p.persistentKeepalive, ...over });
const [pa, p2, p3, p4, p5, p6] = desired.resource.peers;
const actual: ActualNetwork = {
  networkId: ID,
  namespace: `n-${ID}`,
  namespaceExists: true,
  interfaces: [{ name: `w-${ID}`, kind: 'wireguard', up: true, mtu: 1420, addresses: ['10.1.1.254/32'] }],
  routes: [{ dst: '10.1.0.0/16', dev: `w-${ID}` }],
  wireguard: {
    interface: `w-${ID}`,
    publicKey: 'H1',
    listenPort: 51820,
    peers: [
      wgPeer(pa, { latestHandshake: NOW_SEC - 12, rxBytes: 4096, txBytes: 2048 }),
      wgPeer(p2, { endpoint: '198.51.100.34:51820', latestHandshake: NOW_SEC - 3, rxBytes: 900, txBytes: 800 }),
      // No handshake on any candidate; WireGuard keeps the last endpoint it tried.
      wgPeer(p3, { endpoint: '198.51.100.35:51820' }),
      wgPeer(p4, { latestHandshake: NOW_SEC - 1, rxBytes: 92, txBytes: 148 }),
      wgPeer(p5),
      // The direct path went silent: an old session, no endpoint in use.
      wgPeer(p6, { endpoint: '198.51.100.36:51820', latestHandshake: NOW_SEC - 200, rxBytes: 5000, txBytes: 6000 }),
    ],
  },
  firewall: {},
};

const view = (node: string, over: Partial<PathView>): PathView => ({ networkId: ID, node, path: 'relay', probing: false, via: 'a', reason: null, since: NOW - 60_000, retryAt: null, candidates: [], endpoint: null, ...over });
const views: PathView[] = [
  view('h2', { path: 'direct', since: NOW - 125_000, candidates: ['198.51.100.34:51820'], endpoint: '198.51.100.34:51820' }),
  view('h3', { reason: 'no-handshake', retryAt: NOW + 40_000, candidates: ['198.51.100.35:51820', '192.168.1.7:51820'], endpoint: '198.51.100.35:51820' }),
  view('h4', { reason: 'probing', probing: true, since: NOW - 2000, candidates: ['198.51.100.66:51820'], endpoint: '198.51.100.66:51820' }),
  view('h5', { reason: 'no-candidate' }),
  view('h6', { reason: 'stale', since: NOW - 7000, retryAt: NOW + 3000, candidates: ['198.51.100.36:51820'], endpoint: '198.51.100.36:51820' }),
];

const pings: string[] = [];
const ping = async (addr: string) => {
  pings.push(addr);
  return addr === '10.1.6.1' ? { ok: false, rttMs: null } : { ok: true, rttMs: 1.25 };
};
const perPeer = (checks: Check[], node: string) => checks.filter((c) => c.name.startsWith(`peer ${node}: `)).map((c) => [c.verdict, c.name.slice(`peer ${node}: `.length), c.detail]);

test('diagnose: direct path check per direct peer; a relayed direct peer is pinged through the relay and never fails for its missing session', async () => {
  pings.length = 0;
  const d = await diagnose({ desired, subnets: SUBNETS, actual, expectedMtu: 1420, nowSec: NOW_SEC, ping, paths: views });
  assert.deepEqual(perPeer(d.checks, 'a'), [
    ['pass', 'configured', 'key A'],
    ['pass', 'allowed-ips', ACCESS.join(', ')],
    ['pass', 'endpoint', '203.0.113.10:51820'],
    ['pass', 'handshake', 'latest handshake 12s ago, rx 4096 B, tx 2048 B'],
    ['pass', 'reachability', 'ping 10.1.0.1: 1.25 ms'],
  ]);
  assert.deepEqual(perPeer(d.checks, 'h2'), [
    ['pass', 'direct path', 'direct to 198.51.100.34:51820 since 22:11:15 UTC, 2m 5s ago; 10.1.2.0/24 is off the relay'],
    ['pass', 'configured', 'key H2'],
    ['pass', 'allowed-ips', '10.1.2.0/25, 10.1.2.128/25'],
    ['pass', 'endpoint', '198.51.100.34:51820'],
    ['pass', 'handshake', 'latest handshake 3s ago, rx 900 B, tx 800 B'],
    // The halves take 10.1.2.1 off the access node: pinged on the direct path.
    ['pass', 'reachability', 'ping 10.1.2.1: 1.25 ms'],
  ]);
  assert.deepEqual(perPeer(d.checks, 'h3'), [
    ['warn', 'direct path', 'relayed via a: no handshake on any candidate (198.51.100.35:51820, 192.168.1.7:51820): a symmetric NAT or filtering on one side, or h3 is down; retried at 22:14:00 UTC (in 40s)'],
    ['pass', 'configured', 'key H3'],
    ['pass', 'allowed-ips', 'none (10.1.3.0/24 is relayed via a)'],
    ['skip', 'endpoint', '198.51.100.35:51820 (unused: relayed via a)'],
    ['skip', 'handshake', 'none: not needed while relayed via a'],
    ['pass', 'reachability', 'ping 10.1.3.1 (relayed via a): 1.25 ms'],
  ]);
  assert.deepEqual(perPeer(d.checks, 'h4'), [
    ['warn', 'direct path', 'probing 198.51.100.66:51820 (candidates: 198.51.100.66:51820); relayed via a meanwhile'],
    ['pass', 'configured', 'key H4'],
    ['pass', 'allowed-ips', 'none (10.1.4.0/24 is relayed via a)'],
    ['skip', 'endpoint', '198.51.100.66:51820 (probing)'],
    ['skip', 'handshake', 'latest handshake 1s ago, rx 92 B, tx 148 B (relayed via a)'],
    ['pass', 'reachability', 'ping 10.1.4.1 (relayed via a): 1.25 ms'],
  ]);
  assert.deepEqual(perPeer(d.checks, 'h5').slice(0, 1), [
    ['warn', 'direct path', 'relayed via a: no candidate endpoint of h5 known yet (the control plane has sent none: the lab carrier or the etcd controller sends them)'],
  ]);
  assert.deepEqual(perPeer(d.checks, 'h5').slice(3), [
    ['skip', 'endpoint', 'none: relayed via a'],
    ['skip', 'handshake', 'none: not needed while relayed via a'],
    ['pass', 'reachability', 'ping 10.1.5.1 (relayed via a): 1.25 ms'],
  ]);
  assert.deepEqual(perPeer(d.checks, 'h6'), [
    ['warn', 'direct path', 'relayed via a again: the direct path went silent at 22:13:13 UTC; retried at 22:13:23 UTC (in 3s)'],
    ['pass', 'configured', 'key H6'],
    ['pass', 'allowed-ips', 'none (10.1.6.0/24 is relayed via a)'],
    ['skip', 'endpoint', '198.51.100.36:51820 (unused: relayed via a)'],
    ['skip', 'handshake', 'latest handshake 3m 20s ago, rx 5000 B, tx 6000 B (relayed via a)'],
    // The one real failure: h6 cannot be reached even through the relay.
    ['fail', 'reachability', 'ping 10.1.6.1 (relayed via a): no reply'],
  ]);
  assert.deepEqual(d.firstFailure, { name: 'peer h6: reachability', verdict: 'fail', detail: 'ping 10.1.6.1 (relayed via a): no reply' });
  assert.deepEqual([...pings].sort(), ['10.1.0.1', '10.1.2.1', '10.1.3.1', '10.1.4.1', '10.1.5.1', '10.1.6.1']);
});

test('diagnose: one relayed pair passes overall; a direct path without a session fails like any peer; an agent without paths says so', async () => {
  const ok = async () => ({ ok: true, rttMs: 0.5 });
  const one = await diagnose({ desired, subnets: SUBNETS, actual, expectedMtu: 1420, nowSec: NOW_SEC, ping: ok, paths: views, peer: 'h3' });
  assert.equal(one.ok, true, JSON.stringify(one.checks));
  assert.deepEqual(one.checks.filter((c) => c.verdict === 'warn').map((c) => c.name), ['peer h3: direct path']);

  const noSession = { ...actual, wireguard: { ...actual.wireguard!, peers: actual.wireguard!.peers.map((p) => (p.publicKey === 'H2' ? { ...p, latestHandshake: 0 } : p)) } };
  const bad = await diagnose({ desired, subnets: SUBNETS, actual: noSession, expectedMtu: 1420, nowSec: NOW_SEC, ping: ok, paths: views, peer: 'h2' });
  assert.deepEqual(bad.firstFailure, { name: 'peer h2: handshake', verdict: 'fail', detail: 'no handshake yet: check the endpoint is reachable over UDP and keys match on both sides' });

  const plain = await diagnose({ desired, subnets: SUBNETS, actual, expectedMtu: 1420, nowSec: NOW_SEC, ping: ok, paths: null, peer: 'h5' });
  assert.equal(plain.ok, true);
  assert.deepEqual(plain.checks.find((c) => c.name === 'peer h5: direct path'), {
    name: 'peer h5: direct path',
    verdict: 'warn',
    detail: 'relayed via a: this agent does not try direct paths (its WireGuard driver reads no peer counters)',
  });
  // Allowed-ips out of step with the path (halves still on a relayed peer) is a real failure.
  const leftover = { ...actual, wireguard: { ...actual.wireguard!, peers: actual.wireguard!.peers.map((p) => (p.publicKey === 'H3' ? { ...p, allowedIps: ['10.1.3.0/25', '10.1.3.128/25'] } : p)) } };
  const lo = await diagnose({ desired, subnets: SUBNETS, actual: leftover, expectedMtu: 1420, nowSec: NOW_SEC, ping: ok, paths: views, peer: 'h3' });
  assert.deepEqual(lo.firstFailure, { name: 'peer h3: allowed-ips', verdict: 'fail', detail: 'configured 10.1.3.0/25,10.1.3.128/25, its path wants none (10.1.3.0/24 is relayed via a)' });
});

test('pingTarget: longest-prefix match over all peers; directPathCheck without a view', () => {
  // The access node relays 10.1.2.0/23; with h2's halves on h2, 10.1.2.1 goes to h2, not to a.
  const a = desired.resource.peers[0];
  assert.equal(pingTarget({ ...a, allowedIps: ['10.1.2.0/23'] }, SUBNETS, '10.1.1.0/24'), '10.1.2.1');
  assert.equal(pingTarget({ ...a, allowedIps: ['10.1.2.0/23'] }, SUBNETS, '10.1.1.0/24', [{ ...a, allowedIps: ['10.1.2.0/23'] }, desired.resource.peers[1]]), '10.1.3.1');
  assert.equal(pingTarget(desired.resource.peers[2], SUBNETS, '10.1.1.0/24', desired.resource.peers), null);
  assert.deepEqual(directPathCheck(desired.resource.peers[2], 'a', undefined, NOW), {
    verdict: 'warn',
    detail: 'relayed via a: no candidate endpoint of h3 known yet (the control plane has sent none: the lab carrier or the etcd controller sends them)',
  });
});

test('zmesh peers: PATH column, ALLOWED IPS and HEALTH of relayed direct peers; --json path, via, reason', () => {
  const d: NetworkDetail = { desired, actual, generation: 1, mtu: 1420 };
  const text = table([PEER_HEADER, ...peerRows(d, views, NOW_SEC, k)]);
  assert.equal(
    text,
    [
      'PEER  ENDPOINT             ALLOWED IPS                          PATH                                      HANDSHAKE  RX       TX       HEALTH',
      'a     203.0.113.10:51820   10.1.0.0/24,10.1.2.0/23,10.1.4.0/22  planned                                   12s ago    4.0 KiB  2.0 KiB  ok',
      'h2    198.51.100.34:51820  10.1.2.0/25,10.1.2.128/25            direct                                    3s ago     900 B    800 B    ok',
      'h3    198.51.100.35:51820  (relayed via a)                      relay via a (no handshake, retry in 40s)  never      0 B      0 B      relayed',
      'h4    198.51.100.66:51820  (relayed via a)                      relay via a (probing)                     1s ago     92 B     148 B    relayed',
      'h5    -                    (relayed via a)                      relay via a (no candidate)                never      0 B      0 B      relayed',
      'h6    198.51.100.36:51820  (relayed via a)                      relay via a (went stale, retry in 3s)     3m ago     4.9 KiB  5.9 KiB  relayed',
    ].join('\n'),
  );
  const lines = peerLines(d, views, NOW_SEC);
  assert.deepEqual(
    lines.map((l) => [l.peer, l.path, l.via, l.reason, l.retryAt]),
    [
      ['a', 'planned', null, null, null],
      ['h2', 'direct', 'a', null, null],
      ['h3', 'relay', 'a', 'no-handshake', NOW + 40_000],
      ['h4', 'relay', 'a', 'probing', null],
      ['h5', 'relay', 'a', 'no-candidate', null],
      ['h6', 'relay', 'a', 'stale', NOW + 3000],
    ],
  );
  assert.deepEqual(lines[1], {
    peer: 'h2',
    publicKey: 'H2',
    endpoint: '198.51.100.34:51820',
    allowedIps: ['10.1.2.0/25', '10.1.2.128/25'],
    configured: true,
    handshakeAgeSec: 3,
    rxBytes: 900,
    txBytes: 800,
    path: 'direct',
    via: 'a',
    reason: null,
    retryAt: null,
  });
  // An agent without GET /v1/paths: direct peers are relayed, reason unknown.
  assert.equal(peerRows(d, [], NOW_SEC, k)[2][3], 'relay via a');
  assert.equal(peerRows({ ...d, actual: null }, views, NOW_SEC, k)[2][7], 'missing');
});

test('metrics: path gauges for direct peers; a relayed direct peer is left out of zmesh_peer_up', () => {
  const networks: NetworkSummary[] = [
    { tenant: 'acme', blueprint: 'sh"op', name: 'mesh', id: ID, ipRange: '10.1.0.0/16', subnet: '10.1.1.0/24', listenPort: 51820, peers: 6, generation: 1, applied: true, lastError: null },
  ];
  const text = renderMetrics({
    node: 'h1',
    networks,
    actual: new Map([[ID, actual]]),
    peerNames: new Map([[ID, new Map(desired.resource.peers.map((p) => [p.publicKey, p.node]))]]),
    reconciles: 1,
    reconcileErrors: 0,
    last: null,
    nowSec: NOW_SEC,
    paths: views,
  });
  const family = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  const net = 'network="acme/sh\\"op/mesh"';
  assert.deepEqual(family('zmesh_peer_up'), [`zmesh_peer_up{${net},peer="a"} 1`, `zmesh_peer_up{${net},peer="h2"} 1`]);
  assert.deepEqual(family('zmesh_peer_path_direct'), ['h2', 'h3', 'h4', 'h5', 'h6'].map((p) => `zmesh_peer_path_direct{${net},peer="${p}"} ${p === 'h2' ? 1 : 0}`));
  assert.deepEqual(family('zmesh_peer_path_probing'), ['h2', 'h3', 'h4', 'h5', 'h6'].map((p) => `zmesh_peer_path_probing{${net},peer="${p}"} ${p === 'h4' ? 1 : 0}`));
  assert.equal(family('zmesh_peer_handshake_age_seconds').length, 6);
  assert.match(text, /^# HELP zmesh_peer_path_direct Whether a hidden node's direct peer is reached on a direct path \(1\) or through the access node \(0\)\.$/m);
  assert.match(text, /^# TYPE zmesh_peer_path_probing gauge$/m);
  execFileSync('promtool', ['check', 'metrics'], { input: text });
  // Public nodes: no views, empty families, every peer judged.
  const pub = renderMetrics({ node: 'a', networks, actual: new Map([[ID, actual]]), peerNames: new Map(), reconciles: 0, reconcileErrors: 0, last: null, nowSec: NOW_SEC });
  assert.equal(pub.split('\n').filter((l) => l.startsWith('zmesh_peer_up{')).length, 6);
  assert.equal(pub.split('\n').filter((l) => l.startsWith('zmesh_peer_path_')).length, 0);
});

test('lab graph: a direct hidden pair is drawn dashed and labelled direct; relayed pairs are not drawn', () => {
  const bp = blueprint([net({ nodes: ['a', 'h1', 'h2', 'h3'] })]);
  const plan = planFor(bp, ['a', { id: 'h1' }, { id: 'h2' }, { id: 'h3' }]);
  const id = plan.networks[0].id;
  const host = (name: string, i: number, nat: string | null) => ({
    name,
    role: 'node' as const,
    index: i,
    ns: `zl-t_n-${name}`,
    attach: nat ? { kind: 'nat' as const, nat } : { kind: 'internet' as const },
    address: nat ? `198.51.100.${i + 1}` : '203.0.113.10',
    prefix: nat ? 27 : 24,
    gateway: nat ? '198.51.100.1' : '203.0.113.1',
    upstreamNs: 'x',
    port: `p${i}`,
    shaping: {},
  });
  const layout = {
    lab: 't',
    internetNs: 'zl-t_inet',
    nats: [{ name: 'home', index: 1, ns: 'zl-t_r-home', wanAddress: '203.0.113.101', port: 'w1', lan: '198.51.100.0/27', lanGateway: '198.51.100.1', type: 'cone' as const }],
    nodes: [host('a', 1, null), host('h1', 2, 'home'), host('h2', 3, 'home'), host('h3', 4, 'home')],
    devices: [],
  } as unknown as Layout;
  const handshakes = new Map<string, number | null>([
    [`${id}|h1|a`, 5],
    [`${id}|a|h1`, 5],
    [`${id}|h1|h2`, 2],
    [`${id}|h2|h1`, 1],
    [`${id}|h1|h3`, null],
  ]);
  const edges = (dot: string) => dot.split('\n').filter((l) => /^ {2}"(a|h\d)" -- "(a|h\d)"/.test(l));
  // h1 says direct to h2 (h2's own view need not agree yet); h1–h3 and h2–h3 are relayed.
  const dot = labToDot({ layout, plans: [{ plan }], handshakes, direct: new Set([`${id}|h1|h2`]) });
  assert.deepEqual(edges(dot), [
    '  "a" -- "h1" [color=green3, style=solid, penwidth=2, label="acme/net"];',
    '  "a" -- "h2" [color=gray50, style=solid, penwidth=2, label="acme/net"];',
    '  "a" -- "h3" [color=gray50, style=solid, penwidth=2, label="acme/net"];',
    '  "h1" -- "h2" [color=green3, style=dashed, penwidth=2, label="acme/net direct"];',
  ]);
  // Without path views (every pair relayed) only the access node's tunnels are drawn.
  assert.deepEqual(
    edges(labToDot({ layout, plans: [{ plan }], handshakes })).map((l) => l.split(' [')[0]),
    ['  "a" -- "h1"', '  "a" -- "h2"', '  "a" -- "h3"'],
  );
});
