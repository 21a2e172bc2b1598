// The agent's handshake rounds (src/agent/agent.ts over src/agent/handshakes.ts) with a fake data plane that counts
// reads and starts: the bounded sequence after a new network, nothing after stop(), and a reconcile that comes
// between two networks of a running round still gets its new peers started (a round takes the agent's lock one
// network at a time, so a submission can come in between).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.ts';
import type { PeerCounters } from '../../src/agent/paths.ts';
import { State } from '../../src/agent/state.ts';
import { openStore } from '../../src/agent/store.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';
import { createLogger } from '../../src/log.ts';
import { MAX_ATTEMPTS } from '../../src/agent/handshakes.ts';
import { FakeDriver, part, planFor, signed, tenantKeys } from '../helpers/agent-fixtures.ts';
import { blueprint, identity, net } from '../helpers/fixtures.ts';
import type { Plan } from '../../src/plan/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Peers of `answered` networks have a handshake; the others never answer (each start counts 148 bytes sent). */
class HandshakeDriver extends FakeDriver {
  log: string[] = [];
  readMs = 0;
  answered = new Set<string>();
  sent = new Map<string, number>();
  async peerCounters(id: string): Promise<PeerCounters[] | null> {
    this.log.push(`read ${id}`);
    if (this.readMs) await sleep(this.readMs);
    const d = this.current.get(id);
    return d ? d.resource.peers.map((p) => ({ publicKey: p.publicKey, rxBytes: 0, txBytes: this.sent.get(p.publicKey) ?? 0, latestHandshake: this.answered.has(id) ? 1_700_000_000 : 0, endpoint: p.endpoint })) : null;
  }
  async setPeers(id: string, _peers: unknown, reset: readonly string[] = []): Promise<string[]> {
    this.log.push(`reset ${id} ${reset.length}`);
    for (const k of reset) this.sent.delete(k);
    return [];
  }
  async startHandshakes(id: string, keys: readonly string[]): Promise<string[]> {
    this.log.push(`start ${id} ${keys.length}`);
    for (const k of keys) this.sent.set(k, (this.sent.get(k) ?? 0) + 148);
    return [];
  }
}

function bed(node: string) {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-agent-hs-'));
  const { db, versions } = openStore(dir);
  const driver = new HandshakeDriver();
  const agent = new Agent({
    config: { nodeId: node, identityKeyFile: join(dir, 'identity.key'), stateDir: dir, adminSocket: join(dir, 'admin.sock'), endpoints: [], wireguardBackend: 'userspace', reconcileIntervalMs: 30000, trustedTenants: { acme: tenantKeys('acme').publicKey.toString() }, logLevel: 'silent' },
    state: new State(db),
    identity: new X25519Secret(identity(node).privateKey),
    driver,
    log: createLogger({ level: 'silent' }),
    moduleVersions: versions,
  });
  return { agent, driver, close: async () => (await agent.stop(), db.close(), rmSync(dir, { recursive: true, force: true })) };
}

// Ten public nodes: a node starts the handshakes with the peers whose keys sort after its own in a network.
const nodes = Array.from({ length: 10 }, (_, i) => `node-${i}`);
const inv = nodes.map((id, i) => ({ id, endpoints: [`203.0.113.${i + 1}`] }));

/** How many peers `node` starts in each network of `plans` (its key in that network against theirs). */
function later(plans: Plan[], node: string): number[] {
  return plans.flatMap((p) => p.networks.map((n) => {
    const own = n.resources.find((r) => r.node === node)!.publicKey;
    return n.resources.filter((r) => r.node !== node && r.publicKey > own).length;
  }));
}

/** A node that starts some peers in every network of `plans`. */
function starter(plans: Plan[]): string {
  const node = nodes.find((x) => later(plans, x).every((k) => k > 0));
  assert.ok(node, 'a node with peers after it in every network');
  return node;
}

test('agent: a new network is started at once, repaired once a second, left alone after MAX_ATTEMPTS; nothing after stop', { timeout: 30_000 }, async () => {
  const bp = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })]);
  const plan = planFor(bp, inv);
  const node = starter([plan]);
  const k = later([plan], node)[0];
  const { agent, driver, close } = bed(node);
  try {
    const id = plan.networks[0].id;
    agent.start();
    await agent.submit(signed(bp), part(plan, node));
    await sleep((MAX_ATTEMPTS + 1) * 1000 + 700);
    const mine = driver.log.filter((l) => l.includes(id));
    assert.deepEqual(
      mine,
      [
        `read ${id}`, `start ${id} ${k}`,
        ...Array.from({ length: MAX_ATTEMPTS - 1 }, () => [`read ${id}`, `reset ${id} ${k}`, `start ${id} ${k}`]).flat(),
        `read ${id}`, `reset ${id} ${k}`,
      ],
    );
    const n = driver.log.length;
    await agent.reconcile('test');
    await sleep(1500);
    assert.equal(driver.log.length, n, 'done with: a reconcile that adds nothing reads nothing');
  } finally {
    await close();
  }
  const after = driver.log.length;
  await sleep(1200);
  assert.equal(driver.log.length, after, 'nothing after stop()');
});

test('agent: a submission between two networks of a running round still gets its new peers started', { timeout: 30_000 }, async () => {
  const bp1 = blueprint([net({ name: 'one', nodes, ipRange: '10.1.0.0/16' }), net({ name: 'two', nodes, ipRange: '10.2.0.0/16' })]);
  const p1 = planFor(bp1, inv);
  const bp2 = blueprint([net({ name: 'three', nodes, ipRange: '10.3.0.0/16' })], { name: 'other' });
  const p2 = planFor(bp2, inv.map((n) => ({ ...n, reservedPorts: [51820, 51821] })));
  const node = starter([p1, p2]);
  const { agent, driver, close } = bed(node);
  try {
    for (const n of p1.networks) driver.answered.add(n.id);
    agent.start();
    await sleep(50);
    driver.readMs = 300;
    await agent.submit(signed(bp1), part(p1, node));
    await sleep(100); // the round reads network one
    const three = p2.networks[0].id;
    await agent.submit(signed(bp2), part(p2, node));
    await sleep(2500);
    assert.ok(driver.log.includes(`read ${p1.networks[1].id}`), `the round went on to network two: ${driver.log.join(' | ')}`);
    assert.ok(driver.log.some((l) => l.startsWith(`start ${three} `)), `network three started: ${driver.log.join(' | ')}`);
  } finally {
    await close();
  }
});
