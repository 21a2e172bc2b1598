// Public types of the netns driver: what it is asked for (DesiredResource) and what it reports.
import type { CompiledPolicy } from '../src/plan/policy.ts';
import type { Resource } from '../src/plan/types.ts';
import type { FirewallCounters, PolicyCounters } from './parse.ts';
import type { SocketTuning } from './tuning.ts';

/** One network resource this node must host: a planned Resource plus the network-level facts it needs. */
export interface DesiredResource {
  tenant: string;
  /** 10 characters [a-z0-9]: n-<id>, w-<id>, ... */
  networkId: string;
  networkName: string;
  /** The network's whole range, routed through the WireGuard interface, e.g. "10.1.0.0/16". */
  ipRange: string;
  /** Dual-stack networks: the network's whole IPv6 range, also routed through the WireGuard interface; absent: IPv4-only. */
  ipRange6?: string;
  /** Whether workloads may reach the outside through this host (veth + NAT). */
  egress: boolean;
  /**
   * Sources arriving through the tunnel that may use this host's egress: the subnets of the access devices this
   * node serves whose blueprint entry has `egress: true`. Default none: nothing from the tunnel leaves by egress.
   */
  egressDevices?: string[];
  /**
   * Whether the network asks for IPv6 egress (the signed blueprint's `egressIpv6`, which the node's config
   * allows): in force only with `egress`, a dual-stack network and an IPv6 default route on the host
   * (docs/netns.md#ipv6-egress). Absent: false.
   */
  egress6?: boolean;
  /**
   * The addresses (either family, bare) of this node's workloads on the network, from the plan. Present: the
   * tenant namespace forwards to its bridge only for them, and sends no redirects there (docs/netns.md#neighbours):
   * nothing makes it resolve an address of the subnet nobody holds. Absent (hand-made resources): no such rule.
   */
  bridgeHosts?: string[];
  resource: Resource;
  /** The network policy this node enforces for its own destinations (src/plan/policy.ts); absent: none. */
  policy?: CompiledPolicy;
}

export type BackendKind = 'kernel' | 'userspace';
export type BackendChoice = 'auto' | BackendKind;

export interface ActualLink {
  name: string;
  kind: string;
  mtu: number;
  up: boolean;
  alias: string | null;
  /** Addresses except IPv6 link-local. */
  addresses: string[];
}

export interface ActualRoute {
  dst: string;
  dev: string | null;
  gateway: string | null;
  protocol: string;
}

export interface ActualPeer {
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  /** Seconds since the epoch, or null when there never was a handshake. */
  latestHandshake: number | null;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number | null;
}

export interface ActualWireguard {
  publicKey: string | null;
  listenPort: number;
  peers: ActualPeer[];
}

export interface ActualDaemon {
  pid: number;
  alive: boolean;
}

/** The state actually reached on the host for one network (what `readActual` returns). */
export interface ActualResource {
  networkId: string;
  namespace: string;
  /** The namespace exists. */
  exists: boolean;
  /** The namespace carries our ownership marker. */
  owned: boolean;
  /** Links in the tenant namespace (loopback left out). */
  links: ActualLink[];
  /** Routes of the tenant namespace's main table. */
  routes: ActualRoute[];
  forwarding: boolean;
  wireguard: ActualWireguard | null;
  /** The wireguard-go daemon (userspace backend), when one is tracked. */
  daemon: ActualDaemon | null;
  /** The egress veth's host end, when present. */
  hostLink: ActualLink | null;
  /** nft tables present: tenant namespace ("zmesh_<id>") and host ("zmesh_h_<id>"), with their rule counts. */
  nft: { table: string; where: 'tenant' | 'host'; rules: number; current: boolean }[];
  /** The network policy's rule counters in the tenant table (docs/policy.md); absent when it has no policy. */
  policy?: PolicyCounters;
  /** The tenant table's counting rules: packets and bytes each dropped or accepted (absent: none counted). */
  firewall?: FirewallCounters;
  /** wireguard-go's UDP sockets as the driver tuned them, with their drop counter (userspace backend, tuning on). */
  tuning?: SocketTuning & { drops: number };
}

export interface Failure {
  /** Which step failed, e.g. "wireguard peers". */
  step: string;
  /** The command, when one failed (never with secret input). */
  argv: string[] | null;
  exitCode: number | null;
  stderr: string;
  message: string;
}

export interface ResourceReport {
  networkId: string;
  tenant: string;
  networkName: string;
  node: string;
  ok: boolean;
  /** One line per change made, e.g. "peer add <key>", "route replace 10.1.0.0/16 dev w-…". */
  changes: string[];
  failures: Failure[];
  /** The state reached after this apply (read back when anything changed). */
  actual: ActualResource | null;
}

export interface RemovalReport {
  networkId: string;
  ok: boolean;
  changes: string[];
  failures: Failure[];
}

export interface ApplyReport {
  ok: boolean;
  backend: BackendKind;
  underlayMtu: number;
  /** Commands this apply ran: reads and mutating ones (a no-op apply has mutating = 0). */
  commands: { reads: number; mutating: number };
  /** The mutating commands, argv joined with spaces (never stdin). */
  mutations: string[];
  resources: ResourceReport[];
  removed: RemovalReport[];
  ms: number;
}

/** Something zmesh owns on this host (for leak checks and operators). */
export interface OwnedThing {
  kind: 'namespace' | 'link' | 'daemon' | 'socket' | 'pidfile' | 'nft-table' | 'file';
  name: string;
  /** "host", or the namespace the thing lives in. */
  where: string;
  networkId: string | null;
  pid?: number;
  /** False when it matches our naming but carries no ownership marker (listed, never touched). */
  marked: boolean;
}
