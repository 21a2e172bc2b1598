// Fixtures for agent tests: a tenant key, signed blueprints, plans, a temp state dir, a fake data plane.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.ts';
import { signBlueprint } from '../../src/blueprint/index.ts';
import type { Blueprint, SignedBlueprint } from '../../src/blueprint/types.ts';
import { ed25519KeyPair, X25519Secret, type KeyPair } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { Agent } from '../../src/agent/agent.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import type { ActualNetwork, DesiredNetwork, DriverPort, ResourceReport } from '../../src/agent/ports.ts';
import { State } from '../../src/agent/state.ts';
import { openStore } from '../../src/agent/store.ts';
import { nodePart, planBlueprint, type NodePlanPart, type Plan } from '../../src/plan/index.ts';
import { identity, inventory } from './fixtures.ts';

export function tenantKeys(name: string): KeyPair {
  return ed25519KeyPair(seededRandom(`tenant:${name}`)(32));
}

export function signed(bp: Blueprint, key: KeyPair = tenantKeys(bp.tenant)): SignedBlueprint {
  return signBlueprint(bp, key.privateKey);
}

export function planFor(bp: Blueprint, nodes: Parameters<typeof inventory>[0], previous?: Plan): Plan {
  return planBlueprint(bp, inventory(nodes), { random: seededRandom(`plan:${bp.tenant}:${bp.version}${previous ? `:after-${previous.generation}` : ""}`), previous });
}

export function part(plan: Plan, node: string): NodePlanPart {
  return nodePart(plan, node);
}

/** A data plane that remembers what it was asked and reports success (or a scripted failure). */
export class FakeDriver implements DriverPort {
  calls: DesiredNetwork[][] = [];
  /** The `first` option of each call (undefined when none). */
  firsts: (string[] | undefined)[] = [];
  current = new Map<string, DesiredNetwork>();
  failNext: string | null = null;
  /** Like the real driver's counts: one read per desired network, one mutating command per change. */
  counts = { reads: 0, mutating: 0 };
  commandCounts(): { reads: number; mutating: number } {
    return { ...this.counts };
  }
  /** The `onlyFirst` option of each call. */
  onlyFirsts: boolean[] = [];
  async apply(desired: DesiredNetwork[], opts?: { first?: string[]; onlyFirst?: boolean }): Promise<ResourceReport[]> {
    this.calls.push(desired);
    this.firsts.push(opts?.first);
    this.onlyFirsts.push(opts?.onlyFirst ?? false);
    this.counts.reads += desired.length;
    if (this.failNext) {
      const m = this.failNext;
      this.failNext = null;
      throw new Error(m);
    }
    const reports: ResourceReport[] = [];
    const want = new Map(desired.map((d) => [d.networkId, d]));
    for (const [id] of this.current) if (!want.has(id)) reports.push({ networkId: id, ok: true, changes: [`removed network ${id}`], errors: [] });
    // onlyFirst (a submission): the other networks are left as they are, neither reported nor changed.
    const scope = opts?.onlyFirst && opts.first?.some((id) => want.has(id)) ? new Set(opts.first) : null;
    const next = new Map<string, DesiredNetwork>();
    for (const d of desired) {
      const had = this.current.get(d.networkId);
      if (scope && !scope.has(d.networkId)) {
        if (had) next.set(d.networkId, had);
        continue;
      }
      next.set(d.networkId, d);
      const same = had && JSON.stringify(had) === JSON.stringify(d);
      reports.push({ networkId: d.networkId, ok: true, changes: same ? [] : [`configured ${d.networkId}`], errors: [] });
    }
    this.current = next;
    this.counts.mutating += reports.reduce((a, r) => a + r.changes.length, 0);
    return reports;
  }
  async actual(networkId: string): Promise<ActualNetwork | null> {
    const d = this.current.get(networkId);
    if (!d) return null;
    const now = Math.floor(Date.now() / 1000);
    return {
      networkId,
      namespace: `n-${networkId}`,
      namespaceExists: true,
      interfaces: [{ name: `w-${networkId}`, kind: 'wireguard', up: true, mtu: 1420, addresses: [d.resource.wgAddress] }],
      routes: [{ dst: d.ipRange, dev: `w-${networkId}` }],
      wireguard: {
        interface: `w-${networkId}`,
        publicKey: d.resource.publicKey,
        listenPort: d.resource.listenPort,
        peers: d.resource.peers.map((p, i) => ({
          publicKey: p.publicKey,
          endpoint: p.endpoint,
          allowedIps: p.allowedIps,
          latestHandshake: i === 0 ? now - 12 : 0,
          rxBytes: 1234,
          txBytes: 5678,
          persistentKeepalive: p.persistentKeepalive,
        })),
      },
      firewall: { inbound_dropped: 0 },
    };
  }
  async ping(): Promise<{ ok: boolean; rttMs: number | null }> {
    return { ok: true, rttMs: 0.5 };
  }
  async tenantMtu(): Promise<number> {
    return 1420;
  }
  async close(): Promise<void> {}
}

export interface AgentBed {
  agent: Agent;
  state: State;
  driver: FakeDriver;
  dir: string;
  close(): void;
}

export function agentBed(node = 'node-a', tenants: string[] = ['acme', 'globex']): AgentBed {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-agent-'));
  const { db, versions } = openStore(dir);
  const state = new State(db);
  const driver = new FakeDriver();
  const config: AgentConfig = {
    nodeId: node,
    identityKeyFile: join(dir, 'identity.key'),
    stateDir: dir,
    adminSocket: join(dir, 'admin.sock'),
    endpoints: [],
    wireguardBackend: 'userspace',
    reconcileIntervalMs: 30000,
    trustedTenants: Object.fromEntries(tenants.map((t) => [t, tenantKeys(t).publicKey.toString()])),
    logLevel: 'silent',
  };
  const agent = new Agent({
    config,
    state,
    identity: new X25519Secret(identity(node).privateKey),
    driver,
    log: createLogger({ level: 'silent' }),
    moduleVersions: versions,
  });
  return {
    agent,
    state,
    driver,
    dir,
    close() {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
