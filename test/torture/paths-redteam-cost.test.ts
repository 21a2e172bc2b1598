// Red team, direct paths (issue #15): what the candidate channel and the path tick cost at scale, with fakes
// (no WireGuard, no etcd). Timings are printed, never asserted; counts of reads and writes are asserted where
// they show a cost that grows with something a hostile node or tenant controls (those are `todo` findings).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { createLogger } from '../../src/log.ts';
import { Agent, OBSERVED_TTL_MS } from '../../src/agent/agent.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import { validateCandidates } from '../../src/agent/candidates.ts';
import { PathManager, type PeerCounters } from '../../src/agent/paths.ts';
import type { DesiredNetwork } from '../../src/agent/ports.ts';
import { State } from '../../src/agent/state.ts';
import { openStore } from '../../src/agent/store.ts';
import { CandidateRelay, REPORT_HOLD_MS } from '../../src/control/candidate-relay.ts';
import { distributeCandidates, type CandidateReport, type CandidateReportNetwork } from '../../src/control/candidates.ts';
import { Keys } from '../../src/control/keys.ts';
import { signRecord } from '../../src/control/records.ts';
import { Key, X25519Secret } from '../../src/crypto/keys.ts';
import type { Peer } from '../../src/plan/types.ts';
import { formatCidr } from '../../topology/cidr.ts';
import { FakeDriver } from '../helpers/agent-fixtures.ts';
import { identity } from '../helpers/fixtures.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { epochsOf } from '../helpers/relay-epochs.ts';

const RANGE = '10.0.0.0/8';
const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;
const lan = (i: number) => `192.168.${Math.floor(i / 250) % 250}.${(i % 250) + 1}:51820`;
const wan = (i: number) => `198.51.${100 + (Math.floor(i / 250) % 100)}.${(i % 250) + 1}:40000`;
const subnet = (i: number) => formatCidr({ base: (10 << 24) + 16 * i + 256 * 256, prefix: 28 });

test('distributeCandidates: up to 2,000 hidden nodes in one network (time and size of one round)', () => {
  for (const n of [250, 500, 1000, 2000]) {
    const ids = Array.from({ length: n }, (_, i) => `h${i}`);
    const reports: CandidateReport[] = [
      { node: 'pa', networks: [{ networkId: 'n000000000', ipRange: RANGE, hidden: false, directPeers: [], via: null, local: [], observed: Object.fromEntries(ids.map((id, i) => [id, wan(i)])) }] },
      ...ids.map((id, i) => ({ node: id, networks: [{ networkId: 'n000000000', ipRange: RANGE, hidden: true, directPeers: ids.filter((x) => x !== id), via: 'pa', local: [lan(i)], observed: {} }] })),
    ];
    const t0 = performance.now();
    const subs = distributeCandidates(reports);
    const tDist = ms(t0);
    const t1 = performance.now();
    let bytes = 0;
    for (const s of subs.values()) bytes += JSON.stringify(s).length;
    const tJson = ms(t1);
    console.log(`distributeCandidates(${n} hidden): ${tDist} ms; JSON of all submissions ${tJson} ms, ${Math.round(bytes / 1e6)} MB (${Math.round(bytes / n / 1024)} KiB per node; the PUT route takes 256 KiB)`);
    assert.equal(subs.size, n);
    assert.equal(Object.keys(subs.get('h0')!.networks['n000000000']).length, n - 1);
  }
});

test(
  "the etcd relay with 2,000 hidden nodes: a round never stalls the controller's event loop past its leadership lease (5 s)",
  // Was a finding: the relay ran distributeCandidates (O(hidden²), synchronous) and wrote one signed record per
  // hidden node, each listing every other one: with 2,000 hidden nodes one round blocked the event loop for
  // 20 s in a CI run, and one node changing its endpoint rewrote ~200 MB of signed records. Now one table per
  // network (O(members)), each node filtering its own.
  { timeout: 600_000 },
  async () => {
    const n = 2000;
    const keys = new Keys();
    const ids = Array.from({ length: n }, (_, i) => `h${i}`);
    const secrets = new Map([...ids, 'pa'].map((id) => [id, new X25519Secret(identity(id).privateKey)]));
    const pins = new Map([...secrets].map(([id, s]) => [id, s.publicKey.toString()]));
    let writes = 0;
    let written = 0;
    const client = {
      kv: {
        txn: async (req: { success: { request_put: { value: Buffer } }[] }) => {
          writes++;
          written += req.success[0].request_put.value.length;
          // A real etcd answers over the network: the event loop runs meanwhile.
          await new Promise((r) => setImmediate(r));
          return { succeeded: true };
        },
      },
    } as unknown as Etcd3;
    let clock = 1_700_000_000_000;
    const members = new Map([['n000000000', new Set(ids)]]);
    const relay = new CandidateRelay({ client, keys, log: createLogger({ level: 'silent' }), pinned: (id) => pins.get(id), members: () => members, epochs: epochsOf(() => members), signingKey: Key.fromBytes(new Uint8Array(randomBytes(32))), guard: () => ({ key: keys.leader(), value: 'c1' }), now: () => clock });
    const texts = (relay as unknown as { texts: Map<string, string> }).texts;
    const round = () => (relay as unknown as { round(): Promise<void> }).round();
    const status = (id: string, networks: CandidateReportNetwork[], extra: Record<string, unknown> = {}) => texts.set(id, signRecord(keys.status(id), { node: id, candidates: networks, ...extra }, secrets.get(id)!));
    const hiddenNet = (id: string, local: string[]): CandidateReportNetwork => ({ networkId: 'n000000000', ipRange: RANGE, hidden: true, directPeers: ids.filter((x) => x !== id), via: 'pa', local, observed: {} });
    /** Runs a round and measures the longest stretch the event loop could not run a timer. */
    const measured = async () => {
      let last = performance.now();
      let stall = 0;
      const beat = setInterval(() => {
        const t = performance.now();
        stall = Math.max(stall, t - last);
        last = t;
      }, 10);
      const t0 = performance.now();
      const w0 = writes;
      const b0 = written;
      await round();
      await new Promise((r) => setTimeout(r, 20));
      clearInterval(beat);
      return { ms: ms(t0), stall: Math.round(stall), writes: writes - w0, mb: Math.round((written - b0) / 1e6) };
    };
    status('pa', [{ networkId: 'n000000000', ipRange: RANGE, hidden: false, directPeers: [], via: null, local: [], observed: Object.fromEntries(ids.map((id, i) => [id, wan(i)])) }]);
    for (const [i, id] of ids.entries()) status(id, [hiddenNet(id, [lan(i)])]);
    const first = await measured();
    // A status write that changes nothing in the candidates (honest nodes rewrite their status every 15 s).
    status('h0', [hiddenNet('h0', [lan(0)])], { noise: 1 });
    const same = await measured();
    // One node changes its local endpoint (after its report's hold): the network's one table is written again.
    clock += REPORT_HOLD_MS;
    status('h0', [hiddenNet('h0', ['203.0.113.9:51820'])]);
    const changed = await measured();
    console.log(`relay(${n} hidden): first round ${JSON.stringify(first)}; a status write with no candidate change ${JSON.stringify(same)}; one node's new local endpoint ${JSON.stringify(changed)} (ms: round time; stall: longest event-loop block, ms; mb: bytes written to etcd)`);
    assert.equal(first.writes, 1, 'one table');
    assert.equal(same.writes, 0);
    assert.equal(changed.writes, 1, 'the one table again');
    assert.ok(changed.mb <= 1, `${changed.mb} MB written for one node's change`);
    assert.ok(Math.max(first.stall, same.stall, changed.stall) < 5000, `the event loop was blocked for ${Math.max(first.stall, same.stall, changed.stall)} ms in one round`);
  },
);

/** A hidden resource with `count` direct peers (fake keys: the path manager never parses them). */
function hiddenNetwork(id: string, count: number, offset = 0): DesiredNetwork {
  const peers: Peer[] = [{ node: 'pa', kind: 'node', publicKey: `relay-${id}`, endpoint: '203.0.113.1:51820', allowedIps: ['10.0.0.0/9'], persistentKeepalive: 25 }];
  for (let i = 0; i < count; i++) peers.push({ node: `h${i + offset}`, kind: 'node', publicKey: `key-${id}-${i}`, endpoint: null, allowedIps: [], persistentKeepalive: null, directSubnet: subnet(i + offset) });
  return {
    tenant: 't',
    blueprint: 'b',
    networkId: id,
    networkName: id,
    ipRange: RANGE,
    egress: false,
    resource: { node: 'me', subnet: '10.255.255.0/28', gateway: '10.255.255.1', wgAddress: '10.255.255.14/32', listenPort: 51820, publicKey: 'me', sealedPrivateKey: 'x', sealedTo: 'x', hidden: true, accessNode: 'pa', peers },
  };
}

function pathManager(desired: DesiredNetwork[]) {
  const clock = { now: 1_700_000_000_000 };
  const stats = { reads: 0, setPeers: 0, peersSet: 0 };
  const m = new PathManager({
    now: () => clock.now,
    desired: () => desired,
    read: async (id): Promise<PeerCounters[]> => {
      stats.reads++;
      return desired.find((d) => d.networkId === id)!.resource.peers.map((p) => ({ publicKey: p.publicKey, rxBytes: 0, latestHandshake: 0, endpoint: null }));
    },
    setPeers: async (_id, peers) => {
      stats.setPeers++;
      stats.peersSet += peers.length;
      return [];
    },
    event: () => undefined,
  });
  return { m, clock, stats };
}

test('10,000 direct peers in one network: validating their candidates, a tick, the views', () => {
  return (async () => {
    const n = 10_000;
    const d = hiddenNetwork('n000000001', n);
    const { m, stats } = pathManager([d]);
    const body = { networks: { [d.networkId]: Object.fromEntries(Array.from({ length: n }, (_, i) => [`h${i}`, [wan(i), lan(i)]])) } };
    let t0 = performance.now();
    const problems = m.setCandidates(body);
    const tSet = ms(t0);
    assert.deepEqual(problems, []);
    t0 = performance.now();
    await m.tick();
    const tTick = ms(t0);
    t0 = performance.now();
    await m.tick();
    const tIdle = ms(t0);
    t0 = performance.now();
    const views = m.views();
    const tViews = ms(t0);
    console.log(`${n} direct peers: body ${Math.round(JSON.stringify(body).length / 1024)} KiB (PUT limit 256 KiB; etcd has none); setCandidates ${tSet} ms; first tick (all start probing) ${tTick} ms, ${stats.setPeers} setPeers of ${stats.peersSet} peers; idle tick ${tIdle} ms; views ${tViews} ms`);
    assert.equal(views.length, n);
    assert.ok(views.every((v) => v.probing));
    // validateCandidates alone, for the record.
    t0 = performance.now();
    validateCandidates(body, m.index());
    console.log(`validateCandidates(${n} peers): ${ms(t0)} ms`);
  })();
});

test(
  'the path tick reads only what can change: many hidden networks, one pair probing',
  // Was a finding (every network read on every 500 ms tick while any pair probed: 2 × networks reads/s): the fast
  // cadence reads only networks with a probing pair or new candidates, the others once a second.
  async () => {
    const networks = 500;
    const desired = Array.from({ length: networks }, (_, i) => hiddenNetwork(`n${String(i).padStart(9, '0')}`, 3));
    const { m, stats, clock } = pathManager(desired);
    // One pair in one network has candidates (the hostile peer keeps it probing); no other has any.
    m.setCandidates({ networks: { [desired[0].networkId]: { h0: ['198.51.100.7:40001'] } } });
    let t0 = performance.now();
    await m.tick();
    const tTick = ms(t0);
    // Steady state over 5 s of ticks at the agent's cadence (500 ms while a pair probes).
    const before = stats.reads;
    let ticks = 0;
    for (const end = clock.now + 5000; clock.now < end; ticks++) {
      clock.now += m.probing() ? 500 : 1000;
      await m.tick();
    }
    const interval = 5000 / ticks;
    const perTick = (stats.reads - before) / ticks;
    clock.now += 1000;
    // All networks probing (each with one candidate pair): the tick's apply step is O(networks × states).
    m.setCandidates({ networks: Object.fromEntries(desired.map((d) => [d.networkId, { h0: ['198.51.100.7:40001'], h1: ['198.51.100.8:40001'], h2: ['198.51.100.9:40001'] }])) });
    t0 = performance.now();
    await m.tick();
    const tAll = ms(t0);
    t0 = performance.now();
    for (const d of desired) m.effective(d);
    const tEffective = ms(t0);
    console.log(`${networks} hidden networks × 3 direct peers: ${perTick} reads per tick, a tick every ${interval} ms → ${(perTick * 1000) / interval} reads/s; tick ${tTick} ms (instant reads); all probing: tick ${tAll} ms, ${stats.setPeers} setPeers; effective() over all networks (every reconcile, GET /v1/networks/:name, metrics) ${tEffective} ms`);
    // One read a second per network, and the probing network twice.
    assert.ok((perTick * 1000) / interval <= networks + 1, `${(perTick * 1000) / interval} device reads per second for one probing pair`);
  },
);

test(
  'GET /v1/candidates on an access node: a burst of requests reads each network once (was: every network per request)',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zmesh-redteam-cost-'));
    const { db, versions } = openStore(dir);
    let reads = 0;
    class CountingDriver extends FakeDriver {
      async peerCounters(): Promise<PeerCounters[] | null> {
        reads++;
        return [];
      }
      async setPeers(): Promise<string[]> {
        return [];
      }
    }
    const config = { nodeId: 'pa', identityKeyFile: join(dir, 'k'), stateDir: dir, adminSocket: join(dir, 's'), endpoints: [], wireguardBackend: 'userspace', reconcileIntervalMs: 30000, trustedTenants: {}, logLevel: 'silent' } as AgentConfig;
    const agent = new Agent({ config, state: new State(db), identity: new X25519Secret(identity('pa').privateKey), driver: new CountingDriver(), log: createLogger({ level: 'silent' }), moduleVersions: versions });
    try {
      const networks = 300;
      // This node is the access node of one hidden node in each of 300 networks (tenants' blueprints).
      const planned: DesiredNetwork[] = Array.from({ length: networks }, (_, i) => {
        const d = hiddenNetwork(`a${String(i).padStart(9, '0')}`, 0);
        return { ...d, resource: { ...d.resource, hidden: false, accessNode: null, peers: [{ node: `h${i}`, kind: 'node', publicKey: `k${i}`, endpoint: null, allowedIps: [subnet(i)], persistentKeepalive: null }] } };
      });
      (agent as unknown as { planned: () => DesiredNetwork[] }).planned = () => planned;
      // A flood: 20 requests at once, then 20 more back to back. Each network is read once (OBSERVED_TTL_MS).
      const t0 = performance.now();
      const reports = await Promise.all(Array.from({ length: 20 }, () => agent.candidateReport()));
      for (let i = 0; i < 20; i++) reports.push(await agent.candidateReport());
      console.log(`40 GET /v1/candidates on an access node of ${networks} networks within ${OBSERVED_TTL_MS} ms: ${reads} device reads, ${ms(t0)} ms (fake reads); before: ${40 * networks}`);
      assert.ok(reports.every((r) => r.networks.length === networks));
      assert.equal(reads, networks, `${reads} device reads for 40 reports`);
      // Fresh again once the read is older than the TTL: the periodic asks (1–2 s apart) always read.
      await new Promise((r) => setTimeout(r, OBSERVED_TTL_MS + 20));
      await agent.candidateReport();
      assert.equal(reads, 2 * networks);
    } finally {
      await agent.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
