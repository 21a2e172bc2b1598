// The node agent's core service: the provisioning pipeline (verify → check → record → apply), the reconcile
// loop, and the read views the admin socket serves. One mutex serializes every change and reconcile.
import type { Logger } from '../log.ts';
import { canonicalize, verifySigned } from '../blueprint/index.ts';
import type { Blueprint, SignedBlueprint } from '../blueprint/types.ts';
import type { X25519Secret } from '../crypto/keys.ts';
import { ValidationError, ZmeshError, type Problem } from '../errors.ts';
import { deviceEgressSources, type NodePlanPart } from '../plan/part.ts';
import { nameRecords, namesProblems, networkNames, type NameRecord } from '../plan/names.ts';
import type { AgentConfig } from './config.ts';
import { checkNodePart, type PortOwner } from './consistency.ts';
import { checkPolicyFlow, diagnose, policyView, type Diagnosis, type PolicyFlowCheck, type PolicyView } from './diagnose.ts';
import { renderMetrics } from './metrics.ts';
import type { ActualNetwork, DataplaneInfo, DesiredNetwork, DriverPort, ResourceReport } from './ports.ts';
import type { AgentEvent, State, StoredBlueprint } from './state.ts';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { RuntimeReport, VolumeView, WorkloadView } from '../../runtime/types.ts';
import { checkRuntimePart } from './runtime-consistency.ts';
import { runtimeDesired, type RuntimePort } from './runtime-port.ts';
import { PathManager, type PathView, type PeerCounters } from './paths.ts';
import { CHECK_MS, HandshakeStarter, type HandshakeNetwork } from './handshakes.ts';
import { nodePolicy } from './policy.ts';
import type { CompiledPolicy } from '../plan/policy.ts';
import type { CandidateReport } from '../control/candidates.ts';

export const AGENT_VERSION = '0.1.0';
/** After a submission (which applies its own networks only), the full reconcile of every network follows this soon. */
export const FOLLOW_UP_MS = 250;
/** How long one read of an access node's peer counters answers GET /v1/candidates (see observedReads). */
export const OBSERVED_TTL_MS = 500;

export interface AgentDeps {
  config: AgentConfig;
  state: State;
  identity: X25519Secret;
  driver: DriverPort;
  log: Logger;
  moduleVersions: Record<string, number>;
  now?: () => number;
  /** Workloads and volumes (runtime/); absent: the agent manages networks only. */
  runtime?: RuntimePort;
}

export interface ReconcileSummary {
  at: string;
  reason: string;
  durationMs: number;
  ok: boolean;
  networks: number;
  changes: number;
  /** Network errors by network id; runtime errors by subject ("workload t/b/w", "volume t/b/v", "engine"). */
  errors: { networkId: string; message: string }[];
  /** Present when the node has a runtime: desired workloads and volumes, and whether they converged. */
  runtime?: { workloads: number; volumes: number; changes: number; ok: boolean; engine: boolean };
  /**
   * What the reconcile cost: CPU milliseconds of the agent process and of the commands it ran and waited for
   * (ip, wg, nft…; from /proc/self/stat, 10 ms resolution; null where unavailable), and the commands run.
   * Work done meanwhile by admin requests counts too; dockerd's own CPU does not.
   */
  cost?: { agentCpuMs: number; commandsCpuMs: number | null; reads: number | null; mutating: number | null };
}

/** CPU milliseconds of this process's waited-for children (cutime + cstime), or null off Linux. */
export function childrenCpuMs(stat: () => string = () => readFileSync('/proc/self/stat', 'utf8')): number | null {
  try {
    const s = stat();
    // Fields after the ")" of comm: state(3) … utime(14) stime(15) cutime(16) cstime(17); USER_HZ is 100.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const cut = Number(f[13]);
    const cst = Number(f[14]);
    return Number.isFinite(cut) && Number.isFinite(cst) ? (cut + cst) * 10 : null;
  } catch {
    return null;
  }
}

export interface SubmitResult {
  tenant: string;
  name: string;
  version: number;
  generation: number;
  networks: { name: string; networkId: string; ok: boolean; changes: string[]; errors: ResourceReport['errors'] }[];
  /** Errors of this blueprint's workloads and volumes (present when the node has a runtime). */
  runtime?: { ok: boolean; errors: { subject: string; message: string }[] };
}

export interface NetworkSummary {
  tenant: string;
  blueprint: string;
  name: string;
  id: string;
  ipRange: string;
  subnet: string;
  listenPort: number;
  peers: number;
  generation: number;
  applied: boolean;
  lastError: string | null;
}

/**
 * Version rule (replay protection) with the plan-generation extension: a version greater than any accepted
 * before is new; the version currently accepted, with the very same blueprint and a HIGHER plan generation, is
 * an update of the plan only (a re-plan after a membership change); anything else is a replay (a lower or equal
 * generation of the same version is stale).
 */
export function replayProblem(bp: Blueprint, part: unknown, last: number, stored: StoredBlueprint | undefined): Problem | null {
  if (bp.version > last) return null;
  const generation = (part as { generation?: unknown } | null)?.generation;
  if (stored && stored.version === bp.version && bp.version === last && canonicalize(stored.envelope.blueprint) === canonicalize(bp)) {
    if (typeof generation === 'number' && Number.isInteger(generation) && generation > stored.generation) return null;
    return {
      code: 'E_REPLAY',
      path: 'version',
      message: `version ${bp.version} plan generation ${String(generation)} is stale: generation ${stored.generation} of this version is already accepted`,
      hint: 'send a newer plan generation, or raise the blueprint version and sign again',
    };
  }
  return { code: 'E_REPLAY', path: 'version', message: `version ${bp.version} is not newer than version ${last} already accepted`, hint: 'raise the blueprint version and sign again' };
}

/**
 * The addresses of this node's workloads on one network (both families), from the plan part: the only hosts on
 * the network's bridge here (the data plane forwards there for them only; netns/types.ts bridgeHosts).
 */
export function bridgeHosts(workloads: { node: string; network: string; ip: string; ip6?: string }[] | undefined, network: string, node: string): string[] {
  const out: string[] = [];
  for (const w of workloads ?? []) if (w.node === node && w.network === network) out.push(w.ip, ...(w.ip6 !== undefined ? [w.ip6] : []));
  return out.sort();
}

/** The names of the workloads this node runs against their placement (checked by checkRuntimePart before). */
function placedNamesProblems(bp: Blueprint, part: NodePlanPart): Problem[] {
  const out: Problem[] = [];
  part.networks.forEach((n, i) => {
    const spec = bp.networks.find((s) => s.name === n.name);
    if (!spec || n.names === undefined) return;
    const placed = part.workloads.filter((w) => w.network === n.name);
    // Only the placement comparison here: the rest was checked with the part (src/agent/consistency.ts).
    const bounds = { ipRange: '0.0.0.0/0', ipRange6: '::/0' };
    out.push(...namesProblems(spec, bp.workloads, bounds, n.names, `part.networks[${i}].names`, placed));
  });
  return out;
}

class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** GET /v1/networks/:name/dns: what the network's resolver serves here (docs/dns.md). */
export interface DnsView {
  /** tenant/blueprint/network */
  network: string;
  networkId: string;
  node: string;
  /** Where the resolver listens: this node's gateway addresses in the network. */
  listen: string[];
  /** The dnsmasq process; null when none was started (or the driver runs none). */
  resolver: { pid: number; alive: boolean } | null;
  records: NameRecord[];
}

/** GET /v1/status. */
export interface StatusView {
  node: string;
  /** The node's X25519 identity public key: what an operator pins (`zmesh controller node approve`). */
  identity: string;
  version: string;
  modules: Record<string, number>;
  networks: NetworkSummary[];
  lastReconcile: ReconcileSummary | null;
  errors: { networkId: string; message: string }[];
  /** What carries the tunnels; null until the backend is detected (and from agents before it existed). */
  dataplane: DataplaneInfo | null;
}

export class Agent {
  private readonly mutex = new Mutex();
  private timer: NodeJS.Timeout | null = null;
  /** When the pending reconcile fires (ms since the epoch; with `timer`). */
  private timerDue = 0;
  private failures = 0;
  private stopped = false;
  private started = false;
  private reconciles = 0;
  private reconcileErrors = 0;
  lastReconcile: ReconcileSummary | null = null;
  private readonly now: () => number;
  private readonly listeners = new Set<(e: AgentEvent) => void>();
  /** Direct paths between hidden nodes (null when the driver cannot read peer counters). */
  readonly paths: PathManager | null;
  private pathTimer: NodeJS.Timeout | null = null;
  /** Handshakes started after an apply by one side of each pair of public nodes (src/agent/handshakes.ts). */
  private readonly handshakes: HandshakeStarter<DesiredNetwork['resource']['peers'][number]> | null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private readonly policies = new Map<string, CompiledPolicy>();
  /**
   * An access node's peer counters per network for GET /v1/candidates: one read in flight per network, and a read
   * younger than OBSERVED_TTL_MS answers every request that comes meanwhile (a burst of requests reads each network
   * once). Short enough that the control plane's periodic asks (every 1–2 s) always get a fresh read: reflexive
   * candidates must not come a round late (a path-timer cache did, and cone-NAT pairs went direct seconds later).
   */
  private readonly observedReads = new Map<string, { at: number; read: Promise<PeerCounters[] | null> }>();

  constructor(private readonly deps: AgentDeps) {
    this.now = deps.now ?? Date.now;
    deps.state.setTenants(deps.config.trustedTenants);
    const drv = deps.driver;
    this.paths =
      drv.peerCounters && drv.setPeers
        ? new PathManager({
            now: this.now,
            desired: () => this.planned(),
            read: (id) => drv.peerCounters!(id),
            setPeers: (id, peers, reset) => drv.setPeers!(id, peers, reset),
            ...(drv.underlayAddresses ? { ownAddresses: () => drv.underlayAddresses!() } : {}),
            event: (level, kind, subject, message, data) => this.event(level, kind, subject, message, data),
          })
        : null;
    this.handshakes =
      drv.peerCounters && drv.setPeers && drv.startHandshakes
        ? new HandshakeStarter({
            read: (id) => drv.peerCounters!(id),
            start: async (n, start, reset) => {
              const lines = reset.length ? await drv.setPeers!(n.networkId, [...n.peers], reset) : [];
              if (start.length) lines.push(...(await drv.startHandshakes!(n.networkId, start)));
              return lines;
            },
            event: (level, kind, subject, message, data) => this.event(level, kind, subject, message, data),
          })
        : null;
  }

  get nodeId(): string {
    return this.deps.config.nodeId;
  }

  /** Subscribe to new events (for `zmesh events --follow`). */
  onEvent(fn: (e: AgentEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private event(level: AgentEvent['level'], kind: string, subject: string, message: string, data?: unknown): void {
    const e = this.deps.state.event(level, kind, subject, message, data);
    this.deps.log[level]({ kind, subject, data }, message);
    for (const fn of this.listeners) fn(e);
  }

  /** Starts the loop: reconcile from the store now, then every interval (with backoff after errors). */
  start(): void {
    this.stopped = false;
    this.started = true;
    this.event('info', 'agent.start', this.nodeId, `agent ${AGENT_VERSION} starting; reconciling ${this.deps.state.blueprints().length} blueprints from the store`);
    if (!this.paths) {
      this.schedule(0);
      return;
    }
    // Direct paths the previous agent proved are adopted before the first reconcile (which would undo them).
    this.mutex
      .run(() => this.paths!.adopt())
      .catch((e: unknown) => this.deps.log.warn({ err: (e as Error)?.message ?? String(e) }, 'adopting direct paths failed'))
      .finally(() => {
        this.schedule(0);
        this.schedulePaths();
      });
  }

  /** Direct paths: a tick every second, every half second while a pair is probed (docs/paths.md). */
  private schedulePaths(): void {
    if (this.stopped || !this.paths) return;
    const ms = this.paths.probing() ? 500 : 1000;
    this.pathTimer = setTimeout(() => {
      this.pathTimer = null;
      this.mutex
        .run(() => this.paths!.tick())
        .catch((e: unknown) => this.deps.log.warn({ err: (e as Error)?.message ?? String(e) }, 'path tick failed'))
        .finally(() => this.schedulePaths());
    }, ms);
    this.pathTimer.unref?.();
  }

  /** The networks whose public peers this node may start handshakes with (handshakes.ts). */
  private handshakeNetworks(desired: DesiredNetwork[] = this.desired()): HandshakeNetwork<DesiredNetwork['resource']['peers'][number]>[] {
    return desired.map((d) => ({ networkId: d.networkId, subject: `${d.tenant}/${d.blueprint}/${d.networkName}`, ownKey: d.resource.publicKey, hidden: d.resource.hidden, peers: d.resource.peers }));
  }

  /**
   * After a reconcile: its new peers wait for a check (also when a round of checks is running: a reconcile can
   * come between two of its networks, and the round's end looks at what waits), and a check comes now when none
   * is scheduled or running; then one every CHECK_MS while any peer waits.
   */
  private armHandshakes(desired: DesiredNetwork[]): void {
    if (!this.handshakes || !this.started || this.stopped) return;
    if (this.handshakes.arm(this.handshakeNetworks(desired)) && !this.handshakeTimer) this.scheduleHandshakes(0);
  }

  private scheduleHandshakes(ms: number): void {
    if (this.stopped || !this.handshakes) return;
    const timer = setTimeout(() => void this.checkHandshakes(timer), ms);
    this.handshakeTimer = timer;
    timer.unref?.();
  }

  /** One round of handshake checks: one network per turn of the lock (a reconcile or a submission waits for one
   *  network's read and `wg set`, never for all of them). */
  private async checkHandshakes(timer: NodeJS.Timeout): Promise<void> {
    const starter = this.handshakes!;
    try {
      const ids = await this.mutex.run(async () => {
        if (this.stopped) return [];
        starter.arm(this.handshakeNetworks());
        return starter.waitingIds();
      });
      for (const id of ids) {
        await this.mutex.run(async () => {
          if (this.stopped) return;
          // As desired now (a reconcile may have run since): the peers a reset puts back are the current ones.
          await starter.checkOne(id, this.handshakeNetworks().find((n) => n.networkId === id));
        });
      }
    } catch (e) {
      this.deps.log.warn({ err: (e as Error)?.message ?? String(e) }, 'handshake check failed');
    } finally {
      if (this.handshakeTimer === timer) this.handshakeTimer = null;
      if (!this.stopped && !this.handshakeTimer && starter.pending() > 0) this.scheduleHandshakes(CHECK_MS);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pathTimer) clearTimeout(this.pathTimer);
    this.pathTimer = null;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    await this.mutex.run(async () => undefined);
    await this.deps.runtime?.close();
    await this.deps.driver.close();
  }

  private schedule(ms: number, reason = 'interval'): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDue = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reconcile(reason)
        .catch((e: unknown) => {
          // A reconcile that threw (its store write failed: out of descriptors…) backs off like one with errors.
          this.failures++;
          this.deps.log.error({ err: (e as Error)?.message ?? String(e) }, 'reconcile threw; retrying with backoff');
        })
        .finally(() => {
          const base = this.deps.config.reconcileIntervalMs;
          const next = this.failures === 0 ? base : Math.min(base, 1000 * 2 ** Math.min(this.failures - 1, 10));
          this.schedule(next);
        });
    }, ms);
    this.timer.unref?.();
  }

  /** What the host should look like: the plan, with the direct-path decisions on hidden nodes' direct peers. */
  private desired(blueprints: StoredBlueprint[] = this.deps.state.blueprints()): DesiredNetwork[] {
    const planned = this.planned(blueprints);
    return this.paths ? planned.map((d) => this.paths!.effective(d)) : planned;
  }

  /** The stored plan parts as desired networks, without run-time path decisions. */
  private planned(blueprints: StoredBlueprint[] = this.deps.state.blueprints()): DesiredNetwork[] {
    const out: DesiredNetwork[] = [];
    for (const b of blueprints) {
      for (const n of b.part.networks) {
        // Which devices may use this node's egress comes from the signed blueprint (never from the plan part).
        const spec = b.envelope.blueprint.networks.find((s) => s.name === n.name);
        const egressDevices = spec ? deviceEgressSources(spec, n.resource) : [];
        const d: DesiredNetwork = { tenant: b.tenant, blueprint: b.name, networkId: n.id, networkName: n.name, ipRange: n.ipRange, ...(n.ipv6Range !== undefined ? { ipRange6: n.ipv6Range } : {}), egress: n.egress, egressDevices, ...(spec?.egressIpv6 === true ? { egress6: true } : {}), bridgeHosts: bridgeHosts(b.part.workloads, n.name, this.nodeId), resource: n.resource };
        // The resolver's names (docs/dns.md; checked against the blueprint at submit). A part from before names: its own.
        d.names = n.names ?? networkNames({ workloads: b.part.workloads }, { name: n.name, access: [], resources: [n.resource] });
        // The policy is the tenant's word (the signed blueprint); the plan part only says where its names are.
        if (spec?.policy && n.members) {
          // Compiled once per accepted version and generation (desired networks are built every path tick).
          const k = `${b.tenant}/${b.name}/${b.version}/${b.generation}/${n.id}`;
          let compiled = this.policies.get(k);
          if (!compiled) {
            if (this.policies.size > 1000) this.policies.clear();
            this.policies.set(k, (compiled = nodePolicy(b.envelope.blueprint, spec, n, b.part.workloads)));
          }
          d.policy = compiled;
        }
        out.push(d);
      }
    }
    return out;
  }

  /** Converges the host to the stored desired state. Serialized with every other change. */
  reconcile(reason: string): Promise<ReconcileSummary> {
    return this.mutex.run(() => this.reconcileLocked(reason));
  }

  /**
   * `first`: network ids the data plane applies before it reads the others (a submission's own networks);
   * `onlyFirst`: and no others (they are left as they are until the follow-up reconcile).
   */
  private reconcileLocked(reason: string, first?: string[], onlyFirst = false): Promise<ReconcileSummary> {
    // The data plane's namespace reads (ip, nft) answer the runtime's same reads in this reconcile (Runner.shareReads).
    const run = () => this.reconcileShared(reason, first, onlyFirst);
    return this.deps.driver.shareReads ? this.deps.driver.shareReads(run) : run();
  }

  private async reconcileShared(reason: string, first?: string[], onlyFirst: boolean = false): Promise<ReconcileSummary> {
    const t0 = this.now();
    const cpu0 = process.cpuUsage();
    const children0 = childrenCpuMs();
    const commands0 = this.deps.driver.commandCounts?.();
    const blueprints = this.deps.state.blueprints();
    const desired = this.desired(blueprints);
    const errors: ReconcileSummary['errors'] = [];
    let changes = 0;
    let reports: ResourceReport[] = [];
    const networks = this.deps.driver.apply(desired, first ? { first, onlyFirst } : undefined);
    // Containers are created and started while the networks are built; they attach once the data plane is done.
    const runtimeRun = this.deps.runtime ? this.startRuntime(blueprints, networks) : undefined;
    try {
      reports = await networks;
    } catch (e) {
      errors.push({ networkId: '*', message: (e as Error).message });
      this.event('error', 'reconcile.failed', this.nodeId, `reconcile failed: ${(e as Error).message}`);
    }
    const byId = new Map(desired.map((d) => [d.networkId, d]));
    const gen = new Map<string, number>();
    for (const b of blueprints) for (const n of b.part.networks) gen.set(n.id, b.generation);
    for (const r of reports) {
      const d = byId.get(r.networkId);
      changes += r.changes.length;
      if (d) {
        this.deps.state.recordApplied({
          networkId: r.networkId,
          tenant: d.tenant,
          blueprint: d.blueprint,
          network: d.networkName,
          generation: gen.get(r.networkId) ?? 0,
          ok: r.ok,
          report: { changes: r.changes, errors: r.errors },
        });
      }
      const subject = d ? `${d.tenant}/${d.blueprint}/${d.networkName}` : r.networkId;
      if (r.changes.length) this.event('info', d ? 'network.changed' : 'network.removed', subject, `${r.changes.length} change(s): ${r.changes.slice(0, 5).join('; ')}${r.changes.length > 5 ? '; …' : ''}`, { changes: r.changes });
      for (const e of r.errors) {
        errors.push({ networkId: r.networkId, message: e.message });
        this.event('error', 'network.error', subject, e.message, { argv: e.argv, stderr: e.stderr });
      }
    }
    for (const a of this.deps.state.applied()) if (!byId.has(a.networkId)) this.deps.state.forgetApplied(a.networkId);
    const runtime = runtimeRun ? this.finishRuntime(await runtimeRun, errors) : undefined;
    if (runtime) changes += runtime.changes;
    this.reconciles++;
    if (errors.length) {
      this.reconcileErrors++;
      this.failures++;
    } else this.failures = 0;
    const cpu = process.cpuUsage(cpu0);
    const children1 = childrenCpuMs();
    const commands1 = this.deps.driver.commandCounts?.();
    const cost: NonNullable<ReconcileSummary['cost']> = {
      agentCpuMs: Math.round((cpu.user + cpu.system) / 100) / 10,
      commandsCpuMs: children0 !== null && children1 !== null ? children1 - children0 : null,
      reads: commands0 && commands1 ? commands1.reads - commands0.reads : null,
      mutating: commands0 && commands1 ? commands1.mutating - commands0.mutating : null,
    };
    const summary: ReconcileSummary = {
      at: new Date(t0).toISOString(),
      reason,
      durationMs: this.now() - t0,
      ok: errors.length === 0,
      networks: desired.length,
      changes,
      errors,
      ...(runtime ? { runtime } : {}),
      cost,
    };
    this.lastReconcile = summary;
    this.deps.log.debug({ reconcile: summary }, 'reconciled');
    this.armHandshakes(desired);
    return summary;
  }

  /**
   * This node's workloads and volumes, beside the networks (`networks`: the data plane's apply, which the runtime
   * waits for before it touches a tenant namespace). Never rejects: the outcome goes to finishRuntime.
   */
  private startRuntime(blueprints: StoredBlueprint[], networks: Promise<unknown>): Promise<{ desired: ReturnType<typeof runtimeDesired>; report?: RuntimeReport; error?: Error }> {
    const desired = runtimeDesired(blueprints, this.nodeId);
    return this.deps.runtime!.apply(desired, networks).then(
      (report) => ({ desired, report }),
      (e: unknown) => ({ desired, error: e instanceof Error ? e : new Error(String(e)) }),
    );
  }

  /** After the networks' outcome is recorded: the runtime's. Events carry the reasons (exit code, OOM). */
  private finishRuntime(run: { desired: ReturnType<typeof runtimeDesired>; report?: RuntimeReport; error?: Error }, errors: ReconcileSummary['errors']): NonNullable<ReconcileSummary['runtime']> {
    const rt = this.deps.runtime!;
    const { desired } = run;
    const out = { workloads: desired.workloads.length, volumes: desired.volumes.length, changes: 0, ok: true, engine: false };
    try {
      if (run.error) throw run.error;
      const r = run.report!;
      out.changes = r.changes;
      out.engine = r.engine;
      for (const e of r.events) this.event(e.level, e.kind, e.subject, e.message, e.data);
      for (const e of r.errors) {
        errors.push({ networkId: e.subject, message: `${e.code}: ${e.message}` });
        this.event('error', e.subject.startsWith('volume') ? 'volume.error' : 'workload.error', e.subject, `${e.code}: ${e.message}`);
      }
      out.ok = r.errors.length === 0;
      if (r.engine && desired.workloads.length && this.started) {
        // Heal at once when a container dies, rather than at the next interval.
        void rt.watch(() => this.schedule(200, 'container exited')).catch(() => undefined);
      }
    } catch (e) {
      out.ok = false;
      errors.push({ networkId: 'runtime', message: (e as Error).message });
      this.event('error', 'runtime.failed', this.nodeId, `runtime failed: ${(e as Error).message}`);
    }
    return out;
  }

  private usedPorts(except: { tenant: string; name: string }): PortOwner[] {
    const out: PortOwner[] = [];
    for (const b of this.deps.state.blueprints()) {
      if (b.tenant === except.tenant && b.name === except.name) continue;
      for (const n of b.part.networks) out.push({ port: n.resource.listenPort, owner: `${b.tenant}/${b.name}` });
    }
    return out;
  }

  /** The provisioning pipeline. Anything invalid throws with a code and path, and nothing changes. */
  submit(envelope: unknown, part: unknown): Promise<SubmitResult> {
    return this.mutex.run(async () => {
      let bp;
      try {
        bp = verifySigned(envelope);
      } catch (e) {
        this.rejected(envelope, e);
        throw e;
      }
      const env = envelope as SignedBlueprint;
      const problems: Problem[] = [];
      const trusted = this.deps.state.tenantKey(bp.tenant);
      if (!trusted) {
        problems.push({ code: 'E_TENANT_UNTRUSTED', path: 'tenant', message: `tenant ${bp.tenant} is not trusted on this node`, hint: 'add the tenant key to trustedTenants in the agent config' });
      } else if (trusted !== env.signature.publicKey) {
        problems.push({ code: 'E_TENANT_KEY', path: 'signature.publicKey', message: `the blueprint is signed by a key that is not tenant ${bp.tenant}'s`, hint: "sign with the tenant's own key" });
      }
      const last = this.deps.state.lastVersion(bp.tenant, bp.name);
      const replay = bp.version > last ? null : replayProblem(bp, part, last, this.deps.state.blueprint(bp.tenant, bp.name));
      if (replay) problems.push(replay);
      if (!problems.length) problems.push(...checkNodePart(bp, part, this.nodeId, this.deps.identity, this.usedPorts(bp)));
      if (!problems.length) problems.push(...checkRuntimePart(bp, part as NodePlanPart, this.nodeId));
      // Once this node's workloads are placed right (above), the names of those workloads must say the same.
      if (!problems.length) problems.push(...placedNamesProblems(bp, part as NodePlanPart));
      if (problems.length) {
        const err = new ValidationError(problems, 'submission');
        this.rejected(envelope, err);
        throw err;
      }
      const p = part as NodePlanPart;
      this.deps.state.accept({ format: env.format, blueprint: bp, signature: env.signature }, p);
      this.event('info', 'blueprint.accepted', `${bp.tenant}/${bp.name}`, `accepted version ${bp.version} (plan generation ${p.generation}), ${p.networks.length} network(s)`);
      // Only this blueprint's networks before the answer (issue #16: a rule change on one network does not wait
      // for the node's other fifty); every network follows in a full reconcile soon after, which also brings the
      // others' egress sets up to the new peers. One already due sooner is not pushed back: a tenant submitting
      // every 100 ms cannot starve the full reconciles (one runs at most FOLLOW_UP_MS after a submission).
      const summary = await this.reconcileLocked(
        `submit ${bp.tenant}/${bp.name}`,
        p.networks.map((n) => n.id),
        true,
      );
      if (this.started && !this.stopped && !(this.timer && this.timerDue <= Date.now() + FOLLOW_UP_MS)) this.schedule(FOLLOW_UP_MS, `after submit ${bp.tenant}/${bp.name}`);
      const applied = new Map(this.deps.state.applied().map((a) => [a.networkId, a]));
      return {
        tenant: bp.tenant,
        name: bp.name,
        version: bp.version,
        generation: p.generation,
        networks: p.networks.map((n) => {
          const a = applied.get(n.id);
          const rep = (a?.report ?? { changes: [], errors: [] }) as Pick<ResourceReport, 'changes' | 'errors'>;
          const errs = summary.errors.filter((e) => e.networkId === n.id || e.networkId === '*');
          return { name: n.name, networkId: n.id, ok: (a?.ok ?? false) && errs.length === 0, changes: rep.changes, errors: rep.errors.length ? rep.errors : errs.map((e) => ({ message: e.message })) };
        }),
        ...(this.deps.runtime
          ? (() => {
              const own = (subject: string) => subject === 'engine' || subject === 'runtime' || (subject.split(' ')[1] ?? '').startsWith(`${bp.tenant}/${bp.name}/`);
              const mine = summary.errors.filter((e) => own(e.networkId));
              return { runtime: { ok: mine.length === 0, errors: mine.map((e) => ({ subject: e.networkId, message: e.message })) } };
            })()
          : {}),
      };
    });
  }

  private rejected(envelope: unknown, e: unknown): void {
    const bp = (envelope as { blueprint?: { tenant?: unknown; name?: unknown } })?.blueprint;
    const subject = `${String(bp?.tenant ?? '?')}/${String(bp?.name ?? '?')}`;
    const codes = e instanceof ZmeshError ? e.problems.map((p) => `${p.code}${p.path ? ' at ' + p.path : ''}`) : [String(e)];
    this.event('warn', 'blueprint.rejected', subject, `rejected: ${codes.join(', ')}`);
  }

  /** Removes a blueprint: its networks are torn down. */
  remove(tenant: string, name: string): Promise<{ removed: boolean; summary: ReconcileSummary | null }> {
    return this.mutex.run(async () => {
      if (!this.deps.state.remove(tenant, name)) {
        throw new ZmeshError('E_NOT_FOUND', `no blueprint ${tenant}/${name} on this node`, { hint: 'list them with `zmesh net ls`' });
      }
      this.event('info', 'blueprint.removed', `${tenant}/${name}`, 'removed; tearing its networks down');
      return { removed: true, summary: await this.reconcileLocked(`remove ${tenant}/${name}`) };
    });
  }

  networks(): NetworkSummary[] {
    const applied = new Map(this.deps.state.applied().map((a) => [a.networkId, a]));
    const out: NetworkSummary[] = [];
    for (const b of this.deps.state.blueprints()) {
      for (const n of b.part.networks) {
        const a = applied.get(n.id);
        const errs = ((a?.report as { errors?: { message: string }[] })?.errors ?? []).map((e) => e.message);
        out.push({
          tenant: b.tenant,
          blueprint: b.name,
          name: n.name,
          id: n.id,
          ipRange: n.ipRange,
          subnet: n.resource.subnet,
          listenPort: n.resource.listenPort,
          peers: n.resource.peers.length,
          generation: b.generation,
          applied: a?.ok ?? false,
          lastError: errs[0] ?? null,
        });
      }
    }
    return out;
  }

  /** Finds a network by id, "tenant/blueprint/name", or a name that is unique on this node. */
  findNetwork(key: string): { desired: DesiredNetwork; stored: StoredBlueprint } {
    const matches: { desired: DesiredNetwork; stored: StoredBlueprint }[] = [];
    for (const b of this.deps.state.blueprints()) {
      for (const d of this.desired([b])) {
        if (key === d.networkId || key === `${d.tenant}/${d.blueprint}/${d.networkName}` || key === d.networkName) matches.push({ desired: d, stored: b });
      }
    }
    if (matches.length === 1) return matches[0];
    if (matches.length === 0) throw new ZmeshError('E_NOT_FOUND', `no network ${key} on this node`, { hint: 'list networks with `zmesh net ls`' });
    throw new ZmeshError('E_AMBIGUOUS', `${matches.length} networks are called ${key}: ${matches.map((m) => `${m.desired.tenant}/${m.desired.blueprint}/${m.desired.networkName} (${m.desired.networkId})`).join(', ')}`, {
      hint: 'name it as tenant/blueprint/network or by id',
    });
  }

  async network(key: string): Promise<{ desired: DesiredNetwork; actual: ActualNetwork | null; generation: number; mtu: number }> {
    const { desired, stored } = this.findNetwork(key);
    return { desired, actual: await this.deps.driver.actual(desired.networkId), generation: stored.generation, mtu: await this.deps.driver.tenantMtu() };
  }

  async diagnose(key: string, peer?: string): Promise<Diagnosis> {
    const { desired, stored } = this.findNetwork(key);
    const part = stored.part.networks.find((n) => n.id === desired.networkId)!;
    const actual = await this.deps.driver.actual(desired.networkId);
    return diagnose({
      desired,
      subnets: part.subnets,
      actual,
      expectedMtu: await this.deps.driver.tenantMtu(),
      peer,
      nowSec: Math.floor(this.now() / 1000),
      ping: (addr) => this.deps.driver.ping(desired.networkId, addr, 2000),
      paths: this.paths ? this.paths.views(desired.networkId) : null,
      ...(this.deps.driver.lookupName ? { lookup: (name: string, server: string, type: 'A' | 'AAAA') => this.deps.driver.lookupName!(desired.networkId, name, server, type) } : {}),
      resolver: this.deps.driver.resolver?.(desired.networkId) ?? null,
    });
  }

  /** The records a network's resolver serves on this node and the resolver's state (GET /v1/networks/:name/dns). */
  dns(key: string): DnsView {
    const { desired } = this.findNetwork(key);
    const r = desired.resource;
    return {
      network: `${desired.tenant}/${desired.blueprint}/${desired.networkName}`,
      networkId: desired.networkId,
      node: this.nodeId,
      listen: [r.gateway, ...(r.gateway6 ? [r.gateway6] : [])],
      resolver: this.deps.driver.resolver?.(desired.networkId) ?? null,
      records: desired.names ? nameRecords(desired.networkName, desired.names) : [],
    };
  }

  /**
   * Which policy rule (or the default) allows or drops a flow from A to B in a network (docs/policy.md), judged
   * where it is enforced: the destination's node (this one, or computed for it from the stored blueprint and part).
   */
  policyCheck(key: string, from: string, to: string, port?: string): PolicyFlowCheck {
    const { desired, stored } = this.findNetwork(key);
    const part = stored.part.networks.find((n) => n.id === desired.networkId)!;
    const spec = stored.envelope.blueprint.networks.find((s) => s.name === part.name);
    if (!spec) throw new ZmeshError('E_INTERNAL', `network ${part.name} is not in the stored blueprint ${stored.tenant}/${stored.name}`, { kind: 'internal' });
    return checkPolicyFlow({
      blueprint: stored.envelope.blueprint,
      spec,
      part,
      placed: stored.part.workloads ?? [],
      node: this.nodeId,
      compiled: desired.policy,
      network: `${desired.tenant}/${desired.blueprint}/${desired.networkName}`,
      from,
      to,
      port,
    });
  }

  /** A network's policy rules with the packets and bytes this node counted for each (GET /v1/policy). */
  async policy(key: string): Promise<PolicyView> {
    const { desired, stored } = this.findNetwork(key);
    const spec = stored.envelope.blueprint.networks.find((s) => s.name === desired.networkName);
    const actual = spec?.policy ? await this.deps.driver.actual(desired.networkId).catch(() => null) : null;
    return policyView({ network: `${desired.tenant}/${desired.blueprint}/${desired.networkName}`, node: this.nodeId, desired, spec, actual });
  }

  status(): StatusView {
    return {
      node: this.nodeId,
      identity: this.deps.identity.publicKey.toString(),
      version: AGENT_VERSION,
      modules: this.deps.moduleVersions,
      dataplane: this.deps.driver.dataplane?.() ?? null,
      networks: this.networks(),
      lastReconcile: this.lastReconcile,
      errors: this.lastReconcile?.errors ?? [],
    };
  }

  /** Direct paths of this node's hidden resources (GET /v1/paths), optionally of one network. */
  pathViews(key?: string, redact = false): PathView[] {
    if (!this.paths) return [];
    return this.paths.views(key ? this.findNetwork(key).desired.networkId : undefined, redact);
  }

  /** Takes candidates from the control plane (PUT /v1/candidates): all or nothing. */
  setCandidates(body: unknown): { networks: number; peers: number } {
    if (!this.paths) throw new ZmeshError('E_NOT_SUPPORTED', 'this agent has no direct paths (its driver reads no peer counters)');
    const problems = this.paths.setCandidates(body);
    if (problems.length) {
      this.event('warn', 'candidates.rejected', this.nodeId, `candidates refused: ${problems.slice(0, 3).map((p) => `${p.code} at ${p.path}`).join(', ')}${problems.length > 3 ? ', …' : ''}`);
      throw new ValidationError(problems, 'candidates');
    }
    const nets = Object.values((body as { networks: Record<string, Record<string, string[]>> }).networks);
    // Probe new candidates now rather than at the next tick.
    if (this.started && !this.stopped) {
      if (this.pathTimer) clearTimeout(this.pathTimer);
      this.pathTimer = null;
      void this.mutex
        .run(() => this.paths!.tick())
        .catch(() => undefined)
        .finally(() => {
          if (!this.pathTimer) this.schedulePaths();
        });
    }
    return { networks: nets.length, peers: nets.reduce((n, x) => n + Object.keys(x).length, 0) };
  }

  /**
   * What this node tells the control plane for direct paths (GET /v1/candidates): per network where it is
   * hidden, its underlay addresses with the network's port and its direct peers; per network where it is an
   * access node, the endpoints its hidden peers' packets arrive from.
   */
  async candidateReport(): Promise<CandidateReport> {
    const addrs = (await this.deps.driver.underlayAddresses?.().catch(() => [])) ?? [];
    const networks: CandidateReport['networks'] = [];
    for (const d of this.planned()) {
      const r = d.resource;
      if (r.hidden) {
        const local = addrs.map((a) => (a.includes(':') ? `[${a}]:${r.listenPort}` : `${a}:${r.listenPort}`));
        networks.push({ networkId: d.networkId, ipRange: d.ipRange, ...(d.ipRange6 ? { ipRange6: d.ipRange6 } : {}), hidden: true, directPeers: r.peers.filter((p) => p.directSubnet !== undefined).map((p) => p.node), via: r.accessNode, local, observed: {} });
        continue;
      }
      const hiddenPeers = r.peers.filter((p) => p.kind === 'node' && p.endpoint === null);
      if (!hiddenPeers.length || !this.deps.driver.peerCounters) continue;
      const counters = await this.observedCounters(d.networkId);
      const byKey = new Map((counters ?? []).map((c) => [c.publicKey, c]));
      const observed: Record<string, string> = {};
      const nowSec = Math.floor(this.now() / 1000);
      for (const p of hiddenPeers) {
        const c = byKey.get(p.publicKey);
        // Only an endpoint the peer proved recently (a handshake within WireGuard's 180 s).
        if (c?.endpoint && c.latestHandshake > 0 && nowSec - c.latestHandshake < 180) observed[p.node] = c.endpoint;
      }
      networks.push({ networkId: d.networkId, ipRange: d.ipRange, hidden: false, directPeers: [], via: null, local: [], observed });
    }
    return { node: this.nodeId, networks };
  }

  private observedCounters(networkId: string): Promise<PeerCounters[] | null> {
    const now = this.now();
    const last = this.observedReads.get(networkId);
    if (last && now - last.at < OBSERVED_TTL_MS) return last.read;
    if (this.observedReads.size > 10_000) this.observedReads.clear();
    const read = this.deps.driver.peerCounters!(networkId).catch(() => null);
    this.observedReads.set(networkId, { at: now, read });
    return read;
  }

  events(after = 0, limit = 200): AgentEvent[] {
    return this.deps.state.events(after, limit);
  }

  private runtimeDesired() {
    return runtimeDesired(this.deps.state.blueprints(), this.nodeId);
  }

  /** This node's workloads with live state (empty without a runtime). */
  async workloads(): Promise<WorkloadView[]> {
    if (!this.deps.runtime) return [];
    return this.deps.runtime.workloads(this.runtimeDesired().workloads);
  }

  /** This node's volumes with size and usage (empty without a runtime). */
  async volumes(): Promise<VolumeView[]> {
    if (!this.deps.runtime) return [];
    return this.deps.runtime.volumes(this.runtimeDesired());
  }

  /** Finds a workload of this node by "tenant/blueprint/name" or a name unique on the node. */
  findWorkload(key: string): { tenant: string; blueprint: string; name: string } {
    const all = this.runtimeDesired().workloads;
    const m = all.filter((w) => key === `${w.tenant}/${w.blueprint}/${w.name}` || key === w.name);
    if (m.length === 1) return { tenant: m[0].tenant, blueprint: m[0].blueprint, name: m[0].name };
    if (m.length === 0) throw new ZmeshError('E_NOT_FOUND', `no workload ${key} on this node`, { hint: 'list workloads with `zmesh ps`' });
    throw new ZmeshError('E_AMBIGUOUS', `${m.length} workloads are called ${key}: ${m.map((w) => `${w.tenant}/${w.blueprint}/${w.name}`).join(', ')}`, { hint: 'name it as tenant/blueprint/workload' });
  }

  /** A workload's output (stdout and stderr). */
  async logs(key: string, opts: { follow: boolean; tail?: number }): Promise<Readable> {
    const w = this.findWorkload(key);
    if (!this.deps.runtime) throw new ZmeshError('E_NOT_FOUND', 'this agent runs no workloads', { hint: 'see docs/runtime.md' });
    return this.deps.runtime.logs(w, opts);
  }

  async metrics(): Promise<string> {
    const nets = this.networks();
    const actual = new Map<string, ActualNetwork | null>();
    for (const n of nets) actual.set(n.id, await this.deps.driver.actual(n.id).catch(() => null));
    const peerNames = new Map<string, Map<string, string>>();
    for (const d of this.desired()) peerNames.set(d.networkId, new Map(d.resource.peers.map((p) => [p.publicKey, p.node])));
    return renderMetrics({
      peerNames,
      node: this.nodeId,
      networks: nets,
      actual,
      reconciles: this.reconciles,
      reconcileErrors: this.reconcileErrors,
      last: this.lastReconcile,
      nowSec: Math.floor(this.now() / 1000),
      paths: this.paths?.views() ?? [],
    });
  }
}
