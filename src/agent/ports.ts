// What the agent needs from the data plane. netns/ implements it (see src/agent/netns-adapter.ts); tests may
// pass a fake. Views are plain JSON, shown as they are by the admin socket (never holding private keys).
import type { Resource } from '../plan/types.ts';
import type { CompiledPolicy } from '../plan/policy.ts';
import type { PeerCounters } from './paths.ts';
import type { FirewallCounters, PolicyCounters } from '../../netns/parse.ts';
import type { NetworkNames } from '../plan/names.ts';

export interface DesiredNetwork {
  tenant: string;
  blueprint: string;
  networkId: string;
  networkName: string;
  ipRange: string;
  /** Dual-stack networks: the network's IPv6 range (the part's ipv6Range); absent: IPv4-only. */
  ipRange6?: string;
  egress: boolean;
  /** Subnets of the access devices this node serves that may use its egress (from the signed blueprint). */
  egressDevices?: string[];
  /** The signed blueprint's `egressIpv6` (docs/netns.md#ipv6-egress); absent: false. */
  egress6?: boolean;
  /** This node's workloads' addresses on the network (the part's workloads): the only hosts on its bridge. */
  bridgeHosts?: string[];
  resource: Resource;
  /** The network policy this node enforces (compiled from the signed blueprint and the part's members). */
  policy?: CompiledPolicy;
  /** The names the network's resolver serves on this node (docs/dns.md; checked against the signed blueprint). */
  names?: NetworkNames;
}

/** A network's resolver on this node (docs/dns.md). */
export interface ResolverState {
  pid: number;
  alive: boolean;
}

export interface ResourceReport {
  networkId: string;
  ok: boolean;
  /** Human descriptions of each change made ("added peer …", "created namespace n-…"). */
  changes: string[];
  errors: { message: string; argv?: string[]; stderr?: string }[];
}

export interface ActualPeer {
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the latest handshake, 0 when none. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number | null;
}

export interface ActualNetwork {
  networkId: string;
  namespace: string;
  namespaceExists: boolean;
  interfaces: { name: string; kind: string; up: boolean; mtu: number; addresses: string[] }[];
  routes: { dst: string; dev: string }[];
  wireguard: { interface: string; publicKey: string; listenPort: number; peers: ActualPeer[] } | null;
  /** The zmesh nft tables and their rule counts (`tenant:<table>:rules`, `host:<table>:rules`), when readable. */
  firewall: Record<string, number>;
  /**
   * The tenant table's packet counters: per counting rule (spoofing drops, tunnel-egress, drops from the outside,
   * the policy's rules and default) and summed into dropped and accepted, since the table was last written;
   * absent when the driver does not read them.
   */
  firewallCounters?: FirewallCounters;
  /**
   * The wireguard-go daemon (userspace backend): its PID and its UDP sockets on the listen port with their
   * datagram drop counter (receive buffer full, since the socket opened); absent with kernel WireGuard.
   */
  daemon?: { pid: number; alive: boolean; udpSockets: number; udpDrops: number } | null;
  /**
   * The network policy's rule counters in the tenant table (policy-in and policy-fwd summed, since the table was
   * last written); absent when the network has no policy here or the driver does not read them.
   */
  policy?: PolicyCounters;
}

export interface DriverPort {
  /** Converge the host to exactly these networks (and remove other zmesh networks). `first`: network ids to read
   *  and apply before the others are even read (a submission's own networks: what it changed goes in force first). */
  apply(desired: DesiredNetwork[], opts?: { first?: string[]; onlyFirst?: boolean }): Promise<ResourceReport[]>;
  actual(networkId: string): Promise<ActualNetwork | null>;
  /** Ping an address from inside a tenant namespace. */
  ping(networkId: string, address: string, timeoutMs: number): Promise<{ ok: boolean; rttMs: number | null }>;
  /** Expected MTU of tenant interfaces. */
  tenantMtu(): Promise<number>;
  /** Stop background work (supervision); leaves the data plane running. */
  close(): Promise<void>;
  /** Commands run so far (cumulative; reads and mutating), when the driver counts them. */
  commandCounts?(): { reads: number; mutating: number };
  /** Runs a reconcile with its read-only commands shared between the data plane and the runtime (Runner.shareReads). */
  shareReads?<T>(fn: () => Promise<T>): Promise<T>;
  /** The WireGuard backend, the wireguard-go build and the tuning in force, once known. */
  dataplane?(): DataplaneInfo | null;
  /** A network's WireGuard peers' counters alone (cheap; direct paths read them every tick). */
  peerCounters?(networkId: string): Promise<PeerCounters[] | null>;
  /** Brings only a network's peers to `peers` (one `wg set` or none); the change lines. `reset`: public keys whose
   *  session is dropped (removed and added again in the same `wg set`). */
  setPeers?(networkId: string, peers: Resource['peers'], reset?: readonly string[]): Promise<string[]>;
  /** Starts a WireGuard handshake with each of `keys` (peers on the network's device); the change lines. */
  startHandshakes?(networkId: string, keys: readonly string[]): Promise<string[]>;
  /** The host's underlay addresses (on the devices of its default routes). */
  underlayAddresses?(): Promise<string[]>;
  /** The network's resolver (dnsmasq; docs/dns.md), or null when none runs. */
  resolver?(networkId: string): ResolverState | null;
  /** Asks the network's resolver at `server` (a gateway address) for `name`, from inside the tenant namespace. */
  lookupName?(networkId: string, name: string, server: string, type?: 'A' | 'AAAA'): Promise<{ answered: boolean; nxdomain: boolean; addresses: string[]; ms: number }>;
}

/** What carries this node's tunnels (GET /v1/status → dataplane). */
export interface DataplaneInfo {
  backend: 'kernel' | 'userspace';
  /** The wireguard-go build (userspace): version and whether it batches its I/O. */
  wireguardGo: { version: string | null; batched: boolean } | null;
  /** The tuning in force (userspace): socket buffer bytes, the daemon's session, its extra environment. */
  tuning: { socketBufferBytes: number; daemonOwnSession: boolean; daemonEnv: Record<string, string> } | null;
  /** Userspace: live daemons whose wireguard-go binary was replaced on disk since they started (they run the old build). */
  staleDaemons?: { ifname: string; pid: number }[];
}
