// The agent's data plane: the netns driver behind the agent's DriverPort.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Logger } from '../log.ts';
import type { X25519Secret } from '../crypto/keys.ts';
import { Driver, type DriverOptions } from '../../netns/driver.ts';
import { isNetworkId, namesFor } from '../../netns/names.ts';
import { ProcessRunner, inNetns } from '../../netns/runner.ts';
import type { ActualResource, ApplyReport, DesiredResource } from '../../netns/types.ts';
import type { EgressPolicy } from '../../netns/egress.ts';
import { BATCHED_SINCE, NO_TUNING, readUdpSockets } from '../../netns/tuning.ts';
import type { AgentConfig } from './config.ts';
import type { ActualNetwork, DataplaneInfo, DesiredNetwork, DriverPort, ResourceReport } from './ports.ts';
import type { PeerCounters } from './paths.ts';
import type { Resource } from '../plan/types.ts';
import { Resolvers } from '../../netns/dns.ts';
import { parseNslookup } from '../../netns/dns-build.ts';
import { nameRecords, type NameRecord, type NetworkNames } from '../plan/names.ts';

const WG_OVERHEAD = 80;

/** The driver's view of one network → the agent's; `sockets`: the daemon's UDP sockets on its port, when read. */
export function toActualNetwork(a: ActualResource, sockets?: { drops: number }[]): ActualNetwork {
  const daemon = a.daemon
    ? { daemon: { pid: a.daemon.pid, alive: a.daemon.alive, udpSockets: sockets?.length ?? 0, udpDrops: (sockets ?? []).reduce((n, x) => n + x.drops, 0) } }
    : {};
  return {
    networkId: a.networkId,
    namespace: a.namespace,
    namespaceExists: a.exists,
    interfaces: a.links.map((l) => ({ name: l.name, kind: l.kind, up: l.up, mtu: l.mtu, addresses: l.addresses })),
    routes: a.routes.map((r) => ({ dst: r.dst, dev: r.dev ?? '' })),
    wireguard: a.wireguard
      ? {
          interface: namesFor(a.networkId).wg,
          publicKey: a.wireguard.publicKey ?? '',
          listenPort: a.wireguard.listenPort,
          peers: a.wireguard.peers.map((p) => ({
            publicKey: p.publicKey,
            endpoint: p.endpoint,
            allowedIps: p.allowedIps,
            latestHandshake: p.latestHandshake ?? 0,
            rxBytes: p.rxBytes,
            txBytes: p.txBytes,
            persistentKeepalive: p.persistentKeepalive,
          })),
        }
      : null,
    firewall: Object.fromEntries(a.nft.map((t) => [`${t.where}:${t.table}:rules`, t.rules])),
    ...daemon,
    ...(a.policy ? { policy: a.policy } : {}),
    ...(a.firewall ? { firewallCounters: a.firewall } : {}),
  };
}

export function toReports(rep: ApplyReport): ResourceReport[] {
  const out: ResourceReport[] = [];
  for (const r of rep.resources) {
    out.push({
      networkId: r.networkId,
      ok: r.ok,
      changes: r.changes,
      errors: r.failures.map((f) => ({ message: `${f.step}: ${f.message}`, argv: f.argv ?? undefined, stderr: f.stderr || undefined })),
    });
  }
  for (const r of rep.removed) {
    out.push({
      networkId: r.networkId,
      ok: r.ok,
      changes: r.changes,
      errors: r.failures.map((f) => ({ message: `${f.step}: ${f.message}`, argv: f.argv ?? undefined, stderr: f.stderr || undefined })),
    });
  }
  return out;
}

/** The hosts of the control plane this node talks to: its etcd endpoints' hosts (IP literals or names). */
export function controlPlaneHosts(config: Pick<AgentConfig, 'etcd'>): string[] {
  const out = new Set<string>();
  for (const u of config.etcd?.endpoints ?? []) {
    try {
      out.add(new URL(u).hostname.replace(/^\[(.*)\]$/, '$1'));
    } catch {
      /* the config check refuses malformed URLs */
    }
  }
  return [...out].sort();
}

/**
 * What the driver is given for one desired network. `ipv6Egress`: the node's config allows IPv6 egress (its
 * `egress.ipv6` is not false); the network's ask comes from its signed blueprint (DesiredNetwork.egress6).
 */
export function driverResource(d: DesiredNetwork, ipv6Egress: boolean): DesiredResource {
  return {
    tenant: d.tenant,
    networkId: d.networkId,
    networkName: d.networkName,
    ipRange: d.ipRange,
    // Dual-stack only when the resource carries its IPv6 fields too (a part planned before IPv6 has none).
    ...(d.ipRange6 !== undefined && d.resource.subnet6 !== undefined ? { ipRange6: d.ipRange6 } : {}),
    egress: d.egress,
    egressDevices: d.egressDevices ?? [],
    ...(d.egress6 === true && ipv6Egress ? { egress6: true } : {}),
    ...(d.bridgeHosts ? { bridgeHosts: d.bridgeHosts } : {}),
    resource: d.resource,
    ...(d.policy ? { policy: d.policy } : {}),
  };
}

/** What the agent tells the driver about egress: the config's allow/deny, and the control plane's hosts. */
export interface EgressSettings {
  allow: string[];
  deny: string[];
  /** IP literals or names (resolved at each apply; a name that does not resolve keeps its last addresses). */
  controlPlane: string[];
  /** The node's public addresses (the config's `endpoints`): maybe on no interface (1:1 NAT, port forwarding). */
  nodeAddresses?: string[];
  /** Where the resolvers of networks with egress forward the names they do not serve (docs/dns.md); none: NXDOMAIN. */
  dnsUpstreams?: string[];
  /** false: no network gets IPv6 egress on this node, whatever its blueprint asks (the config's egress.ipv6). */
  ipv6?: boolean;
}

type Lookup = (host: string) => Promise<string[]>;
const LOOKUP_TIMEOUT_MS = 2000;

async function systemLookup(host: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`lookup of ${host} took over ${LOOKUP_TIMEOUT_MS} ms`)), LOOKUP_TIMEOUT_MS);
  });
  try {
    return (await Promise.race([lookup(host, { all: true }), timeout])).map((a) => a.address);
  } finally {
    clearTimeout(timer);
  }
}

export class NetnsDriverPort implements DriverPort {
  private underlayMtu: number | null;
  readonly runner = new ProcessRunner();
  readonly driver: Driver;
  /** Last addresses of each control-plane name (kept when a lookup fails). */
  private readonly resolved = new Map<string, string[]>();
  /** Each network's resolver (docs/dns.md): started after the driver applied the network, stopped before it goes. */
  readonly resolvers: Resolvers;
  /**
   * Each network's name records, built once per stored names object (the state hands out the same frozen
   * objects until a submission changes them): a 5,000-node network's records were built again on every reconcile.
   */
  private readonly records = new WeakMap<NetworkNames, { network: string; records: readonly NameRecord[] }>();

  constructor(
    private readonly identity: X25519Secret,
    opts: DriverOptions,
    private readonly log?: Logger,
    private readonly egress: EgressSettings = { allow: [], deny: [], controlPlane: [] },
    private readonly resolve: Lookup = systemLookup,
  ) {
    this.underlayMtu = opts.underlayMtu ?? null;
    this.driver = new Driver({ ...opts, runner: this.runner });
    this.resolvers = new Resolvers(this.runner, {
      // /run/zmesh-dns (not the driver's /run/zmesh, 0700 under the agent's umask): dnsmasq re-reads its hosts
      // file as nobody. A driver given a state directory keeps them under it.
      ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
      onExit: (networkId, info) => this.log?.warn({ networkId, ...info }, 'resolver (dnsmasq) exited; the next reconcile restarts it'),
    });
  }

  /** The egress policy for this apply: names of the control plane looked up again (bounded, cached on failure). */
  async egressPolicy(): Promise<EgressPolicy> {
    const controlPlane: string[] = [];
    for (const h of this.egress.controlPlane) {
      if (isIP(h)) {
        controlPlane.push(h);
        continue;
      }
      try {
        this.resolved.set(h, await this.resolve(h));
      } catch (e) {
        this.log?.warn({ host: h, err: (e as Error).message }, 'control-plane host did not resolve; egress keeps blocking its last addresses');
      }
      controlPlane.push(...(this.resolved.get(h) ?? []));
    }
    return { allow: this.egress.allow, deny: this.egress.deny, controlPlane, nodeAddresses: this.egress.nodeAddresses ?? [] };
  }

  async apply(desired: DesiredNetwork[], opts: { first?: string[]; onlyFirst?: boolean } = {}): Promise<ResourceReport[]> {
    // A resolver stops before the driver deletes its namespace: a process inside would keep it (and its links) alive.
    const removing = await this.resolvers.stopExcept(new Set(desired.map((d) => d.networkId)));
    const egress = desired.some((d) => d.egress) ? await this.egressPolicy() : undefined;
    const rep = await this.driver.apply(
      desired.map((d) => driverResource(d, this.egress.ipv6 !== false)),
      this.identity,
      // Nothing here reads the report's `actual`: network views ask the driver when they are asked.
      { egress, readBack: false, ...(opts.first ? { first: opts.first, onlyFirst: opts.onlyFirst ?? false } : {}) },
    );
    this.underlayMtu = rep.underlayMtu;
    this.log?.debug({ ms: rep.ms, commands: rep.commands, backend: rep.backend }, 'data plane applied');
    const reports = toReports(rep);
    await this.applyResolvers(desired, reports, removing);
    return reports;
  }

  /**
   * After the driver: each applied network's resolver brought to its names (nothing when unchanged); the
   * resolvers of networks about to go were stopped before the driver ran (`removing`: their change lines).
   */
  private async applyResolvers(desired: DesiredNetwork[], reports: ResourceReport[], removing: { networkId: string; changes: string[] }[]): Promise<void> {
    const byId = new Map(reports.map((r) => [r.networkId, r]));
    for (const x of removing) {
      const r = byId.get(x.networkId);
      if (r) r.changes.unshift(...x.changes);
      else if (x.changes.length) reports.push({ networkId: x.networkId, ok: true, changes: x.changes, errors: [] });
    }
    for (const d of desired) {
      const r = byId.get(d.networkId);
      if (!r || !d.names) continue;
      const listen = [d.resource.gateway, ...(d.resource.gateway6 ? [d.resource.gateway6] : [])];
      try {
        // Forwarding leaves by the network's egress, like the tenant's own packets: only networks with egress forward.
        const upstreams = d.egress ? (this.egress.dnsUpstreams ?? []) : [];
        r.changes.push(...(await this.resolvers.ensure({ networkId: d.networkId, network: d.networkName, listen, records: this.recordsOf(d.networkName, d.names), upstreams })));
      } catch (e) {
        r.ok = false;
        const c = e as { argv?: string[]; stderr?: string };
        r.errors.push({ message: `resolver: ${(e as Error).message}`, ...(c.argv ? { argv: c.argv } : {}), ...(c.stderr ? { stderr: c.stderr } : {}) });
      }
    }
  }

  /** nameRecords, kept for a frozen names object (one that cannot change under the cache); frozen itself. */
  private recordsOf(network: string, names: NetworkNames): readonly NameRecord[] {
    const hit = this.records.get(names);
    if (hit && hit.network === network) return hit.records;
    const records = Object.freeze(nameRecords(network, names).map((x) => Object.freeze(x)));
    // Kept only when nothing in it can change: the object, its three maps and every entry frozen (checked once,
    // here; a frozen object stays frozen). The state hands out deep-frozen parts.
    const frozen = (m: Record<string, object>) => Object.isFrozen(m) && Object.values(m).every((v) => Object.isFrozen(v));
    if (Object.isFrozen(names) && frozen(names.workloads) && frozen(names.devices) && frozen(names.nodes)) this.records.set(names, { network, records });
    return records;
  }

  resolver(networkId: string): { pid: number; alive: boolean } | null {
    return isNetworkId(networkId) ? this.resolvers.status(networkId) : null;
  }

  /** `busybox nslookup -type=A|AAAA NAME SERVER` inside the tenant namespace (busybox-static, scripts/deps.sh). */
  async lookupName(networkId: string, name: string, server: string, type: 'A' | 'AAAA' = 'A'): Promise<{ answered: boolean; nxdomain: boolean; addresses: string[]; ms: number }> {
    if (!isNetworkId(networkId) || isIP(server) === 0 || !/^[a-z0-9.-]{1,253}$/.test(name)) return { answered: false, nxdomain: false, addresses: [], ms: 0 };
    const t0 = performance.now();
    const r = await this.runner.run(inNetns(namesFor(networkId).ns, ['busybox', 'nslookup', `-type=${type}`, name, server]), { mutating: false, okCodes: [0, 1], timeoutMs: 8000 });
    return { ...parseNslookup(r.stdout, r.stderr, r.exitCode), ms: performance.now() - t0 };
  }

  async actual(networkId: string): Promise<ActualNetwork | null> {
    const a = await this.driver.readActual(networkId);
    const port = a.wireguard?.listenPort;
    return toActualNetwork(a, a.daemon?.alive && port ? readUdpSockets(a.daemon.pid, port) : undefined);
  }

  async ping(networkId: string, address: string, timeoutMs: number): Promise<{ ok: boolean; rttMs: number | null }> {
    // An IPv4 or IPv6 address (dual-stack networks); iputils' ping picks the family from it.
    if (isIP(address) === 0 || !isNetworkId(networkId)) return { ok: false, rttMs: null };
    const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    const r = await this.runner.run(inNetns(namesFor(networkId).ns, ['ping', '-n', '-q', '-c', '1', '-W', secs, address]), {
      mutating: false,
      okCodes: [0, 1, 2],
      timeoutMs: timeoutMs + 2000,
    });
    const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
    return { ok: r.exitCode === 0, rttMs: m ? Number(m[1]) : null };
  }

  async tenantMtu(): Promise<number> {
    return (this.underlayMtu ?? 1500) - WG_OVERHEAD;
  }

  async close(): Promise<void> {}

  shareReads<T>(fn: () => Promise<T>): Promise<T> {
    return this.runner.shareReads(fn);
  }
  commandCounts(): { reads: number; mutating: number } {
    return { ...this.runner.counts };
  }

  async peerCounters(networkId: string): Promise<PeerCounters[] | null> {
    const dev = await this.driver.readDevice(networkId);
    return dev ? dev.peers.map((p) => ({ publicKey: p.publicKey, rxBytes: p.rxBytes, txBytes: p.txBytes, latestHandshake: p.latestHandshake ?? 0, endpoint: p.endpoint, allowedIps: p.allowedIps })) : null;
  }

  setPeers(networkId: string, peers: Resource['peers'], reset: readonly string[] = []): Promise<string[]> {
    return this.driver.setPeers(networkId, peers, reset);
  }

  startHandshakes(networkId: string, keys: readonly string[]): Promise<string[]> {
    return this.driver.startHandshakes(networkId, keys);
  }

  /** Cached for 10 s: the control plane asks often, the underlay rarely changes. */
  async underlayAddresses(): Promise<string[]> {
    const now = Date.now();
    if (!this.underlay || now - this.underlay.at > 10_000) this.underlay = { at: now, addrs: await this.driver.underlayAddresses() };
    return this.underlay.addrs;
  }
  private underlay: { at: number; addrs: string[] } | null = null;

  dataplane(): DataplaneInfo | null {
    const backend = this.driver.knownBackend();
    if (!backend) return null;
    const userspace = backend === 'userspace';
    return {
      backend,
      wireguardGo: userspace ? this.driver.wireguardGo : null,
      tuning: userspace ? this.driver.tuning : null,
      ...(userspace ? { staleDaemons: this.driver.staleDaemons() } : {}),
    };
  }
}

/** The agent config's data-plane settings → DriverOptions.tuning. */
export function driverTuning(config: Pick<AgentConfig, 'dataplaneTuning' | 'wireguardGoMaxProcs'>): DriverOptions['tuning'] {
  const on = config.dataplaneTuning !== false;
  const mp = config.wireguardGoMaxProcs;
  if (mp === undefined) return on;
  const gomaxprocs = String(mp === 'all' ? availableParallelism() : mp);
  return on ? { daemonEnv: { GOMAXPROCS: gomaxprocs } } : { ...NO_TUNING, daemonEnv: { GOMAXPROCS: gomaxprocs } };
}

export async function makeNetnsDriver(config: AgentConfig, identity: X25519Secret, log: Logger, onDaemonExit?: () => void): Promise<NetnsDriverPort> {
  const port = new NetnsDriverPort(
    identity,
    {
      backend: config.wireguardBackend,
      underlayMtu: config.underlayMtu,
      tuning: driverTuning(config),
      ...(config.wireguardGo ? { wireguardGo: config.wireguardGo } : {}),
      onDaemonExit: (ifname, info) => {
        log.warn({ ifname, ...info }, 'wireguard-go exited; reconciling');
        onDaemonExit?.();
      },
    },
    log,
    {
      allow: config.egress?.allow ?? [],
      deny: config.egress?.deny ?? [],
      controlPlane: controlPlaneHosts(config),
      nodeAddresses: config.endpoints,
      dnsUpstreams: config.dnsUpstreams ?? [],
      ...(config.egress?.ipv6 === false ? { ipv6: false } : {}),
    },
  );
  // Detect the WireGuard backend now (the kernel probe is a mutating command; keep it out of the first apply).
  const backend = await port.driver.backendKind();
  const build = port.driver.wireguardGo;
  log.info({ backend, ...(build ? { wireguardGo: build.version, batched: build.batched } : {}), tuning: port.driver.tuning }, 'wireguard backend');
  if (build && !build.batched) {
    log.warn(
      { wireguardGo: build.version, batchedSince: BATCHED_SINCE },
      `wireguard-go ${build.version ?? '(version unknown)'} reads and writes one packet per system call: tunnels carry about a fifth of what a batched build does here; install wireguard-go ≥ ${BATCHED_SINCE} (Debian trixie's package; see docs/benchmarks.md)`,
    );
  }
  return port;
}
