// A control-plane test bed: a real etcd (1 or 3 members, optional TLS), a controller, and agents in process
// (the real Agent pipeline over a FakeDriver, each with its own etcd client, linked by EtcdLink).
import { createLogger } from '../../src/log.ts';
import type { Blueprint } from '../../src/blueprint/types.ts';
import { EtcdLink } from '../../src/agent/etcd-link.ts';
import { connectEtcd, Controller, ControlOps, Keys, type ControllerOptions, type Etcd3, type EtcdConnectOptions } from '../../src/control/index.ts';
import { agentBed, signed, tenantKeys, type AgentBed } from './agent-fixtures.ts';
import { identity } from './fixtures.ts';
import { Key, X25519Secret } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { signerOf } from '../../src/control/signed.ts';
import { CONTROLLER_USER, nodeRole, Rbac, ROOT_USER } from '../../src/control/rbac.ts';
import { clientTls, startEtcd, type EtcdCluster, type EtcdOptions } from './etcd.ts';

export interface BedAgent {
  node: string;
  bed: AgentBed;
  link: EtcdLink;
  /** Stops heartbeating like a crash (the lease expires); the data plane (FakeDriver) is left as it is. */
  kill(): Promise<void>;
  /** Starts a new link for the same agent and store (a node coming back). */
  restart(): Promise<void>;
  /** The access node of this agent's resource in its stored part (first network). */
  accessNode(): string | null;
  generation(tenant?: string, name?: string): number;
}

export interface ControlBed {
  cluster: EtcdCluster;
  keys: Keys;
  client: Etcd3;
  ops: ControlOps;
  /** How the operator connects (with rbac: CN root). */
  etcd: EtcdConnectOptions;
  /** rbac beds: the operator's and the controller's ed25519 secrets (enrollments and parts are signed). */
  operatorKey: Key | null;
  controllerKey: Key | null;
  /** Connection options as the etcd user `cn` (a client certificate with that CN; rbac beds). */
  as(cn: string): EtcdConnectOptions;
  controllers: Controller[];
  agents: Map<string, BedAgent>;
  controller(o?: Partial<ControllerOptions>): Promise<Controller>;
  /** An agent; the operator approves its identity key first unless `enroll: false`. */
  agent(node: string, endpoints: string[], o?: { leaseTtlSec?: number; enroll?: boolean }): Promise<BedAgent>;
  submit(bp: Blueprint): Promise<void>;
  close(): Promise<void>;
}

export const quiet = createLogger({ level: process.env.ZMESH_TEST_LOG ?? 'silent' });

export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 20000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/**
 * `rbac`: TLS with etcd auth on, like a real deployment: the bed's client is the operator (CN root), the
 * controller runs as zmesh-controller, each agent as zmesh-node-<id> with the role `node approve` creates.
 */
export async function controlBed(o: EtcdOptions & { leaseTtlSec?: number; tenants?: string[]; rbac?: boolean } = {}): Promise<ControlBed> {
  const cluster = await startEtcd({ ...o, tls: o.tls || o.rbac });
  const as = (cn: string | null): EtcdConnectOptions => {
    const tls = cluster.tls;
    if (!tls || cn === null) return { urls: cluster.urls, ...clientTls(tls) };
    const u = tls.user(cn);
    return { urls: cluster.urls, cacert: tls.ca, cert: u.cert, key: u.key };
  };
  const etcd = as(o.rbac ? ROOT_USER : null);
  const client = connectEtcd(etcd);
  if (o.rbac) await new Rbac(client, new Keys()).enable();
  const ops = new ControlOps(client);
  // A real deployment (rbac beds) also signs: enrollments with an operator key, parts with a controller key.
  const operatorKey = o.rbac ? Key.fromBytes(seededRandom('bed-operator')(32)) : null;
  const controllerKey = o.rbac ? Key.fromBytes(seededRandom('bed-controller')(32)) : null;
  const approve = async (node: string) => {
    // As `zmesh controller node approve` does: the role before the enrollment.
    if (o.rbac) await new Rbac(client, new Keys()).ensureNode(node);
    await ops.approveNode(node, identity(node).publicKey.toString(), { operatorKey: operatorKey ?? undefined });
  };
  for (const t of o.tenants ?? ['acme']) await ops.addTenant(t, tenantKeys(t).publicKey.toString());
  const controllers: Controller[] = [];
  const agents = new Map<string, BedAgent>();
  const bed: ControlBed = {
    cluster,
    keys: new Keys(),
    client,
    ops,
    etcd,
    as,
    operatorKey,
    controllerKey,
    controllers,
    agents,
    async controller(co = {}) {
      const signing = controllerKey ? { signingKey: controllerKey, operatorKeys: [signerOf(operatorKey!)] } : {};
      const c = new Controller({ etcd: as(o.rbac ? CONTROLLER_USER : null), log: quiet, ...signing, graceMs: 1000, holdDownMs: 60000, debounceMs: 100, leaderTtlSec: 2, ...co });
      controllers.push(c);
      c.start();
      await c.whenLeader();
      return c;
    },
    async agent(node, endpoints, ao = {}) {
      if (ao.enroll !== false) await approve(node);
      const b = agentBed(node);
      const make = () =>
        new EtcdLink({
          agent: b.agent,
          state: b.state,
          etcd: as(o.rbac ? nodeRole(node) : null),
          controllerKeys: controllerKey ? [signerOf(controllerKey)] : [],
          nodeId: node,
          identity: new X25519Secret(identity(node).privateKey),
          endpoints,
          leaseTtlSec: ao.leaseTtlSec ?? o.leaseTtlSec ?? 2,
          statusIntervalMs: 1000,
          retryIntervalMs: 500,
          stateDir: b.dir,
          log: quiet,
        });
      const a: BedAgent = {
        node,
        bed: b,
        link: make(),
        async kill() {
          await a.link.stop({ revoke: false });
        },
        async restart() {
          a.link = make();
          a.link.start();
          await waitFor(`${node} registered again`, () => a.link.registered);
        },
        accessNode() {
          return b.state.blueprints()[0]?.part.networks[0]?.resource.accessNode ?? null;
        },
        generation(tenant = 'acme', name = 'shop') {
          return b.state.blueprint(tenant, name)?.generation ?? 0;
        },
      };
      a.link.start();
      agents.set(node, a);
      await waitFor(`${node} registered`, () => a.link.registered);
      return a;
    },
    async submit(bp) {
      await ops.submit(signed(bp));
    },
    async close() {
      for (const a of agents.values()) {
        await a.link.stop({ revoke: false }).catch(() => undefined);
        a.bed.close();
      }
      for (const c of controllers) await c.kill().catch(() => undefined);
      client.close();
      await cluster.stop();
    },
  };
  return bed;
}

/**
 * etcd clients as nodes of an rbac bed (`connect('h1')`: CN zmesh-node-h1), and the watches an attacker opened
 * with them; `close()` cancels the watches (bounded: a watch cancelled twice never settles in etcd3) and closes
 * the clients.
 */
export function nodeClients(bed: ControlBed): { connect(node: string): Etcd3; watchers: { cancel(): Promise<void> }[]; close(): Promise<void> } {
  const clients: Etcd3[] = [];
  const watchers: { cancel(): Promise<void> }[] = [];
  return {
    connect(node) {
      const c = connectEtcd(bed.as(nodeRole(node)));
      clients.push(c);
      return c;
    },
    watchers,
    async close() {
      for (const w of watchers) await Promise.race([w.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
      for (const x of clients) x.close();
    },
  };
}
