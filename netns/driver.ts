// The network-resource driver: apply(desired) = read → diff → the smallest change, per resource; resources
// no longer desired are removed completely. It only ever touches what carries its ownership marker.
import { openSealed, X25519Secret, x25519PublicKey, type Key } from '../src/crypto/index.ts';
import { sealContext } from '../src/plan/types.ts';
import { buildIpBatch, buildKick, buildNftDelete, buildNftReplace, buildWgSet, ip, type PeerOp } from './build.ts';
import { diffLink, diffPeers, diffRoutes, diffWireguard, nftIsCurrent, plannedEndpoints, ROAM_WINDOW_SEC } from './diff.ts';
import { PlannedEndpoints } from './planned.ts';
import { egressBlocked, type BlockedSets, type EgressPolicy } from './egress.ts';
import { allocateEgressBlock, egressAddrs, isEgressHostAddr, parseCidr } from './ip.ts';
import { layoutFor, normalizePeers, validateDesired, type DesiredLink, type Layout, type LayoutContext } from './layout.ts';
import { idFromMarker, idFromName, isNetworkId, namesFor, NFT_FAMILY, NFT_PREFIX, type ResourceNames } from './names.ts';
import { firewallCounters, policyCounters, type IpLink, type NftTable, type WgDevice } from './parse.ts';
import { readUapi } from './uapi.ts';
import { Resolvers } from './dns.ts';
import { CommandError, ProcessRunner, SECRET_FILE, TallyRunner, type Runner } from './runner.ts';
import { forwarding6Settings, isDefaultRoute, readAcceptRa, readHost, readHostRoutes, readNft, readNs, readNsMarker, readWg, toActualLink, type HostState, type NsState } from './state.ts';
import { join } from 'node:path';
import type {
  ActualResource,
  ApplyReport,
  BackendChoice,
  BackendKind,
  DesiredResource,
  Failure,
  OwnedThing,
  RemovalReport,
  ResourceReport,
} from './types.ts';
import { Daemons, detectBackend, KernelBackend, UserspaceBackend, type BackendOptions, type WgBackend } from './wireguard.ts';
import { parseWireguardGoVersion, resolveTuning, SocketTuner, validateTuning, type Tuning, type WireguardGoBuild } from './tuning.ts';

export interface DriverOptions extends BackendOptions {
  /** The command runner (default: a ProcessRunner). */
  runner?: Runner;
  /** WireGuard backend: auto (kernel when it works, else wireguard-go), kernel or userspace. */
  backend?: BackendChoice;
  /** Milliseconds since the epoch (injected for tests). */
  clock?: () => number;
  /** Underlay MTU; default: the MTU of the host's default-route interface, else 1500. */
  underlayMtu?: number;
  /** Seconds after a handshake during which a peer's endpoint is left alone (default 180). */
  roamWindowSec?: number;
  /**
   * Data-plane tuning of wireguard-go (netns/tuning.ts): true or absent applies the defaults for the binary's
   * build (batched builds ≥ 0.0.20230223: GOMAXPROCS=1; older ones: raised UDP socket buffers; both: the daemon
   * kept in the driver's session), false applies none (wireguard-go as it comes, in a session of its own), an
   * object overrides single knobs. The kernel backend needs none.
   */
  tuning?: boolean | Partial<Tuning>;
  /**
   * Where egress may not go beyond the defaults (netns/egress.ts): the operator's allow/deny lists and the
   * control-plane addresses. The host's own addresses and routes and the mesh's endpoints are read at each apply.
   */
  egress?: EgressPolicy;
}

export interface ApplyOptions {
  underlayMtu?: number;
  /** Overrides DriverOptions.egress for this apply (e.g. control-plane addresses resolved again). */
  egress?: EgressPolicy;
  /**
   * Network ids read and ensured before the others are even read (the agent names a submission's own networks).
   * Every process start blocks this process for a few ms (fork): with N networks the 3N prefetch reads came
   * first, and a changed rule waited behind them (issue #16). The result is the same apply.
   */
  first?: string[];
  /**
   * With `first`: the other networks are neither read nor ensured (they are still desired: never removed). The
   * agent's submissions apply their own networks only, and a full reconcile follows (issue #16: one tenant's
   * rule change no longer waits for every other network of the node).
   */
  onlyFirst?: boolean;
  /**
   * false: what changed is not read back for the report (`actual` is null for a resource that changed). The
   * agent reads a network's state when asked and the next reconcile reads everything anyway; the read-back
   * cost a process per changed part on the way to every answer. Default true.
   */
  readBack?: boolean;
}

export type NodeIdentity = Key | X25519Secret;

const MAX_CHANGE_LINES = 40;

interface NsRead {
  ns: NsState;
  wg: WgDevice | null;
  /** null: not read (its tenant table is being written ahead of the reads, `fastFirewall`). */
  nft: NftTable[] | null;
}

/** The three reads of a resource's namespace, in parallel (`dual`: with the IPv6 routes; `nft` false: no nft). */
async function readNsAll(run: Runner, backend: WgBackend, names: ResourceNames, dual = false, nft = true): Promise<NsRead> {
  const [n, wg, t] = await Promise.all([readNs(run, names.ns, dual), backend.readDevice(run, names.wg, names.ns), nft ? readNft(run, names.ns) : null]);
  return { ns: n, wg, nft: t };
}

/** What a namespace looks like right after `ip netns add` and marking its loopback. */
function freshNamespace(marker: string): NsState {
  const lo: IpLink = { index: 1, name: 'lo', kind: 'loopback', mtu: 65536, up: true, operstate: 'UNKNOWN', alias: marker, master: null, mac: '00:00:00:00:00:00', addrs: [] };
  return { links: new Map([['lo', lo]]), routes: [], forwarding: false, forwarding6: false };
}

interface Dirty {
  ns: boolean;
  wg: boolean;
  nft: boolean;
  host: boolean;
}

/** What was read during an apply, reused for the report when nothing changed. */
interface Snapshot {
  ns: NsState;
  wg: WgDevice | null;
  tenantNft: NftTable[];
  host: HostState;
  hostNft: NftTable[];
}

function failureOf(step: string, e: unknown): Failure {
  if (e instanceof CommandError) {
    return { step, argv: e.argv, exitCode: e.exitCode, stderr: e.stderr, message: e.message };
  }
  return { step, argv: null, exitCode: null, stderr: '', message: e instanceof Error ? e.message : String(e) };
}

function peerLine(p: PeerOp): string {
  if (p.op === 'remove') return `peer remove ${p.publicKey}`;
  const parts = [`peer ${p.op} ${p.publicKey}`];
  if (p.endpoint !== undefined) parts.push(`endpoint ${p.endpoint}`);
  if (p.allowedIps !== undefined) parts.push(`allowed-ips ${p.allowedIps.join(',') || '(none)'}`);
  if (p.persistentKeepalive !== undefined) parts.push(`keepalive ${p.persistentKeepalive ?? 'off'}`);
  return parts.join(' ');
}

export class Driver {
  private readonly runner: Runner;
  private readonly opts: DriverOptions;
  private readonly daemons: Daemons;
  private backend: WgBackend | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private tuningInForce: Tuning;
  private build: WireguardGoBuild | null = null;
  private readonly tuner: SocketTuner;
  /** Per network and peer, the endpoint the plan named at the last apply (endpoint authority, docs/netns.md). */
  private readonly planned: PlannedEndpoints;
  /**
   * Per network, the tenant table as the last apply left it current, and what it was built from (the host's
   * side: MTU, link kind, egress addresses and blocked sets). A submission's changed policy is written from it
   * before anything is read (`fastFirewall`).
   */
  private readonly tenantTables = new Map<string, { ctx: LayoutContext; text: string; desired: DesiredResource }>();
  /** ApplyOptions.readBack of the apply in progress (applies run one at a time, `queue`). */
  private readBack = true;

  constructor(opts: DriverOptions = {}) {
    this.opts = opts;
    this.planned = new PlannedEndpoints(join(opts.stateDir ?? '/run/zmesh', 'endpoints'));
    this.runner = opts.runner ?? new ProcessRunner({ secretDir: `${opts.stateDir ?? '/run/zmesh'}/secrets` });
    this.tuningInForce = resolveTuning(opts.tuning);
    const problems = validateTuning(this.tuningInForce);
    if (problems.length) throw new TypeError(`tuning: ${problems.join('; ')}`);
    this.daemons = new Daemons({ ...opts, daemonEnv: this.tuning.daemonEnv, daemonOwnSession: this.tuning.daemonOwnSession });
    this.tuner = new SocketTuner({ bytes: this.tuning.socketBufferBytes, runner: this.runner, lock: (fn) => this.lock(fn) });
  }

  /**
   * The tuning in force (resolved from DriverOptions.tuning for the wireguard-go build; until the build is known,
   * the defaults of builds before batching).
   */
  get tuning(): Tuning {
    return this.tuningInForce;
  }

  /** The wireguard-go build (userspace backend), once the backend is detected; null before or with the kernel. */
  get wireguardGo(): WireguardGoBuild | null {
    return this.build;
  }

  /** Live wireguard-go daemons still running a binary that was since replaced on disk (an upgrade). */
  staleDaemons(): { ifname: string; pid: number }[] {
    return this.daemons.staleDaemons();
  }

  /** Settles when background tuning (sockets of fresh daemons) is done. */
  tuningSettled(): Promise<void> {
    return this.tuner.idle();
  }

  private lock<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async getBackend(run: Runner): Promise<WgBackend> {
    if (!this.backend) {
      const kind: BackendKind = await detectBackend(run, this.opts.backend ?? 'auto');
      if (kind === 'userspace') await this.detectBuild(run);
      this.backend = kind === 'kernel' ? new KernelBackend(this.daemons) : new UserspaceBackend(this.daemons);
    }
    return this.backend;
  }

  /** Asks wireguard-go what it is (before the first daemon starts) and takes the tuning for that build. */
  private async detectBuild(run: Runner): Promise<void> {
    let text = '';
    try {
      text = (await run.run([this.daemons.binary, '--version'], { mutating: false, okCodes: [0, 1, 2], timeoutMs: 5000 })).stdout;
    } catch {
      /* not there or not runnable: starting a daemon says so */
    }
    this.build = parseWireguardGoVersion(text);
    this.tuningInForce = resolveTuning(this.opts.tuning, this.build);
    this.daemons.configure(this.tuningInForce);
    this.tuner.setBytes(this.tuningInForce.socketBufferBytes);
  }

  /** The backend, when it has been detected (null before); runs nothing. */
  knownBackend(): BackendKind | null {
    return this.backend?.kind ?? null;
  }

  /** The backend in use (detected on first use). */
  async backendKind(): Promise<BackendKind> {
    return (await this.getBackend(this.runner)).kind;
  }

  private nowSec(): number {
    return Math.floor((this.opts.clock ?? Date.now)() / 1000);
  }

  /** Converges the host to `desired` and removes every owned resource not in it. */
  apply(desired: DesiredResource[], identity: NodeIdentity, opts: ApplyOptions = {}): Promise<ApplyReport> {
    return this.lock(() => this.applyLocked(desired, identity, opts));
  }

  private async applyLocked(desired: DesiredResource[], identity: NodeIdentity, opts: ApplyOptions): Promise<ApplyReport> {
    const t0 = performance.now();
    this.readBack = opts.readBack ?? true;
    const run = new TallyRunner(this.runner);
    const backend = await this.getBackend(run);
    const secret = identity instanceof X25519Secret ? identity : new X25519Secret(identity);
    const resources: ResourceReport[] = [];
    const removed: RemovalReport[] = [];

    // Validate everything before any side effect.
    const counts = new Map<string, number>();
    for (const d of desired) counts.set(d?.networkId, (counts.get(d?.networkId) ?? 0) + 1);
    const valid: DesiredResource[] = [];
    for (const d of desired) {
      const problems = validateDesired(d);
      if (counts.get(d?.networkId)! > 1) problems.push(`network ${d.networkId} is desired more than once`);
      if (problems.length === 0) {
        valid.push(d);
        continue;
      }
      resources.push({
        networkId: String(d?.networkId),
        tenant: String(d?.tenant),
        networkName: String(d?.networkName),
        node: String(d?.resource?.node),
        ok: false,
        changes: [],
        failures: problems.map((m) => ({ step: 'validate', argv: null, exitCode: null, stderr: '', message: m })),
        actual: null,
      });
    }

    // The reads of each resource's namespace start together with the host read (they are what a no-op
    // apply consists of); a namespace that does not exist (yet) is not read at all.
    const prefetch = new Map<string, Promise<NsRead | Error>>();
    const firstIds = new Set(opts.first ?? []);
    const early = valid.filter((d) => firstIds.has(d.networkId));
    const late = !early.length ? valid : opts.onlyFirst ? [] : valid.filter((d) => !firstIds.has(d.networkId));
    const ahead = this.fastFirewall(run, early);
    // The reads wait for those writes: started beside them, tens of reads (one blueprint's many networks) took the
    // CPU from the one write that puts the rule in force (bench/agent.ts, 10 networks: 103–142 → 59 ms median).
    await Promise.all(ahead.values());
    const startReads = (ds: DesiredResource[]) => {
      for (const d of ds) {
        const names = namesFor(d.networkId);
        // A new network's namespace is not there yet: nothing to read (two processes fewer before its first packet).
        if (!run.netnsExists(names.ns)) continue;
        const read = readNsAll(run, backend, names, d.ipRange6 !== undefined, !ahead.has(d.networkId));
        prefetch.set(d.networkId, read.catch((e: unknown) => (e instanceof Error ? e : new Error(String(e)))));
      }
    };
    startReads(early.length ? early : valid);
    const host = await readHost(run);
    const desiredIds = new Set(desired.map((d) => d?.networkId).filter(isNetworkId));
    const removeIds = this.removalCandidates(host, desiredIds);
    const needHostNft =
      valid.some((d) => d.egress) ||
      removeIds.size > 0 ||
      [...host.links.values()].some((l) => l.name.startsWith('ze-') && idFromMarker(l.alias) !== null);
    const anyEgress = valid.some((d) => d.egress);
    const [hostNft, hostRoutes] = await Promise.all([needHostNft ? readNft(run) : [], anyEgress ? readHostRoutes(run) : []]);
    const underlayMtu =
      opts.underlayMtu ?? this.opts.underlayMtu ?? (host.defaultDev ? host.links.get(host.defaultDev)?.mtu : undefined) ?? 1500;
    // Where egress never goes, from what the host looks like now: a changed address or route changes the sets
    // (and the next apply rewrites the host tables); the same host gives the same sets (a no-op stays one).
    const blocked: BlockedSets | null = anyEgress
      ? egressBlocked(
          {
            addresses: [...host.links.values()].flatMap((l) => l.addrs.map((a) => a.cidr)),
            routes: hostRoutes.map((r) => r.dst),
            peerEndpoints: valid.flatMap((d) => d.resource.peers.map((p) => p.endpoint).filter((e): e is string => e !== null)),
            uplinks: hostRoutes.filter((r) => isDefaultRoute(r) && r.dev).map((r) => r.dev!),
          },
          opts.egress ?? this.opts.egress,
        )
      : null;
    // IPv6 egress needs an IPv6 way out: the devices of the host's IPv6 default routes (none: no IPv6 egress).
    host.uplinks6 = [...new Set(hostRoutes.filter((r) => r.dst === '::/0' && r.dev && r.type === 'unicast').map((r) => r.dev!))].sort();

    for (const d of early) {
      resources.push(await this.ensure(run, backend, host, hostNft, d, secret, underlayMtu, prefetch.get(d.networkId), blocked, ahead.get(d.networkId)));
    }
    if (early.length) startReads(late);
    for (const d of late) {
      resources.push(await this.ensure(run, backend, host, hostNft, d, secret, underlayMtu, prefetch.get(d.networkId), blocked));
    }
    // Nothing of a network that is still desired is removed, even when its desired entry was invalid.
    for (const id of [...removeIds].sort()) removed.push(await this.remove(run, host, hostNft, id));
    this.planned.prune(desiredIds);

    return {
      ok: resources.every((r) => r.ok) && removed.every((r) => r.ok),
      backend: backend.kind,
      underlayMtu,
      commands: { ...run.counts },
      mutations: run.mutations,
      resources,
      removed,
      ms: performance.now() - t0,
    };
  }

  /**
   * A submission's networks whose tenant table would change with nothing else on the host changed (a policy
   * rule, a peer's subnet): the table is written at once, before the namespace's reads, from what the
   * last apply built it from (issue #16: a rule is in force one `nft -f` after the submission is accepted, not
   * after the reads). The table is not read: the ensure compares what it would write with what was written
   * and writes again only when the host changed meanwhile (an address, egress turned on). A namespace that is
   * gone fails the write (null) and the ensure recreates it. Nothing runs when the table would stay the same
   * (a no-op stays one). Returns, per network written, the table text (null: the write failed).
   */
  private fastFirewall(run: Runner, early: DesiredResource[]): Map<string, Promise<string | null>> {
    const out = new Map<string, Promise<string | null>>();
    for (const d of early) {
      const last = this.tenantTables.get(d.networkId);
      if (!last) continue;
      // The same desired resource builds the same table: no layout (50 networks: ~13 ms) for what did not change.
      // Compared here, on a submission only: the reconcile loop just keeps the reference (nothing mutates it).
      if (JSON.stringify(d) === JSON.stringify(last.desired)) continue;
      let text: string;
      try {
        text = buildNftReplace(layoutFor(d, last.ctx).nftTenant);
      } catch {
        continue; // the host side changed in a way the last context cannot express (egress turned on)
      }
      if (text === last.text) continue;
      const names = namesFor(d.networkId);
      this.tenantTables.delete(d.networkId); // until the ensure knows what is there
      out.set(
        d.networkId,
        run.run(['nft', '-f', '-'], { input: text, netns: names.ns, mutating: true }).then(
          () => text,
          () => null,
        ),
      );
    }
    return out;
  }

  /** Ids of owned things on the host that are not desired. */
  private removalCandidates(host: HostState, desiredIds: Set<string>): Set<string> {
    const ids = new Set<string>();
    for (const ns of host.netns) {
      const id = /^n-([a-z0-9]{10})$/.exec(ns)?.[1];
      if (id && !desiredIds.has(id)) ids.add(id);
    }
    for (const l of host.links.values()) {
      const id = idFromMarker(l.alias);
      if (id && idFromName(l.name) === id && !desiredIds.has(id)) ids.add(id);
    }
    for (const t of this.daemons.files()) if (t.networkId && !desiredIds.has(t.networkId)) ids.add(t.networkId);
    return ids;
  }

  private egressFor(host: HostState, names: ResourceNames): { hostAddr: string; tenantAddr: string } {
    const mine = host.links.get(names.hostVeth);
    const kept = mine && idFromMarker(mine.alias) === names.id ? mine.addrs.find((a) => isEgressHostAddr(a.cidr)) : undefined;
    if (kept) return egressAddrs(parseCidr(kept.cidr)!);
    const taken: string[] = [...host.reserved];
    for (const l of host.links.values()) if (l.name !== names.hostVeth) for (const a of l.addrs) if (a.family === 'inet') taken.push(a.cidr);
    const a = allocateEgressBlock(names.id, taken);
    host.reserved.push(a.block); // two new egress networks in one apply never share a block
    return { hostAddr: a.hostAddr, tenantAddr: a.tenantAddr };
  }

  private async ensure(
    run: TallyRunner,
    backend: WgBackend,
    host: HostState,
    hostNft: NftTable[],
    d: DesiredResource,
    secret: X25519Secret,
    underlayMtu: number,
    prefetched: Promise<NsRead | Error> | undefined,
    blocked: BlockedSets | null,
    ahead?: Promise<string | null>,
  ): Promise<ResourceReport> {
    const names = namesFor(d.networkId);
    // Dual-stack (validated: the range and the resource's IPv6 fields come together): IPv6 routes are read too.
    const dual = d.ipRange6 !== undefined;
    const early = host.netns.has(names.ns) && prefetched ? await prefetched : null;
    const rep: ResourceReport = {
      networkId: d.networkId,
      tenant: d.tenant,
      networkName: d.networkName,
      node: d.resource.node,
      ok: false,
      changes: [],
      failures: [],
      actual: null,
    };
    const before = run.counts.mutating;
    // What changed, so that only that is read back for the report.
    const dirty: Dirty = { ns: false, wg: false, nft: false, host: false };
    const step = async (name: string, touches: (keyof Dirty)[], fn: () => Promise<void>): Promise<boolean> => {
      const m = run.counts.mutating;
      try {
        await fn();
        return true;
      } catch (e) {
        rep.failures.push(failureOf(name, e));
        return false;
      } finally {
        if (run.counts.mutating !== m) for (const t of touches) dirty[t] = true;
      }
    };
    const say = (lines: string[]) => {
      for (const l of lines) rep.changes.push(l);
    };
    // The tenant table written ahead of the reads (its text), if it was.
    const written = ahead ? await ahead : null;
    if (written !== null) {
      say([`nft table ${names.nftTenant} written (before the reads)`]);
      dirty.nft = true;
    }

    // Namespace, with the marker on its loopback. One we just created holds only that loopback: it is not read
    // (three processes fewer on the way to a new network's first packet; phase A creates links and phase B
    // reads it then).
    let created: NsRead | null = null;
    if (!host.netns.has(names.ns)) {
      const ok = await step('namespace', ['ns'], async () => {
        await run.run(['ip', 'netns', 'add', names.ns], { mutating: true });
        await run.run(['ip', 'link', 'set', 'dev', 'lo', 'alias', names.marker, 'up'], { netns: names.ns, mutating: true });
        host.netns.add(names.ns);
        say([`created namespace ${names.ns}`]);
      });
      if (!ok) return this.finish(run, backend, rep, names, before, null, undefined, dual);
      created = { ns: freshNamespace(names.marker), wg: null, nft: [] };
    }

    let ns: NsState;
    let wgDev: WgDevice | null;
    let tenantNft: NftTable[] | null;
    try {
      const r = created ?? (early instanceof Error || early === null ? await readNsAll(run, backend, names, dual) : early);
      [ns, wgDev, tenantNft] = [r.ns, r.wg, r.nft];
      // Not read because it was being written ahead, and that write failed: read it now.
      if (tenantNft === null && written === null) tenantNft = await readNft(run, names.ns);
    } catch (e) {
      rep.failures.push(failureOf('read namespace', e));
      return this.finish(run, backend, rep, names, before, null, undefined, dual);
    }
    const lo = ns.links.get('lo');
    if (lo?.alias !== names.marker) {
      const empty = ns.links.size === 1 && lo && lo.alias === null;
      if (!empty) {
        rep.failures.push(failureOf('ownership', new Error(`namespace ${names.ns} exists but carries no zmesh marker: left alone`)));
        return this.finish(run, backend, rep, names, before, null, undefined, dual);
      }
      // An empty namespace of our name without the marker: we crashed between creating and marking it.
      const ok = await step('namespace marker', ['ns'], async () => {
        await run.run(['ip', 'link', 'set', 'dev', 'lo', 'alias', names.marker, 'up'], { netns: names.ns, mutating: true });
        say([`adopted empty namespace ${names.ns}`]);
      });
      if (!ok) return this.finish(run, backend, rep, names, before, null, undefined, dual);
      ns = await readNs(run, names.ns, dual);
    }

    const egress = d.egress ? this.egressFor(host, names) : null;
    const egress6 = egress !== null && dual && d.egress6 === true && (host.uplinks6?.length ?? 0) > 0;
    const ctx: LayoutContext = { underlayMtu, wgKind: backend.linkKind, egressAddrs: egress, egressBlocked: blocked, ...(egress6 ? { egress6 } : {}) };
    const layout = layoutFor(d, ctx);
    const marked = (l: IpLink | undefined) => l !== undefined && l.alias === names.marker;

    // A namespace created by this apply: its tenant table and its forwarding go in beside the links, not after
    // them (two processes fewer on the way to the first packet). Both are awaited before phase B brings any
    // link up, so nothing passes before the table is there (before, the table came last, after the links).
    const tenantText = buildNftReplace(layout.nftTenant);
    const forwardingSettings = ['net.ipv4.ip_forward=1', ...(dual ? ['net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.all.accept_ra=0', 'net.ipv6.conf.default.accept_ra=0'] : [])];
    const writeTable = async () => void (await run.run(['nft', '-f', '-'], { input: tenantText, netns: names.ns, mutating: true }));
    const setForwarding = async () => void (await run.run(['sysctl', '-q', '-w', ...forwardingSettings], { netns: names.ns, mutating: true }));
    const beside = created ? { nft: step('tenant nft', ['nft'], writeTable), forwarding: step('forwarding', ['ns'], setForwarding) } : null;

    // Before any return: the steps started beside are finished (their commands and failures are this report's).
    const settleBeside = async () => (beside ? { nft: await beside.nft, forwarding: await beside.forwarding } : null);

    // Phase A: links that must exist (created, or recreated when of the wrong kind or dead).
    let relinked = false; // links were created or deleted: the namespace is read again before phase B
    const wgLink = ns.links.get(names.wg);
    const wgOk = wgLink !== undefined && wgLink.kind === backend.linkKind && wgDev !== null && backend.healthy(names.wg);
    let wgReady = wgOk;
    // The bridge: in a namespace created just now, made beside the tunnel (its lines said after the tunnel's).
    const bridge = ns.links.get(names.bridge);
    let bridgeLines: string[] = [];
    const makeBridge = () =>
      step('bridge', ['ns'], async () => {
        const lines = [...(bridge ? [ip.linkDel(names.bridge)] : []), ip.linkAdd(names.bridge, 'bridge', layout.links.find((l) => l.name === names.bridge)?.mac)];
        await run.run(['ip', '-batch', '-'], { netns: names.ns, input: buildIpBatch(lines), mutating: true });
        bridgeLines = lines;
        relinked = true;
      });
    const needBridge = !bridge || bridge.kind !== 'bridge';
    const bridgeBeside = needBridge && beside ? makeBridge() : null;
    if (!wgOk) {
      wgReady = await step('wireguard interface', ['ns', 'wg', 'host'], async () => {
        if (wgLink) {
          await run.run(['ip', 'link', 'del', 'dev', names.wg], { netns: names.ns, mutating: true, okCodes: [0, 1, 2] });
          say([`deleted broken ${names.wg} (${wgLink.kind})`]);
        }
        const hostStale = host.links.get(names.wg);
        this.tuner.forget(names.wg);
        say(await backend.create(run, names.wg, names.ns, names.marker, layout.overlayMtu, marked(hostStale)));
        host.links.delete(names.wg);
        wgDev = null;
        relinked = true;
      });
    }

    const hostVeth = host.links.get(names.hostVeth);
    const tenantVeth = ns.links.get(names.tenantVeth);
    if (layout.egress) {
      const eg = layout.egress;
      if (!hostVeth || hostVeth.kind !== 'veth' || !tenantVeth || tenantVeth.kind !== 'veth') {
        await step('egress veth', ['ns', 'host'], async () => {
          if (tenantVeth) await run.run(['ip', 'link', 'del', 'dev', names.tenantVeth], { netns: names.ns, mutating: true, okCodes: [0, 1, 2] });
          const lines: string[] = [];
          if (hostVeth) {
            if (!marked(hostVeth)) throw new Error(`host link ${names.hostVeth} exists but carries no zmesh marker: left alone`);
            lines.push(ip.linkDel(names.hostVeth));
          }
          lines.push(ip.vethAdd(names.hostVeth, names.tenantVeth, names.ns));
          lines.push(ip.linkSet(names.hostVeth, { alias: names.marker, mtu: eg.hostLink.mtu, up: true }));
          for (const a of eg.hostLink.addrs) lines.push(ip.addrAdd(a, names.hostVeth));
          await run.run(['ip', '-batch', '-'], { input: buildIpBatch(lines), mutating: true });
          say(lines.map((l) => `host: ${l}`));
          relinked = true;
        });
      } else {
        const fix = diffLink(eg.hostLink, hostVeth);
        const lines = [...fix.set, ...fix.addrAdd, ...fix.addrDel];
        if (lines.length > 0) {
          await step('egress veth (host end)', ['host'], async () => {
            await run.run(['ip', '-batch', '-'], { input: buildIpBatch(lines), mutating: true });
            say(lines.map((l) => `host: ${l}`));
          });
        }
      }
    } else {
      const table = hostNft.find((t) => t.family === NFT_FAMILY && t.name === names.nftHost);
      if (table) {
        await step('host nft (egress off)', ['host'], async () => {
          await run.run(['nft', '-f', '-'], { input: buildNftDelete(NFT_FAMILY, names.nftHost), mutating: true });
          say([`host: deleted nft table ${names.nftHost}`]);
        });
      }
      if (hostVeth && marked(hostVeth)) {
        await step('egress veth (egress off)', ['ns', 'host'], async () => {
          await run.run(['ip', 'link', 'del', 'dev', names.hostVeth], { mutating: true, okCodes: [0, 1, 2] });
          say([`host: deleted ${names.hostVeth}`]);
          relinked = true;
        });
      } else if (tenantVeth) {
        await step('egress veth (egress off)', ['ns', 'host'], async () => {
          await run.run(['ip', 'link', 'del', 'dev', names.tenantVeth], { netns: names.ns, mutating: true, okCodes: [0, 1, 2] });
          say([`deleted ${names.tenantVeth}`]);
          relinked = true;
        });
      }
    }

    if (bridgeBeside) await bridgeBeside;
    else if (needBridge) await makeBridge();
    say(bridgeLines);

    // A network that became IPv4-only (`ipv6: false`) still holds IPv6 addresses: its IPv6 routes are read too,
    // so that they go with the addresses (only then: an IPv4-only read has no IPv6 routes).
    const stale6 = !dual && [...ns.links.values()].some((l) => l.name !== 'lo' && l.addrs.some((a) => a.family === 'inet6' && a.scope !== 'link'));
    if (relinked || stale6) {
      try {
        ns = await readNs(run, names.ns, dual || stale6);
      } catch (e) {
        rep.failures.push(failureOf('read namespace', e));
        await settleBeside();
        return this.finish(run, backend, rep, names, before, null, undefined, dual);
      }
    }

    // WireGuard: key, port and peers, one by one, in one `wg set`.
    if (wgReady) {
      await step('wireguard configuration', ['wg'], async () => {
        const diff = diffWireguard(layout.wg, wgDev, this.nowSec(), this.opts.roamWindowSec ?? ROAM_WINDOW_SEC, this.planned.get(d.networkId));
        const change = diff.change;
        if (diff.needsPrivateKey) {
          const priv = openSealed(d.resource.sealedPrivateKey, secret, sealContext(d.networkId, d.resource.node));
          if (x25519PublicKey(priv).toString() !== layout.wg.publicKey) {
            throw new Error('the sealed private key does not match the resource public key');
          }
          change.privateKey = priv.toString();
        }
        const cmds = buildWgSet(names.wg, change, SECRET_FILE);
        for (const c of cmds) {
          await run.run(c.argv, { secretFile: c.secret, netns: backend.wgNetns(names.ns), mutating: true });
        }
        // Remembered only once WireGuard took the peers (a failed `wg set` is judged as re-planned again).
        this.planned.set(d.networkId, plannedEndpoints(layout.wg.peers));
        if (change.privateKey !== undefined) say([`wireguard: private key set (public ${layout.wg.publicKey})`]);
        if (change.listenPort !== undefined) say([`wireguard: listen-port ${change.listenPort}`]);
        const lines = change.peers.map(peerLine);
        say(lines.slice(0, MAX_CHANGE_LINES));
        if (lines.length > MAX_CHANGE_LINES) say([`… and ${lines.length - MAX_CHANGE_LINES} more peer changes`]);
      });
    }

    // The tenant table, then forwarding, then phase B: no link of the namespace is brought up before its table
    // is in place (a new namespace wrote both beside its links, above). A table that could not be written leaves
    // phase B out: links that are down stay down until the next apply writes the table.
    const besideDone = beside ? await settleBeside() : null;
    if (besideDone?.nft) say([`nft table ${names.nftTenant} written`]);
    if (besideDone?.forwarding) say(forwardingSettings);
    const tenantCurrent = besideDone
      ? besideDone.nft
      : (tenantNft === null ? written === tenantText : nftIsCurrent(layout.nftTenant, tenantNft.find((t) => t.family === NFT_FAMILY && t.name === names.nftTenant))) ||
        (await step('tenant nft', ['nft'], async () => {
          await writeTable();
          say([`nft table ${names.nftTenant} written`]);
        }));
    if (tenantCurrent) this.tenantTables.set(d.networkId, { ctx, text: tenantText, desired: d });
    else this.tenantTables.delete(d.networkId);

    // Dual-stack: IPv6 forwarding in the same process, and router advertisements never configure the namespace
    // (a forwarding interface ignores them already; accept_ra=0 for the links made later too).
    if (!besideDone && (!ns.forwarding || (dual && !ns.forwarding6))) {
      await step('forwarding', ['ns'], async () => {
        await setForwarding();
        say(forwardingSettings);
      });
    }

    // Phase B: properties, addresses and routes inside the namespace, in one `ip -batch`.
    const lines = tenantCurrent ? this.tenantLines(layout, ns) : [];
    if (lines.length > 0) {
      await step('links, addresses and routes', ['ns'], async () => {
        await run.run(['ip', '-force', '-batch', '-'], { netns: names.ns, input: buildIpBatch(lines), mutating: true });
        say(lines);
      });
    }

    if (layout.nftHost) {
      const spec = layout.nftHost;
      if (!nftIsCurrent(spec, hostNft.find((t) => t.family === NFT_FAMILY && t.name === spec.name))) {
        await step('host nft', ['host'], async () => {
          await run.run(['nft', '-f', '-'], { input: buildNftReplace(spec), mutating: true });
          say([`host: nft table ${spec.name} written`]);
        });
      }
      if (!host.forwarding) {
        await step('host forwarding', ['host'], async () => {
          await run.run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { mutating: true });
          host.forwarding = true;
          say(['host: net.ipv4.ip_forward=1']);
        });
      }
      if (layout.egress?.hostAddr6 && !host.forwarding6) {
        await step('host IPv6 forwarding', ['host'], async () => {
          const settings = forwarding6Settings(await readAcceptRa(run));
          await run.run(['sysctl', '-q', '-w', ...settings], { mutating: true });
          host.forwarding6 = true;
          say(settings.map((x) => `host: ${x}`));
        });
      }
    }

    // Tuning: wireguard-go's UDP socket buffers (now, or as soon as a fresh daemon opens its sockets).
    if (wgReady && backend.kind === 'userspace' && this.tuner.enabled) {
      const pid = this.daemons.livePid(names.wg);
      if (pid !== null) say(await this.tuner.ensure(run, names.wg, pid, layout.wg.listenPort));
    }

    // A table not read was written (dirty.nft): the report reads it back.
    return this.finish(run, backend, rep, names, before, { ns, wg: wgDev, tenantNft: tenantNft ?? [], host, hostNft }, dirty, dual);
  }

  /** Lines for the tenant namespace: loopback, link properties, then address adds, routes, address deletes. */
  private tenantLines(layout: Layout, ns: NsState): string[] {
    const set: string[] = [];
    const add: string[] = [];
    const del: string[] = [];
    const lo = ns.links.get('lo');
    if (lo && (!lo.up || lo.alias !== layout.names.marker)) {
      set.push(ip.linkSet('lo', { alias: lo.alias !== layout.names.marker ? layout.names.marker : undefined, up: !lo.up }));
    }
    for (const want of layout.links) {
      const have = ns.links.get(want.name);
      if (!have) continue; // creation failed: reported already
      const fix = diffLink(want as DesiredLink, have);
      set.push(...fix.set);
      add.push(...fix.addrAdd);
      del.push(...fix.addrDel);
    }
    const usable = layout.routes.filter((r) => ns.links.has(r.dev));
    const routes = diffRoutes(usable, ns.routes);
    return [...set, ...add, ...routes.replace, ...del, ...routes.del];
  }

  private async finish(
    run: TallyRunner,
    backend: WgBackend,
    rep: ResourceReport,
    names: ResourceNames,
    mutatingBefore: number,
    snap: Snapshot | null,
    dirty?: Dirty,
    dual = false,
  ): Promise<ResourceReport> {
    rep.ok = rep.failures.length === 0;
    const changed = run.counts.mutating !== mutatingBefore || (dirty !== undefined && (dirty.ns || dirty.wg || dirty.nft || dirty.host));
    if (!this.readBack && (changed || snap === null)) return rep;
    try {
      if (snap === null || !dirty) {
        rep.actual = run.counts.mutating !== mutatingBefore || snap === null ? await this.readActualWith(run, names.id, backend, dual) : null;
      } else {
        // Read back only what this apply changed; the rest is what was just read.
        const [ns, wg, tenantNft, host, hostNft] = await Promise.all([
          dirty.ns ? readNs(run, names.ns, dual) : snap.ns,
          dirty.wg ? backend.readDevice(run, names.wg, names.ns) : snap.wg,
          dirty.nft ? readNft(run, names.ns) : snap.tenantNft,
          dirty.host ? readHost(run) : snap.host,
          dirty.host ? readNft(run) : snap.hostNft,
        ]);
        rep.actual = this.withTuning(this.actualFrom(names, true, ns, wg, backend.daemon(names.wg), host.links.get(names.hostVeth) ?? null, tenantNft, hostNft));
      }
    } catch (e) {
      rep.failures.push(failureOf('read back', e));
      rep.ok = false;
    }
    return rep;
  }

  private actualFrom(
    names: ResourceNames,
    owned: boolean,
    ns: NsState | null,
    wg: WgDevice | null,
    daemon: ActualResource['daemon'],
    hostLink: IpLink | null,
    tenantNft: NftTable[] | null,
    hostNft: NftTable[] | null,
  ): ActualResource {
    const nft: ActualResource['nft'] = [];
    for (const [tables, where] of [
      [tenantNft, 'tenant'],
      [hostNft, 'host'],
    ] as const) {
      for (const t of tables ?? []) {
        if (t.name !== (where === 'tenant' ? names.nftTenant : names.nftHost)) continue;
        nft.push({ table: t.name, where, rules: t.rules.length, current: t.rules.length > 0 && t.rules.every((r) => r.comment?.startsWith('zmesh:')) });
      }
    }
    const tenantTable = (tenantNft ?? []).find((t) => t.family === NFT_FAMILY && t.name === names.nftTenant);
    const policy = tenantTable ? policyCounters(tenantTable.rules) : null;
    const firewall = tenantTable ? firewallCounters(tenantTable.rules) : null;
    return {
      networkId: names.id,
      namespace: names.ns,
      exists: ns !== null,
      owned,
      links: ns ? [...ns.links.values()].filter((l) => l.name !== 'lo').map(toActualLink) : [],
      routes: ns ? ns.routes.map((r) => ({ dst: r.dst, dev: r.dev, gateway: r.gateway, protocol: r.protocol })) : [],
      forwarding: ns?.forwarding ?? false,
      wireguard: wg
        ? {
            publicKey: wg.publicKey,
            listenPort: wg.listenPort,
            peers: wg.peers.map((p) => ({
              publicKey: p.publicKey,
              endpoint: p.endpoint,
              allowedIps: p.allowedIps,
              latestHandshake: p.latestHandshake > 0 ? p.latestHandshake : null,
              rxBytes: p.rxBytes,
              txBytes: p.txBytes,
              persistentKeepalive: p.persistentKeepalive,
            })),
          }
        : null,
      daemon,
      hostLink: hostLink ? toActualLink(hostLink) : null,
      nft,
      ...(policy ? { policy } : {}),
      ...(firewall ? { firewall } : {}),
    };
  }

  /** `dual`: with the namespace's IPv6 routes (operators' reads always: a network may be dual-stack). */
  private async readActualWith(run: Runner, networkId: string, backend: WgBackend | null, dual = true): Promise<ActualResource> {
    const names = namesFor(networkId);
    const host = await readHost(run);
    const hostNft = await readNft(run);
    const daemon = this.daemons.status(names.wg);
    if (!host.netns.has(names.ns)) {
      return this.actualFrom(names, false, null, null, daemon, host.links.get(names.hostVeth) ?? null, null, hostNft);
    }
    const ns = await readNs(run, names.ns, dual);
    const link = ns.links.get(names.wg);
    // How to read the device follows the link actually there: a kernel device inside the namespace, else a
    // wireguard-go daemon's socket.
    const kernel = link ? link.kind === 'wireguard' : backend?.kind === 'kernel';
    const [wg, tenantNft] = await Promise.all([kernel ? readWg(run, names.wg, names.ns) : readUapi(this.daemons.socket(names.wg)), readNft(run, names.ns)]);
    const owned = ns.links.get('lo')?.alias === names.marker;
    return this.withTuning(this.actualFrom(names, owned, ns, wg, daemon, host.links.get(names.hostVeth) ?? null, tenantNft, hostNft));
  }

  /** Adds what the tuner did to the daemon's sockets (userspace only; nothing when tuning is off). */
  private withTuning(a: ActualResource): ActualResource {
    if (!this.tuner.enabled || !a.daemon?.alive) return a;
    const t = this.tuner.status(`w-${a.networkId}`, a.daemon.pid);
    return t ? { ...a, tuning: t } : a;
  }

  /** The state of one network on this host, for operators. */
  readActual(networkId: string): Promise<ActualResource> {
    return this.lock(() => this.readActualWith(this.runner, networkId, this.backend));
  }

  /** The global addresses of the devices the host's default routes leave by (its underlay), sorted. */
  underlayAddresses(): Promise<string[]> {
    return this.lock(async () => {
      const [host, routes] = await Promise.all([readHost(this.runner), readHostRoutes(this.runner)]);
      const devs = new Set(routes.filter((r) => isDefaultRoute(r) && r.dev).map((r) => r.dev as string));
      const out = new Set<string>();
      for (const d of devs) for (const a of host.links.get(d)?.addrs ?? []) if (a.scope === 'global') out.add(a.cidr.split('/')[0]);
      return [...out].sort();
    });
  }

  /** A network's WireGuard device alone (its peers' counters and endpoints): no process with wireguard-go. */
  readDevice(networkId: string): Promise<WgDevice | null> {
    return this.lock(async () => {
      const backend = await this.getBackend(this.runner);
      const names = namesFor(networkId);
      if (backend.kind === 'kernel') return readWg(this.runner, names.wg, names.ns);
      return readUapi(this.daemons.socket(names.wg)).catch(() => null);
    });
  }

  /**
   * Brings only the peers of an existing network's device to `peers` (the direct-path moves between two full
   * applies): one read, the usual per-peer diff, one `wg set` or none. Returns the change lines.
   *
   * `reset`: public keys whose session is dropped: the peer is removed and added again in the same `wg set` (its
   * counters start from 0). A path that went back to the relay does this, so that its next probe needs a fresh
   * handshake, the proof that both directions work; with the old session kept no handshake came for up to
   * 2 minutes, and a pair whose two sides disagreed (one direct, one relayed) dropped each other's packets so long.
   */
  setPeers(networkId: string, peers: DesiredResource['resource']['peers'], reset: readonly string[] = []): Promise<string[]> {
    return this.lock(async () => {
      const run = this.runner;
      const backend = await this.getBackend(run);
      const names = namesFor(networkId);
      const dev = backend.kind === 'kernel' ? await readWg(run, names.wg, names.ns) : await readUapi(this.daemons.socket(names.wg)).catch(() => null);
      if (!dev) return [];
      const want = normalizePeers(peers);
      const before = this.planned.get(networkId);
      const wanted = new Set(want.map((p) => p.publicKey));
      const drop = new Set(reset.filter((k) => wanted.has(k) && dev.peers.some((p) => p.publicKey === k)));
      const live = dev.peers.filter((p) => !drop.has(p.publicKey));
      const ops: PeerOp[] = [...drop].map((publicKey) => ({ op: 'remove' as const, publicKey }));
      ops.push(...diffPeers(want, live, this.nowSec(), this.opts.roamWindowSec ?? ROAM_WINDOW_SEC, before).filter((o) => o.op !== 'remove'));
      for (const c of ops.length ? buildWgSet(names.wg, { peers: ops }, SECRET_FILE) : []) {
        await run.run(c.argv, { secretFile: c.secret, netns: backend.wgNetns(names.ns), mutating: true });
      }
      // The peers given here (all of them exist now); the others keep what the last apply remembered.
      this.planned.set(networkId, new Map([...before, ...plannedEndpoints(want)]));
      return ops.map(peerLine);
    });
  }

  /**
   * Starts a handshake with each of `keys` (peers of network `networkId` already on its device): one `wg set`
   * that turns their keepalive on and off again (build.ts buildKick). The change lines.
   */
  startHandshakes(networkId: string, keys: readonly string[]): Promise<string[]> {
    return this.lock(async () => {
      if (!keys.length) return [];
      const run = this.runner;
      const backend = await this.getBackend(run);
      const names = namesFor(networkId);
      for (const argv of buildKick(names.wg, keys)) await run.run(argv, { netns: backend.wgNetns(names.ns), mutating: true });
      return [`wireguard: handshake started with ${keys.length} peer(s)`];
    });
  }

  /** Removes everything of network `id` that carries our marker. */
  private async remove(run: Runner, host: HostState, hostNft: NftTable[], id: string): Promise<RemovalReport> {
    const names = namesFor(id);
    this.tenantTables.delete(id);
    const rep: RemovalReport = { networkId: id, ok: false, changes: [], failures: [] };
    const step = async (name: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        rep.failures.push(failureOf(name, e));
      }
    };
    // Host rules first, then the veth: a host table never outlives the link that makes us look for it.
    if (hostNft.some((t) => t.family === NFT_FAMILY && t.name === names.nftHost)) {
      await step('host nft', async () => {
        await run.run(['nft', '-f', '-'], { input: buildNftDelete(NFT_FAMILY, names.nftHost), mutating: true });
        rep.changes.push(`host: deleted nft table ${names.nftHost}`);
      });
    }
    for (const name of [names.hostVeth, names.wg]) {
      const l = host.links.get(name);
      if (l && l.alias === names.marker) {
        await step(`host link ${name}`, async () => {
          await run.run(['ip', 'link', 'del', 'dev', name], { mutating: true, okCodes: [0, 1, 2] });
          rep.changes.push(`host: deleted ${name}`);
        });
      }
    }
    await step('wireguard-go', async () => {
      this.tuner.forget(names.wg);
      rep.changes.push(...(await this.daemons.stop(names.wg)));
    });
    if (host.netns.has(names.ns)) {
      await step('namespace', async () => {
        const marker = await readNsMarker(run, names.ns);
        if (marker !== names.marker) {
          rep.changes.push(`namespace ${names.ns} carries no zmesh marker: left alone`);
          return;
        }
        await run.run(['ip', 'netns', 'del', names.ns], { mutating: true });
        rep.changes.push(`deleted namespace ${names.ns}`);
      });
    }
    rep.ok = rep.failures.length === 0;
    return rep;
  }

  /** Everything zmesh owns on this host (and things named like ours without the marker, marked: false). */
  listOwned(): Promise<OwnedThing[]> {
    return this.lock(async () => {
      const run = this.runner;
      const host = await readHost(run);
      const out: OwnedThing[] = [];
      for (const ns of [...host.netns].sort()) {
        const id = /^n-([a-z0-9]{10})$/.exec(ns)?.[1];
        if (!id) continue;
        const marker = await readNsMarker(run, ns);
        out.push({ kind: 'namespace', name: ns, where: 'host', networkId: id, marked: marker === `zmesh:${id}` });
      }
      for (const l of host.links.values()) {
        const id = idFromName(l.name);
        if (!id || !/^(?:ze|w|b|eg)-/.test(l.name)) continue;
        out.push({ kind: 'link', name: l.name, where: 'host', networkId: id, marked: idFromMarker(l.alias) === id });
      }
      for (const t of await readNft(run)) {
        if (!t.name.startsWith(NFT_PREFIX)) continue;
        out.push({ kind: 'nft-table', name: `${t.family} ${t.name}`, where: 'host', networkId: idFromName(t.name), marked: true });
      }
      out.push(...this.daemons.owned());
      out.push(...new Resolvers(this.runner, this.opts.stateDir ? { stateDir: this.opts.stateDir } : {}).owned());
      return out;
    });
  }
}

// ---- Module-level API over a shared default driver -----------------------------------------------------

const drivers = new Map<string, Driver>();
const runnerDrivers = new WeakMap<Runner, Driver>();

function driverFor(opts: DriverOptions): Driver {
  if (opts.runner) {
    let d = runnerDrivers.get(opts.runner);
    if (!d) runnerDrivers.set(opts.runner, (d = new Driver(opts)));
    return d;
  }
  const key = JSON.stringify([opts.backend ?? 'auto', opts.stateDir, opts.socketDir, opts.wireguardGo, opts.underlayMtu, opts.roamWindowSec, opts.tuning]);
  let d = drivers.get(key);
  if (!d) drivers.set(key, (d = new Driver(opts)));
  return d;
}

export function createDriver(opts: DriverOptions = {}): Driver {
  return new Driver(opts);
}

/** Converges this host's network resources to `desired` (see Driver.apply). */
export function apply(desired: DesiredResource[], identity: NodeIdentity, opts: DriverOptions & ApplyOptions = {}): Promise<ApplyReport> {
  return driverFor(opts).apply(desired, identity, { underlayMtu: opts.underlayMtu, egress: opts.egress });
}

/** The actual state of one network on this host. */
export function readActual(networkId: string, opts: DriverOptions = {}): Promise<ActualResource> {
  return driverFor(opts).readActual(networkId);
}

/** Everything zmesh owns on this host: namespaces, links, nft tables, daemons, sockets, pidfiles. */
export function listOwned(opts: DriverOptions = {}): Promise<OwnedThing[]> {
  return driverFor(opts).listOwned();
}
