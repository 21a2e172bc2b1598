// Red team, direct paths (issue #15): the agent's side, over its admin sockets with a fake data plane. A local
// user in the read-only socket's group, candidates that arrive while a reconcile runs, and an agent restart.
// A test marked `todo: 'finding: …'` demonstrates a hole that is still open (it fails today).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.ts';
import { buildAdminApp } from '../../src/admin/app.ts';
import { Agent } from '../../src/agent/agent.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import type { PeerCounters } from '../../src/agent/paths.ts';
import type { DesiredNetwork, ResourceReport } from '../../src/agent/ports.ts';
import { State } from '../../src/agent/state.ts';
import { openStore } from '../../src/agent/store.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';
import type { Peer, Resource } from '../../src/plan/types.ts';
import { parseCidr } from '../../topology/cidr.ts';
import { directPeerAllowedIps, routeOf } from '../../topology/paths.ts';
import { FakeDriver, part, planFor, signed, tenantKeys } from '../helpers/agent-fixtures.ts';
import { blueprint, identity, net } from '../helpers/fixtures.ts';

const ME = 'h1';
const UNDERLAY = '192.168.1.10';

class PathDriver extends FakeDriver {
  setPeersCalls: { networkId: string; peers: Peer[] }[] = [];
  counters = new Map<string, { rxBytes: number; latestHandshake: number; endpoint: string | null }>();
  counterReads = 0;
  /** While set, apply() waits for it (a reconcile in progress). */
  gate: Promise<void> | null = null;
  applying = false;
  readsDuringApply = 0;
  override async apply(desired: DesiredNetwork[]): Promise<ResourceReport[]> {
    this.applying = true;
    try {
      if (this.gate) await this.gate;
      return await super.apply(desired);
    } finally {
      this.applying = false;
    }
  }
  async peerCounters(networkId: string): Promise<PeerCounters[] | null> {
    this.counterReads++;
    if (this.applying) this.readsDuringApply++;
    const d = this.current.get(networkId);
    if (!d) return null;
    return d.resource.peers.map((p) => ({ publicKey: p.publicKey, rxBytes: 0, latestHandshake: 0, endpoint: p.endpoint, ...this.counters.get(p.publicKey) }));
  }
  async setPeers(networkId: string, peers: Resource['peers']): Promise<string[]> {
    this.setPeersCalls.push({ networkId, peers: structuredClone(peers) });
    const d = this.current.get(networkId);
    if (d) this.current.set(networkId, { ...d, resource: { ...d.resource, peers: structuredClone(peers) } });
    return [`set peers of ${networkId}`];
  }
  async underlayAddresses(): Promise<string[]> {
    return [UNDERLAY];
  }
}

const acmeBp = blueprint([net({ nodes: ['pa', 'h1', 'h2', 'h3'] })]);
const acmePlan = planFor(acmeBp, ['pa', { id: 'h1' }, { id: 'h2' }, { id: 'h3' }]);
const globexBp = blueprint([net({ nodes: ['pa', 'h1', 'g2'], ipRange: '10.2.0.0/16' })], { tenant: 'globex', name: 'web' });
const globexPlan = planFor(globexBp, ['pa', { id: 'h1', reservedPorts: [51820] }, { id: 'g2' }]);
const A = acmePlan.networks[0].id;
const G = globexPlan.networks[0].id;
const mine = acmePlan.networks[0].resources.find((r) => r.node === ME)!;
const h2 = mine.peers.find((p) => p.node === 'h2')!;
const relayKey = mine.peers.find((p) => p.node === mine.accessNode)!.publicKey;
const globexPort = globexPlan.networks[0].resources.find((r) => r.node === ME)!.listenPort;
const GOOD = { networks: { [A]: { h2: ['198.51.100.7:40001', '192.168.1.20:51820'], h3: ['198.51.100.8:40002'] }, [G]: { g2: ['198.51.100.9:40009'] } } };

async function bed() {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-redteam-'));
  const { db, versions } = openStore(dir);
  const state = new State(db);
  const driver = new PathDriver();
  const clock = { now: Date.now() };
  const config: AgentConfig = {
    nodeId: ME,
    identityKeyFile: join(dir, 'identity.key'),
    stateDir: dir,
    adminSocket: join(dir, 'admin.sock'),
    endpoints: [],
    wireguardBackend: 'userspace',
    reconcileIntervalMs: 30000,
    trustedTenants: Object.fromEntries(['acme', 'globex'].map((t) => [t, tenantKeys(t).publicKey.toString()])),
    logLevel: 'silent',
  };
  const make = () => new Agent({ config, state, identity: new X25519Secret(identity(ME).privateKey), driver, log: createLogger({ level: 'silent' }), moduleVersions: versions, now: () => clock.now });
  const agent = make();
  const app = buildAdminApp({ agent });
  const readApp = buildAdminApp({ agent, readOnly: true });
  for (const [bp, plan] of [
    [acmeBp, acmePlan],
    [globexBp, globexPlan],
  ] as const) {
    const r = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(plan, ME) } });
    assert.equal(r.statusCode, 200, r.body);
  }
  return {
    agent,
    make,
    driver,
    clock,
    app,
    readApp,
    async close(...more: Agent[]) {
      await app.close();
      await readApp.close();
      for (const a of [agent, ...more]) await a.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const applied = (d: PathDriver) => d.current.get(A)!.resource.peers;
const h2Host = parseCidr(h2.directSubnet!)!.base + 7;

/** h2 sends (a packet, a fresh handshake) and the agent's path tick runs. */
async function h2Sends(b: Awaited<ReturnType<typeof bed>>, agent: Agent, ms = 600) {
  b.clock.now += ms;
  const c = b.driver.counters.get(h2.publicKey) ?? { rxBytes: 0, latestHandshake: 0, endpoint: '198.51.100.7:40001' };
  b.driver.counters.set(h2.publicKey, { ...c, rxBytes: c.rxBytes + 148, latestHandshake: Math.floor(b.clock.now / 1000) });
  await agent.paths!.tick();
}

test('defended: GET and PUT /v1/candidates are refused on the read-only socket (HEAD too); the admin socket answers', async () => {
  const b = await bed();
  try {
    for (const [method, payload] of [
      ['GET', undefined],
      ['HEAD', undefined],
      ['PUT', GOOD],
    ] as const) {
      const r = await b.readApp.inject({ method, url: '/v1/candidates', ...(payload ? { payload } : {}) });
      assert.equal(r.statusCode, 403, `${method}: ${r.statusCode} ${r.body}`);
    }
    assert.equal(b.agent.pathViews().every((v) => v.candidates.length === 0), true, 'nothing taken from the read-only socket');
    assert.equal((await b.app.inject({ method: 'GET', url: '/v1/candidates' })).statusCode, 200);
    assert.equal((await b.app.inject({ method: 'PUT', url: '/v1/candidates', payload: GOOD })).statusCode, 200);
  } finally {
    await b.close();
  }
});

test(
  "the read-only socket's GET /v1/paths does not show other nodes' underlay (LAN) addresses that GET /v1/candidates keeps to root",
  async () => {
    const b = await bed();
    try {
      assert.equal((await b.app.inject({ method: 'PUT', url: '/v1/candidates', payload: GOOD })).statusCode, 200);
      const body = (await b.readApp.inject({ method: 'GET', url: '/v1/paths' })).body;
      const diag = (await b.readApp.inject({ method: 'GET', url: `/v1/diagnose?network=${A}` })).body;
      for (const [what, text] of [
        ['GET /v1/paths', body],
        ['GET /v1/diagnose', diag],
      ]) {
        assert.ok(!text.includes('192.168.1.20'), `${what} on the read-only socket shows h2's LAN address: ${text.slice(0, 300)}`);
      }
    } finally {
      await b.close();
    }
  },
);

test(
  "a candidate at this node's own underlay address (its own UDP services, another tenant's WireGuard port) is not dialled",
  async () => {
    const b = await bed();
    try {
      const own = { networks: { [A]: { h2: [`${UNDERLAY}:${globexPort}`, `${UNDERLAY}:53`] } } };
      const r = await b.app.inject({ method: 'PUT', url: '/v1/candidates', payload: own });
      await b.agent.paths!.tick();
      const ep = applied(b.driver).find((p) => p.node === 'h2')!.endpoint;
      assert.ok(r.statusCode !== 200 || (ep !== `${UNDERLAY}:${globexPort}` && ep !== `${UNDERLAY}:53`), `accepted (HTTP ${r.statusCode}); h2's direct peer dials ${ep}`);
    } finally {
      await b.close();
    }
  },
);

test('defended: candidates taken while a reconcile runs: the reconcile applies one consistent snapshot, the tick waits for the mutex', async () => {
  const b = await bed();
  try {
    b.agent.start();
    for (let i = 0; i < 100 && !b.agent.lastReconcile?.reason.startsWith('interval'); i++) await new Promise((r) => setTimeout(r, 20));
    let open!: () => void;
    b.driver.gate = new Promise<void>((r) => (open = r));
    const calls = b.driver.calls.length;
    const running = b.agent.reconcile('red-team');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(b.driver.applying, true, 'the reconcile is inside apply');
    // PUT arrives mid-reconcile (the route calls setCandidates outside the mutex).
    assert.equal((await b.app.inject({ method: 'PUT', url: '/v1/candidates', payload: GOOD })).statusCode, 200);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(b.driver.readsDuringApply, 0, 'no path tick ran during the apply');
    open();
    await running;
    b.driver.gate = null;
    // The blocked apply used the state from before the PUT: no candidate endpoint on any direct peer.
    const snap = b.driver.calls[calls].find((d) => d.networkId === A)!.resource.peers;
    assert.ok(snap.filter((p) => p.directSubnet !== undefined).every((p) => p.endpoint === null), JSON.stringify(snap));
    // Then the queued tick runs and probes with the new candidates.
    for (let i = 0; i < 100 && !b.agent.pathViews().some((v) => v.probing); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(b.agent.pathViews().every((v) => v.probing), JSON.stringify(b.agent.pathViews()));
    assert.equal(b.driver.readsDuringApply, 0);
  } finally {
    await b.close();
  }
});

test('defended: a restarted agent (candidates forgotten) hands a direct subnet back to the relay at its first reconcile, and returns to direct when the peer still sends', async () => {
  const b = await bed();
  let second: Agent | null = null;
  try {
    await b.agent.reconcile('red-team');
    assert.equal((await b.app.inject({ method: 'PUT', url: '/v1/candidates', payload: GOOD })).statusCode, 200);
    await b.agent.paths!.tick();
    for (let i = 0; i < 4; i++) await h2Sends(b, b.agent);
    assert.equal(routeOf(h2Host, applied(b.driver)), h2.publicKey, 'direct before the restart');
    assert.deepEqual(applied(b.driver).find((p) => p.node === 'h2')!.allowedIps, directPeerAllowedIps(h2));
    await b.agent.stop();
    // The device keeps its peers (halves included) across the restart; the new agent has no candidates.
    second = b.make();
    await second.reconcile('start');
    assert.equal(routeOf(h2Host, applied(b.driver)), relayKey, 'h2 subnet back on the relay at the first reconcile');
    assert.deepEqual(second.pathViews().find((v) => v.node === 'h2')!.candidates, []);
    // h2 (still direct on its side) keeps sending: probe back at the learnt endpoint, proven again.
    // (A relayed pair's network is read once a second: some of these 600 ms ticks skip it.)
    for (let i = 0; i < 8; i++) await h2Sends(b, second);
    assert.equal(second.pathViews().find((v) => v.node === 'h2')!.path, 'direct');
    assert.equal(routeOf(h2Host, applied(b.driver)), h2.publicKey);
  } finally {
    await b.close(...(second ? [second] : []));
  }
});
