// The direct-path state machine (topology/paths.ts) with an injected clock: every transition, the proof,
// hysteresis and backoff, and a property test that every subnet resolves to exactly one peer at every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildMesh } from '../../topology/mesh.ts';
import { cidrExclude, formatCidr, parseCidr, sizeOf, type Cidr } from '../../topology/cidr.ts';
import { rng } from '../helpers/rng.ts';
import {
  directAllowedIps,
  directPeerConfig,
  initialPath,
  PATH_PARAMS as P,
  routeOf,
  stepPath,
  withPaths,
  type PathInput,
  type PathState,
} from '../../topology/paths.ts';

const C = ['192.168.1.20:51820', '198.51.100.7:40001'];

function run(s: PathState, inputs: Partial<PathInput> & { now: number }): PathState {
  return stepPath(s, { candidates: C, rxBytes: s.rx, handshakeAt: 0, ...inputs });
}

test('no candidate: the pair stays relayed and the direct peer is left idle', () => {
  let s = initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 });
  s = stepPath(s, { now: 1000, candidates: [], rxBytes: 0, handshakeAt: 0 });
  assert.equal(s.kind, 'relay');
  assert.equal(s.kind === 'relay' && s.reason, 'no-candidate');
  assert.deepEqual(directPeerConfig(s, []), { endpoint: null, forceEndpoint: false, persistentKeepalive: null, direct: false });
});

test('candidates arrive: probe the first one at once, with a forced endpoint and a short keepalive', () => {
  const s = run(initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: 500 });
  assert.equal(s.kind, 'probing');
  assert.deepEqual(directPeerConfig(s, C), { endpoint: C[0], forceEndpoint: true, persistentKeepalive: P.probeKeepalive, direct: false });
});

test('a candidate without an answer for the probe window: the next one; all failed: relay with doubling backoff', () => {
  let s = run(initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: 0 });
  s = run(s, { now: P.probeWindowMs - 1 });
  assert.equal(s.kind === 'probing' && s.candidate, 0);
  s = run(s, { now: P.probeWindowMs });
  assert.equal(s.kind === 'probing' && s.candidate, 1);
  assert.equal(directPeerConfig(s, C).endpoint, C[1]);
  s = run(s, { now: 2 * P.probeWindowMs });
  assert.deepEqual(s.kind === 'relay' && [s.reason, s.attempts, s.retryAt], ['no-handshake', 1, 2 * P.probeWindowMs + P.backoffBaseMs]);
  // Hysteresis: nothing happens before the retry time.
  s = run(s, { now: 2 * P.probeWindowMs + P.backoffBaseMs - 1 });
  assert.equal(s.kind, 'relay');
  const t = 2 * P.probeWindowMs + P.backoffBaseMs;
  s = run(s, { now: t });
  assert.equal(s.kind === 'probing' && s.candidate, 0);
  s = run(s, { now: t + P.probeWindowMs });
  s = run(s, { now: t + 2 * P.probeWindowMs });
  assert.deepEqual(s.kind === 'relay' && [s.attempts, s.retryAt - (t + 2 * P.probeWindowMs)], [2, 2 * P.backoffBaseMs]);
});

test('the backoff is capped', () => {
  let s: PathState = { kind: 'probing', candidate: 1, since: 0, attempts: 30, rx: 0, firstRxAt: null, lastRxAt: null, candidates: C.join(',') };
  s = run(s, { now: P.probeWindowMs });
  assert.equal(s.kind === 'relay' && s.retryAt - P.probeWindowMs, P.backoffMaxMs);
});

test('proof: a session and packets from the peer at two readings at least the proof gap apart', () => {
  const hs = 1000;
  let s = run(initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: 0 });
  s = run(s, { now: 1000, rxBytes: 92, handshakeAt: hs });
  assert.equal(s.kind, 'probing', 'one answer (a handshake) is no proof: the peer may not be probing');
  s = run(s, { now: 1000 + P.proofGapMs - 1, rxBytes: 124, handshakeAt: hs });
  assert.equal(s.kind, 'probing', 'growth closer than the proof gap is not enough');
  s = run(s, { now: 1000 + P.proofGapMs, rxBytes: 156, handshakeAt: hs });
  assert.equal(s.kind, 'direct');
  assert.deepEqual(directPeerConfig(s, C), { endpoint: null, forceEndpoint: false, persistentKeepalive: P.directKeepalive, direct: true });
});

test('packets without a session (no handshake within 180 s) prove nothing', () => {
  let s = run(initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: 200_000 });
  s = run(s, { now: 201_000, rxBytes: 100, handshakeAt: 1000 });
  s = run(s, { now: 203_000, rxBytes: 200, handshakeAt: 1000 });
  assert.equal(s.kind, 'probing');
});

test('a peer that answered keeps its candidate past the window until the proof or a window after its answer', () => {
  let s = run(initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: 0 });
  s = run(s, { now: P.probeWindowMs - 100, rxBytes: 92, handshakeAt: P.probeWindowMs - 100 });
  s = run(s, { now: P.probeWindowMs + 100, rxBytes: 92, handshakeAt: P.probeWindowMs - 100 });
  assert.equal(s.kind === 'probing' && s.candidate, 0);
});

test('direct: packets keep it; silence for the stale time hands the subnet back to the relay, with backoff', () => {
  let s: PathState = { kind: 'direct', since: 0, attempts: 0, rx: 1000, lastRxAt: 0, candidates: C.join(',') };
  s = run(s, { now: 2000, rxBytes: 1032 });
  s = run(s, { now: 2000 + P.staleMs - 1 });
  assert.equal(s.kind, 'direct');
  s = run(s, { now: 2000 + P.staleMs });
  assert.deepEqual(s.kind === 'relay' && [s.reason, s.attempts, s.retryAt], ['stale', 1, 2000 + P.staleMs + P.backoffBaseMs]);
  assert.equal(directPeerConfig(s, C).direct, false);
  // The same candidates are not retried before the backoff.
  s = run(s, { now: 2000 + P.staleMs + 1000 });
  assert.equal(s.kind, 'relay');
});

test('a direct path that held for the stable time resets the backoff; a short one doubles it', () => {
  const long = run({ kind: 'direct', since: 0, attempts: 4, rx: 0, lastRxAt: P.stableMs, candidates: C.join(',') }, { now: P.stableMs + P.staleMs });
  assert.equal(long.kind === 'relay' && long.attempts, 1);
  const short = run({ kind: 'direct', since: 0, attempts: 4, rx: 0, lastRxAt: 0, candidates: C.join(',') }, { now: P.staleMs });
  assert.equal(short.kind === 'relay' && short.attempts, 5);
});

test('relayed and the peer probes us (rx grows): probe back at once, at the endpoint WireGuard learnt; not past our backoff after two failures', () => {
  const late = run({ kind: 'relay', reason: 'no-handshake', since: 0, retryAt: 100_000, attempts: 2, rx: 0, candidates: C.join(',') }, { now: 1000, rxBytes: 148 });
  assert.equal(late.kind, 'relay', 'a peer that keeps failing its proof does not skip the backoff');
  assert.equal(run(late, { now: 100_000, rxBytes: 296 }).kind, 'probing');
  const s = run({ kind: 'relay', reason: 'no-handshake', since: 0, retryAt: 100_000, attempts: 1, rx: 0, candidates: C.join(',') }, { now: 1000, rxBytes: 148 });
  assert.equal(s.kind === 'probing' && s.candidate, -1);
  assert.deepEqual(directPeerConfig(s, C), { endpoint: null, forceEndpoint: false, persistentKeepalive: P.probeKeepalive, direct: false });
  const none = stepPath({ kind: 'relay', reason: 'no-candidate', since: 0, retryAt: 0, attempts: 0, rx: 0, candidates: '' }, { now: 1, candidates: [], rxBytes: 148, handshakeAt: 0 });
  assert.equal(none.kind, 'probing', 'even without candidates of our own');
});

test('new candidates during a first backoff are tried at once; after two failures they wait for it too', () => {
  const s = stepPath({ kind: 'relay', reason: 'no-handshake', since: 0, retryAt: 100_000, attempts: 1, rx: 0, candidates: C.join(',') }, { now: 1000, candidates: ['198.51.100.7:40999'], rxBytes: 0, handshakeAt: 0 });
  assert.equal(s.kind === 'probing' && s.candidate, 0);
  assert.equal(directPeerConfig(s, ['198.51.100.7:40999']).endpoint, '198.51.100.7:40999');
  // A reporter rotating candidates every 2 s does not keep a pair that failed twice probing.
  let r: PathState = { kind: 'relay', reason: 'no-handshake', since: 0, retryAt: 100_000, attempts: 2, rx: 0, candidates: C.join(',') };
  for (let t = 2000; t < 100_000; t += 2000) {
    r = stepPath(r, { now: t, candidates: [`198.51.100.7:${40000 + t / 2000}`], rxBytes: 0, handshakeAt: 0 });
    assert.equal(r.kind, 'relay', `t=${t}`);
  }
  assert.equal(stepPath(r, { now: 100_000, candidates: ['198.51.100.7:1'], rxBytes: 0, handshakeAt: 0 }).kind, 'probing');
});

test('a path that works one way never passes the proof: the handshake must complete during the probe', () => {
  // The peer's handshake initiations arrive (rx grows every 5 s) but ours never reach it: no new handshake.
  let s = run(initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: 10_000 });
  for (let t = 11_000; t < 16_000; t += 500) s = run(s, { now: t, rxBytes: s.rx + 148, handshakeAt: 2_000 });
  assert.equal(s.kind, 'probing', 'a handshake from before the probe proves nothing');
  s = run(s, { now: 16_000, rxBytes: s.rx + 32, handshakeAt: 15_000 });
  assert.equal(s.kind, 'direct');
});

test('directAllowedIps: the two halves of the subnet', () => {
  assert.deepEqual(directAllowedIps('10.1.3.0/24'), ['10.1.3.0/25', '10.1.3.128/25']);
  assert.deepEqual(directAllowedIps('10.1.0.4/30'), ['10.1.0.4/31', '10.1.0.6/31']);
});

test('buildMesh: a hidden node has its relay and one direct peer per other hidden node, with no allowed-ips', () => {
  const mesh = buildMesh(
    '10.1.0.0/16',
    [
      { id: 'a', kind: 'node', subnet: '10.1.0.0/24', publicKey: 'A', endpoint: '203.0.113.1:51820', via: null },
      { id: 'h1', kind: 'node', subnet: '10.1.1.0/24', publicKey: 'H1', endpoint: null, via: 'a' },
      { id: 'h3', kind: 'node', subnet: '10.1.3.0/24', publicKey: 'H3', endpoint: null, via: 'a' },
    ],
    { hiddenKeepalive: 25 },
  );
  assert.deepEqual(mesh.get('h1'), [
    { node: 'a', kind: 'node', publicKey: 'A', endpoint: '203.0.113.1:51820', allowedIps: ['10.1.0.0/24', '10.1.2.0/23', '10.1.4.0/22', '10.1.8.0/21', '10.1.16.0/20', '10.1.32.0/19', '10.1.64.0/18', '10.1.128.0/17'], persistentKeepalive: 25 },
    { node: 'h3', kind: 'node', publicKey: 'H3', endpoint: null, allowedIps: [], persistentKeepalive: null, directSubnet: '10.1.3.0/24' },
  ]);
  assert.deepEqual(
    mesh.get('a')!.map((p) => [p.node, p.allowedIps]),
    [
      ['h1', ['10.1.1.0/24']],
      ['h3', ['10.1.3.0/24']],
    ],
  );
});

test('property: at every step every subnet of the network resolves to exactly one peer, the relay unless proven direct', () => {
  const range = parseCidr('10.9.0.0/16') as Cidr;
  const subnets = Array.from({ length: 6 }, (_, i) => `10.9.${i}.0/24`);
  // Node "h0" (subnet 10.9.1.0/24) behind access node "a" (10.9.0.0/24); hidden peers h2..h5 on the others.
  const own = parseCidr(subnets[1]) as Cidr;
  const relay = { node: 'a', publicKey: 'A', endpoint: '203.0.113.1:51820', allowedIps: cidrExclude(range, own).map(formatCidr), persistentKeepalive: 25 };
  const directs = [2, 3, 4, 5].map((i) => ({ node: `h${i}`, publicKey: `H${i}`, endpoint: null, allowedIps: [] as string[], persistentKeepalive: null, directSubnet: subnets[i] }));
  for (let seed = 1; seed <= 200; seed++) {
    const r = rng(seed);
    const states = new Map<string, PathState>(directs.map((d) => [d.node, initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 })]));
    const rx = new Map(directs.map((d) => [d.node, 0]));
    let now = 0;
    for (let step = 0; step < 150; step++) {
      now += Math.floor(r() * 3000);
      const configs = new Map();
      for (const d of directs) {
        const cands = r() < 0.2 ? [] : C;
        if (r() < 0.5) rx.set(d.node, rx.get(d.node)! + 32);
        const s = stepPath(states.get(d.node)!, { now, candidates: cands, rxBytes: rx.get(d.node)!, handshakeAt: r() < 0.7 ? now - 1000 : 0 });
        states.set(d.node, s);
        configs.set(d.node, directPeerConfig(s, cands));
      }
      const peers = withPaths([relay, ...directs], configs);
      // No prefix is on two peers (WireGuard would move it from one to the other).
      const prefixes = peers.flatMap((p) => p.allowedIps);
      assert.equal(new Set(prefixes).size, prefixes.length, `seed ${seed} step ${step}: a prefix on two peers`);
      for (const [i, sub] of subnets.entries()) {
        if (i === 1) continue;
        const c = parseCidr(sub) as Cidr;
        const d = directs.find((x) => x.directSubnet === sub);
        const want = d && states.get(d.node)!.kind === 'direct' ? d.publicKey : 'A';
        for (const addr of [c.base, c.base + 1, c.base + 127, c.base + 128, c.base + sizeOf(c.prefix) - 1]) {
          assert.equal(routeOf(addr, peers), want, `seed ${seed} step ${step}: ${sub} → ${want}`);
        }
      }
      // Nothing outside the other subnets (the own subnet) ever goes to a direct peer.
      assert.equal(routeOf(own.base + 5, peers), null);
    }
  }
});

test('new candidates while probing without an answer: the new list is tried from its first entry at once', () => {
  let s = run(initialPath({ now: 0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: 0, candidates: ['192.168.1.20:51820'] });
  s = stepPath(s, { now: 1000, candidates: ['198.51.100.7:40001', '192.168.1.20:51820'], rxBytes: 0, handshakeAt: 0 });
  assert.deepEqual(s.kind === 'probing' && [s.candidate, s.since], [0, 1000]);
  assert.equal(directPeerConfig(s, ['198.51.100.7:40001', '192.168.1.20:51820']).endpoint, '198.51.100.7:40001');
  // Once the peer answered, a candidate change does not interrupt the proof.
  s = stepPath(s, { now: 1500, candidates: ['198.51.100.7:40001', '192.168.1.20:51820'], rxBytes: 92, handshakeAt: 1500 });
  s = stepPath(s, { now: 2000, candidates: ['198.51.100.8:1'], rxBytes: 92, handshakeAt: 1500 });
  assert.deepEqual(s.kind === 'probing' && s.candidate, 0);
  assert.equal(s.kind === 'probing' && s.since, 1000);
});

test('answering a peer that probes us: its handshake, read in whole seconds a tick later, counts for the answer', () => {
  // Relayed, read at 10.0 s (nothing new). The peer's initiation and our reply land at 10.95 s; WireGuard reports the
  // handshake as 10 s (whole seconds), and this node's next reading is at 11.85 s. No new handshake follows: the
  // session is live. Measured from the answer's own start (11.85 s − 1 s slack), it never counted, so the side that
  // answered gave up after its window and relayed a working path (lab-direct's etcd variant, 53 s of 60).
  let s: PathState = run(initialPath({ now: 0, candidates: C, rxBytes: 0, handshakeAt: 0 }), { now: 0, candidates: [] });
  s = run(s, { now: 10_000, candidates: [] });
  assert.equal(s.kind, 'relay');
  s = run(s, { now: 11_850, candidates: [], rxBytes: 180, handshakeAt: 10_000 });
  assert.deepEqual(s.kind === 'probing' && [s.candidate, s.since, s.round], [-1, 11_850, 10_000], 'the round counts from the reading before the packets');
  s = run(s, { now: 12_350, candidates: [], rxBytes: 212, handshakeAt: 10_000 });
  assert.equal(s.kind, 'probing', 'one growth proves nothing');
  s = run(s, { now: 13_350, candidates: [], rxBytes: 244, handshakeAt: 10_000 });
  assert.equal(s.kind, 'direct');
  // The same packets with a handshake from before that reading (an old session, the peer not answering us) prove nothing.
  let old: PathState = run(initialPath({ now: 0, candidates: C, rxBytes: 0, handshakeAt: 0 }), { now: 10_000, candidates: [] });
  for (const [now, rxBytes] of [[11_850, 180], [12_350, 212], [13_350, 244], [17_000, 276]] as const) old = run(old, { now, candidates: [], rxBytes, handshakeAt: 8_000 });
  assert.notEqual(old.kind, 'direct');
});

test('a round keeps its start through the move to the next candidate: a session made in it still proves the path', () => {
  // Probing C[0] from t0; the handshake completes at once (one growth), then the peer is silent for the rest of the
  // window (its keepalives lost). On C[1] its keepalives arrive again, on the same session (no new handshake).
  const t0 = 100_000;
  let s = run(initialPath({ now: t0, candidates: [], rxBytes: 0, handshakeAt: 0 }), { now: t0 });
  s = run(s, { now: t0 + 500, rxBytes: 180, handshakeAt: t0 });
  s = run(s, { now: t0 + 6_500, rxBytes: 180, handshakeAt: t0 });
  assert.deepEqual(s.kind === 'probing' && [s.candidate, s.since, s.round], [1, t0 + 6_500, t0]);
  s = run(s, { now: t0 + 7_000, rxBytes: 212, handshakeAt: t0 });
  s = run(s, { now: t0 + 8_000, rxBytes: 244, handshakeAt: t0 });
  assert.equal(s.kind, 'direct');
});
