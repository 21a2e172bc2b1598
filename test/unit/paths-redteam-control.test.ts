// Red team, direct paths (issue #15): the control plane's candidate channel (src/control/candidates.ts,
// src/control/candidate-relay.ts) against a hostile node with valid credentials: it signs and writes its own
// status record (status/<id>), so everything in its report is its own word.
// A test marked `todo: 'finding: …'` demonstrates a hole that is still open (it fails today).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { createLogger } from '../../src/log.ts';
import { validateCandidates, type DirectPeerIndex } from '../../src/agent/candidates.ts';
import { CandidateRelay, REPORT_HOLD_MS, reportFrom } from '../../src/control/candidate-relay.ts';
import { distributeCandidates, type CandidateReport, type CandidateReportNetwork } from '../../src/control/candidates.ts';
import { Keys } from '../../src/control/keys.ts';
import { signRecord } from '../../src/control/records.ts';
import { Key, X25519Secret } from '../../src/crypto/keys.ts';
import { identity } from '../helpers/fixtures.ts';
import { epochsOf } from '../helpers/relay-epochs.ts';

// acme/shop network N (10.1.0.0/16): h1, h2, h3 hidden behind pa. globex/web network M (10.2.0.0/16): h1 and
// g4 hidden behind pa. h2 is hostile (a node with valid credentials, hidden in N).
const N = 'nacmeshop0';
const M = 'mglobexweb';
const RANGE_N = '10.1.0.0/16';
const RANGE_M = '10.2.0.0/16';

const hidden = (networkId: string, ipRange: string, local: string[], directPeers: string[]): CandidateReportNetwork => ({ networkId, ipRange, hidden: true, directPeers, via: 'pa', local, observed: {} });
const access = (networkId: string, ipRange: string, observed: Record<string, string>): CandidateReportNetwork => ({ networkId, ipRange, hidden: false, directPeers: [], via: null, local: [], observed });

/** The index each honest node's agent checks a submission against: from its PLAN (the true ranges). */
const planIndex: Record<string, DirectPeerIndex> = {
  h1: {
    networks: new Map([
      [N, { ipRange: RANGE_N, peers: new Set(['h2', 'h3']) }],
      [M, { ipRange: RANGE_M, peers: new Set(['g4']) }],
    ]),
  },
  h3: { networks: new Map([[N, { ipRange: RANGE_N, peers: new Set(['h1', 'h2']) }]]) },
  g4: { networks: new Map([[M, { ipRange: RANGE_M, peers: new Set(['h1']) }]]) },
};

const honest: CandidateReport[] = [
  { node: 'pa', networks: [access(N, RANGE_N, { h1: '198.51.100.1:40001', h2: '198.51.100.2:40002', h3: '198.51.100.3:40003' }), access(M, RANGE_M, { h1: '198.51.100.1:40011', g4: '198.51.100.4:40004' })] },
  { node: 'h1', networks: [hidden(N, RANGE_N, ['192.168.1.10:51820'], ['h2', 'h3']), hidden(M, RANGE_M, ['192.168.1.10:51821'], ['g4'])] },
  { node: 'h3', networks: [hidden(N, RANGE_N, ['192.168.3.30:51820'], ['h1', 'h2'])] },
  { node: 'g4', networks: [hidden(M, RANGE_M, ['192.168.4.40:51820'], ['h1'])] },
];

test('defended (baseline): with honest reports every submission passes its receiver plan-based check', () => {
  const subs = distributeCandidates([...honest, { node: 'h2', networks: [hidden(N, RANGE_N, ['192.168.2.20:51820'], ['h1', 'h3'])] }]);
  for (const node of ['h1', 'h3', 'g4']) assert.deepEqual(validateCandidates(subs.get(node), planIndex[node]).problems, [], node);
});

test(
  "one hostile hidden node cannot make its peers refuse their whole submission (all networks, other tenants' included)",
  () => {
    // h2 reports a range it is not in, and a local endpoint inside N's real range.
    const hostile: CandidateReport = { node: 'h2', networks: [hidden(N, '192.0.2.0/24', ['10.1.200.1:51820'], ['h1', 'h3'])] };
    const subs = distributeCandidates([...honest, hostile]);
    assert.deepEqual(subs.get('h1')!.networks[M], { g4: ['198.51.100.4:40004', '192.168.4.40:51820'] }, 'the controller computed globex M for h1');
    for (const node of ['h1', 'h3']) {
      const { candidates, problems } = validateCandidates(subs.get(node), planIndex[node]);
      assert.deepEqual(problems, [], `${node} refuses its whole submission (${candidates.size} networks kept): ${problems.map((p) => p.message).join('; ')}`);
    }
  },
);

test(
  "a node cannot read other nodes' candidates (their LAN and post-NAT addresses) for a network it is not in",
  () => {
    const spy: CandidateReport = { node: 'mallory', networks: [hidden(M, RANGE_M, [], ['h1', 'g4'])] };
    const subs = distributeCandidates([...honest, spy]);
    const leaked = subs.get('mallory')?.networks[M] ?? {};
    assert.deepEqual(leaked, {}, `mallory (not in M) is told ${JSON.stringify(leaked)}`);
  },
);

test('defended: a hostile node cannot inject itself into its peers submissions for a network where they do not name it', () => {
  // mallory claims to be hidden in N and M, and even that it is the access node of h1.
  const spy: CandidateReport = {
    node: 'mallory',
    networks: [hidden(N, RANGE_N, ['203.0.113.66:1'], ['h1', 'h3']), hidden(M, RANGE_M, ['203.0.113.66:2'], ['h1', 'g4']), access(N, RANGE_N, { h1: '203.0.113.66:3', h3: '203.0.113.66:4' })],
  };
  const subs = distributeCandidates([...honest, { node: 'h2', networks: [hidden(N, RANGE_N, ['192.168.2.20:51820'], ['h1', 'h3'])] }, spy]);
  for (const node of ['h1', 'h3', 'g4']) {
    const text = JSON.stringify(subs.get(node));
    assert.ok(!text.includes('mallory') && !text.includes('203.0.113.66'), `${node}: ${text}`);
  }
});

// ---- the etcd relay: amplification ------------------------------------------------------------------------

const keys = new Keys();

function relayBed(hiddenCount: number, now: () => number = Date.now) {
  const log = createLogger({ level: 'silent' });
  const ids = Array.from({ length: hiddenCount }, (_, i) => `h${i}`);
  const secrets = new Map([...ids, 'pa'].map((id) => [id, new X25519Secret(identity(id).privateKey)]));
  const pins = new Map([...secrets].map(([id, s]) => [id, s.publicKey.toString()]));
  const writes: string[] = [];
  const client = {
    kv: {
      txn: async (req: { success: { request_put: { key: Buffer } }[] }) => {
        writes.push(req.success[0].request_put.key.toString());
        return { succeeded: true };
      },
    },
    auth: { roleGrantPermission: async () => ({}) },
  } as unknown as Etcd3;
  const members = new Map([[N, new Set(ids)]]);
  const relay = new CandidateRelay({ client, keys, log, pinned: (id) => pins.get(id), members: () => members, epochs: epochsOf(() => members), signingKey: Key.fromBytes(new Uint8Array(randomBytes(32))), guard: () => ({ key: keys.leader(), value: 'c1' }), now });
  const texts = (relay as unknown as { texts: Map<string, string> }).texts;
  const round = () => (relay as unknown as { round(): Promise<void> }).round();
  const status = (id: string, networks: CandidateReportNetwork[]) => texts.set(id, signRecord(keys.status(id), { node: id, candidates: networks }, secrets.get(id)!));
  const observed = Object.fromEntries(ids.map((id, i) => [id, `198.51.${100 + Math.floor(i / 250)}.${(i % 250) + 1}:40000`]));
  status('pa', [access(N, RANGE_N, observed)]);
  for (const [i, id] of ids.entries()) status(id, [hidden(N, RANGE_N, [`192.168.${Math.floor(i / 250)}.${(i % 250) + 1}:51820`], ids.filter((x) => x !== id))]);
  return { ids, writes, round, status };
}

test(
  'one node rewriting its own status does not make the controller sign and write a record for every other hidden node, each time',
  // Was a finding (N−1 signatures and writes per status write of one node). Now one table per network (one
  // write per change, whatever the number of members), and a node's changed report is taken at most once per
  // REPORT_HOLD_MS; the latest one is taken when the hold ends.
  async () => {
    const n = 50;
    let clock = 1_700_000_000_000;
    const bed = relayBed(n, () => clock);
    await bed.round();
    assert.equal(bed.writes.length, 1, 'first round: one transaction (the table and its pointer) for the network');
    assert.ok(bed.writes[0].startsWith(`${keys.candidateTablePrefix(N)}t/`), bed.writes[0]);
    bed.writes.length = 0;
    // The hostile h0 rewrites its status ten times (its etcd role may write status/h0 as often as it likes).
    for (let k = 0; k < 10; k++) {
      bed.status('h0', [hidden(N, RANGE_N, [`203.0.113.${k + 1}:51820`], bed.ids.filter((x) => x !== 'h0'))]);
      await bed.round();
    }
    console.log(`relay: 10 status writes by one node → ${bed.writes.length} signed candidate records written (${n} hidden nodes)`);
    assert.ok(bed.writes.length <= 1, `${bed.writes.length} writes for 10 status writes of one node`);
    // When the hold ends, h0's latest report is what the others get: the one table, once.
    bed.writes.length = 0;
    clock += REPORT_HOLD_MS;
    await bed.round();
    assert.equal(bed.writes.length, 1, 'the last change is published once the hold ends');
    assert.ok(bed.writes[0].startsWith(`${keys.candidateTablePrefix(N)}t/`), bed.writes[0]);
  },
);

test(
  "a node's report is not dropped whole when one bound overflows (a tenant's 257th network on the node, a 17th underlay address)",
  () => {
    const base = hidden(N, RANGE_N, ['192.168.1.10:51820'], ['h2', 'h3']);
    const tenantNets = Array.from({ length: 256 }, (_, i) => hidden(`t${String(i).padStart(9, '0')}`, `10.${100 + (i % 100)}.0.0/16`, [], []));
    const many = reportFrom('h1', { candidates: [base, ...tenantNets] });
    const addrs = Array.from({ length: 17 }, (_, i) => `[2001:db8:1::${(i + 1).toString(16)}]:51820`);
    const v6 = reportFrom('h1', { candidates: [{ ...base, local: addrs }] });
    const peersOf = (r: CandidateReport | null) => distributeCandidates([honest[0], honest[2], ...(r ? [r] : [])]).get('h3')?.networks[N]?.h1 ?? [];
    assert.ok(peersOf(null).length === 0 && peersOf(reportFrom('h1', { candidates: [base] })).length > 0, 'baseline');
    const lost = [...(peersOf(many).length ? [] : ['257 networks']), ...(peersOf(v6).length ? [] : ['17 addresses'])];
    assert.deepEqual(lost, [], `h3 gets no candidate for h1 with: ${lost.join(', ')}`);
  },
);
