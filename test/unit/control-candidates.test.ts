// distributeCandidates (src/control/candidates.ts): from what every node reports (GET /v1/candidates) to what
// each hidden node is told (PUT /v1/candidates), with exact expected values: the order behind different NATs and
// behind the same one, a node nobody observed, invalid endpoints dropped, direct peers only, the cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CANDIDATES, validateCandidates, type DirectPeerIndex } from '../../src/agent/candidates.ts';
import { distributeCandidates, type CandidateReport, type CandidateReportNetwork } from '../../src/control/candidates.ts';

const N = 'nb7s5iiruj';
const RANGE = '10.1.0.0/16';

function hiddenIn(networkId: string, local: string[], directPeers: string[], ipRange = RANGE, via = 'pa'): CandidateReportNetwork {
  return { networkId, ipRange, hidden: true, directPeers, via, local, observed: {} };
}
function accessIn(networkId: string, observed: Record<string, string>, ipRange = RANGE): CandidateReportNetwork {
  return { networkId, ipRange, hidden: false, directPeers: [], via: null, local: [], observed };
}
const plain = (m: Map<string, unknown>) => Object.fromEntries(m);

/** Each submission must pass the receiving agent's own check (else the agent refuses it whole). */
function assertAccepted(subs: Map<string, { networks: Record<string, Record<string, string[]>> }>, reports: CandidateReport[]): void {
  for (const [node, sub] of subs) {
    const r = reports.find((x) => x.node === node)!;
    const index: DirectPeerIndex = { networks: new Map(r.networks.filter((n) => n.hidden).map((n) => [n.networkId, { ipRange: n.ipRange, ...(n.ipRange6 ? { ipRange6: n.ipRange6 } : {}), peers: new Set(n.directPeers) }])) };
    assert.deepEqual(validateCandidates(sub, index).problems, [], `${node}: ${JSON.stringify(sub)}`);
  }
}

test('two hidden nodes behind different NATs: each gets the other reflexive first, then its local endpoints', () => {
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '198.51.100.1:40001', h2: '203.0.113.50:61002' })] },
    { node: 'h1', networks: [hiddenIn(N, ['192.168.1.10:51820', '[2001:db8:1::10]:51820'], ['h2'])] },
    { node: 'h2', networks: [hiddenIn(N, ['192.168.7.20:51821'], ['h1'])] },
  ];
  const subs = distributeCandidates(reports);
  assert.deepEqual(plain(subs), {
    h1: { networks: { [N]: { h2: ['203.0.113.50:61002', '192.168.7.20:51821'] } } },
    h2: { networks: { [N]: { h1: ['198.51.100.1:40001', '192.168.1.10:51820', '[2001:db8:1::10]:51820'] } } },
  });
  assertAccepted(subs, reports);
});

test('two hidden nodes behind the same NAT (same reflexive host): LAN endpoints first, the reflexive one last', () => {
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '198.51.100.1:40001', h2: '198.51.100.1:40002' })] },
    { node: 'h1', networks: [hiddenIn(N, ['192.168.1.10:51820'], ['h2'])] },
    { node: 'h2', networks: [hiddenIn(N, ['192.168.1.20:51821', '[2001:db8:1::20]:51821'], ['h1'])] },
  ];
  const subs = distributeCandidates(reports);
  assert.deepEqual(plain(subs), {
    h1: { networks: { [N]: { h2: ['192.168.1.20:51821', '[2001:db8:1::20]:51821', '198.51.100.1:40002'] } } },
    h2: { networks: { [N]: { h1: ['192.168.1.10:51820', '198.51.100.1:40001'] } } },
  });
  assertAccepted(subs, reports);
});

test('same reflexive host seen through two access nodes counts as the same NAT', () => {
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '198.51.100.1:40001' })] },
    { node: 'pb', networks: [accessIn(N, { h2: '198.51.100.1:40002' })] },
    { node: 'h1', networks: [hiddenIn(N, ['192.168.1.10:51820'], ['h2'])] },
    { node: 'h2', networks: [hiddenIn(N, ['192.168.1.20:51821'], ['h1'], RANGE, 'pb')] },
  ];
  assert.deepEqual(plain(distributeCandidates(reports)), {
    h1: { networks: { [N]: { h2: ['192.168.1.20:51821', '198.51.100.1:40002'] } } },
    h2: { networks: { [N]: { h1: ['192.168.1.10:51820', '198.51.100.1:40001'] } } },
  });
});

test('a node nobody observed: the others get its local endpoints only; it gets their reflexive one first', () => {
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '198.51.100.1:40001' })] },
    { node: 'h1', networks: [hiddenIn(N, ['192.168.1.10:51820'], ['h2'])] },
    { node: 'h2', networks: [hiddenIn(N, ['192.168.7.20:51821'], ['h1'])] },
  ];
  const subs = distributeCandidates(reports);
  assert.deepEqual(plain(subs), {
    h1: { networks: { [N]: { h2: ['192.168.7.20:51821'] } } },
    h2: { networks: { [N]: { h1: ['198.51.100.1:40001', '192.168.1.10:51820'] } } },
  });
  assertAccepted(subs, reports);
});

test('nothing known of a node (not observed, no local endpoint): it is left out, its network still named', () => {
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '198.51.100.1:40001' })] },
    { node: 'h1', networks: [hiddenIn(N, ['192.168.1.10:51820'], ['h2'])] },
    { node: 'h2', networks: [hiddenIn(N, [], ['h1'])] },
  ];
  assert.deepEqual(plain(distributeCandidates(reports)), {
    h1: { networks: { [N]: {} } },
    h2: { networks: { [N]: { h1: ['198.51.100.1:40001', '192.168.1.10:51820'] } } },
  });
});

test('invalid endpoints are dropped (local and observed), valid ones kept in order', () => {
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '127.0.0.1:40001', h2: '[::ffff:203.0.113.50]:61002', h3: '169.254.169.254:80' })] },
    {
      node: 'h1',
      networks: [
        hiddenIn(
          N,
          ['127.0.0.1:51820', '10.1.2.254:51820', '192.168.1.10:51820', '[fe80::1]:51820', '169.254.10.1:51820', '[::7f00:1]:51820', '0.0.0.0:51820', '224.0.0.1:51820', 'host.example:51820', '192.168.1.10:051820', '[2001:db8:1::10]:51820'],
          ['h2', 'h3'],
        ),
      ],
    },
    { node: 'h2', networks: [hiddenIn(N, ['192.168.7.20:51821', '[::1]:51821', '10.1.3.1:51821'], ['h1', 'h3'])] },
    { node: 'h3', networks: [hiddenIn(N, ['255.255.255.255:51822'], ['h1', 'h2'])] },
  ];
  const subs = distributeCandidates(reports);
  assert.deepEqual(plain(subs), {
    h1: { networks: { [N]: { h2: ['192.168.7.20:51821'] } } },
    h2: { networks: { [N]: { h1: ['192.168.1.10:51820', '[2001:db8:1::10]:51820'] } } },
    h3: { networks: { [N]: { h1: ['192.168.1.10:51820', '[2001:db8:1::10]:51820'], h2: ['192.168.7.20:51821'] } } },
  });
  assertAccepted(subs, reports);
});

test('only direct peers are included; public nodes and nodes hidden elsewhere get nothing', () => {
  const M = 'm2x9k1c0qq';
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '198.51.100.1:40001', h2: '198.51.100.2:40002', h3: '198.51.100.3:40003' }), accessIn(M, { h4: '198.51.100.4:40004' }, '10.2.0.0/16')] },
    // h1 names h2 only (h3 is hidden in N too, but not in h1's plan part): h3 is not sent to h1.
    { node: 'h1', networks: [hiddenIn(N, ['192.168.1.10:51820'], ['h2']), hiddenIn(M, ['192.168.1.10:51830'], ['h4'], '10.2.0.0/16')] },
    { node: 'h2', networks: [hiddenIn(N, ['192.168.2.20:51820'], ['h1', 'h3'])] },
    { node: 'h3', networks: [hiddenIn(N, ['192.168.3.30:51820'], ['h1', 'h2', 'h4', 'pa', 'h3'])] },
    { node: 'h4', networks: [hiddenIn(M, ['192.168.4.40:51830'], ['h1'], '10.2.0.0/16')] },
  ];
  const subs = distributeCandidates(reports);
  assert.deepEqual(plain(subs), {
    h1: { networks: { [M]: { h4: ['198.51.100.4:40004', '192.168.4.40:51830'] }, [N]: { h2: ['198.51.100.2:40002', '192.168.2.20:51820'] } } },
    h2: { networks: { [N]: { h1: ['198.51.100.1:40001', '192.168.1.10:51820'], h3: ['198.51.100.3:40003', '192.168.3.30:51820'] } } },
    // h4 is in another network, pa is public, h3 is itself: none of them is sent; nor h1, which does not name
    // h3 (only two nodes that name each other learn each other's endpoints).
    h3: { networks: { [N]: { h2: ['198.51.100.2:40002', '192.168.2.20:51820'] } } },
    // In M nobody observed h1 (its reflexive endpoint in N is N's alone): its local endpoint of M only.
    h4: { networks: { [M]: { h1: ['192.168.1.10:51830'] } } },
  });
  assert.equal(subs.has('pa'), false);
});

test(`at most ${MAX_CANDIDATES} candidates per node, duplicates removed first`, () => {
  const local = Array.from({ length: 12 }, (_, i) => `192.168.1.${10 + i}:51820`);
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h2: '198.51.100.2:40002' })] },
    { node: 'h1', networks: [hiddenIn(N, [], ['h2'])] },
    // The reflexive endpoint repeated among the local ones, and local ones repeated: counted once.
    { node: 'h2', networks: [hiddenIn(N, ['192.168.1.10:51820', '198.51.100.2:40002', ...local, '192.168.1.11:51820'], ['h1'])] },
  ];
  const subs = distributeCandidates(reports);
  const got = subs.get('h1')!.networks[N].h2;
  assert.equal(got.length, MAX_CANDIDATES);
  assert.deepEqual(got, ['198.51.100.2:40002', ...local.slice(0, MAX_CANDIDATES - 1)]);
  assertAccepted(subs, reports);
});

test("an observation counts only from the hidden node's own access node", () => {
  const reports: CandidateReport[] = [
    // pb is not h1's access node: what it claims to see h1 at is ignored; pa's own observation of h2 counts.
    { node: 'pa', networks: [accessIn(N, { h2: '198.51.100.2:40002' })] },
    { node: 'pb', networks: [accessIn(N, { h1: '203.0.113.66:9999', h2: '203.0.113.66:9998' })] },
    // A hidden node's own "observations" are never used.
    { node: 'h1', networks: [{ ...hiddenIn(N, ['192.168.1.10:51820'], ['h2']), observed: { h2: '203.0.113.77:1' } }] },
    { node: 'h2', networks: [hiddenIn(N, ['192.168.7.20:51821'], ['h1'])] },
  ];
  assert.deepEqual(plain(distributeCandidates(reports)), {
    h1: { networks: { [N]: { h2: ['198.51.100.2:40002', '192.168.7.20:51821'] } } },
    h2: { networks: { [N]: { h1: ['192.168.1.10:51820'] } } },
  });
});

test('a sender lying about its range cannot get the receiver\'s submission refused; a node claiming membership learns nothing', () => {
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, { h1: '198.51.100.1:40001', h2: '198.51.100.2:40002' })] },
    { node: 'h1', networks: [hiddenIn(N, ['192.168.1.10:51820'], ['h2'])] },
    // h2 says its range is 10.9.0.0/16 to slip an endpoint inside the real range (10.1.0.0/16) past the check.
    { node: 'h2', networks: [hiddenIn(N, ['10.1.0.7:51820', '192.168.2.20:51820'], ['h1'], '10.9.0.0/16')] },
    // mallory is not in the network's plan (no part names it) but claims to be hidden in it.
    { node: 'mallory', networks: [hiddenIn(N, ['192.0.2.66:1'], ['h1', 'h2'])] },
  ];
  const subs = plain(distributeCandidates(reports));
  assert.deepEqual(subs.h1, { networks: { [N]: { h2: ['198.51.100.2:40002', '192.168.2.20:51820'] } } });
  assert.deepEqual(subs.mallory, { networks: { [N]: {} } });
});

test("dual-stack: an endpoint inside the network's own IPv6 range is no candidate (dropped from a submission, refused by the agent)", () => {
  const R6 = 'fd15:7fc9:daa8::/48';
  const reports: CandidateReport[] = [
    { node: 'pa', networks: [accessIn(N, {})] },
    { node: 'h1', networks: [{ ...hiddenIn(N, ['192.168.1.10:51820'], ['h2']), ipRange6: R6 }] },
    // h2 reports one endpoint inside the overlay's IPv6 range (it would make h1 send WireGuard into the overlay).
    { node: 'h2', networks: [{ ...hiddenIn(N, ['[fd15:7fc9:daa8::1:5]:51820', '[2001:db8:2::20]:51820'], ['h1']), ipRange6: R6 }] },
  ];
  const subs = distributeCandidates(reports);
  assert.deepEqual(subs.get('h1'), { networks: { [N]: { h2: ['[2001:db8:2::20]:51820'] } } });
  assertAccepted(subs, reports);
  const index: DirectPeerIndex = { networks: new Map([[N, { ipRange: RANGE, ipRange6: R6, peers: new Set(['h2']) }]]) };
  const bad = validateCandidates({ networks: { [N]: { h2: ['[fd15:7fc9:daa8::1:5]:51820'] } } }, index);
  assert.deepEqual(
    bad.problems.map((p) => p.message),
    ['"[fd15:7fc9:daa8::1:5]:51820": an address inside the network\'s own IPv6 range fd15:7fc9:daa8::/48'],
  );
});
