// The plan: what every node must look like to give a blueprint. Plain, sorted, JSON-serializable data.
// Documented in docs/plan-format.md. Two forms:
//  - the compact plan (`zmesh-plan/2`, CompactPlan): each resource once, no peer lists. What `zmesh plan` writes
//    and the etcd controller stores; peers are derived by one pure function (src/plan/derive.ts).
//  - the full plan (`zmesh-plan/1`, Plan): every resource with its peers. What `zmesh plan --expand` prints and
//    what plans written before the compact form hold; still read (as `--previous`, by `plan part`), never written
//    unless asked for.

/** The full (expanded) form: every resource with its peer list. */
export const PLAN_FORMAT = 'zmesh-plan/1';
/** The compact form: resources without peers (they are derived). */
export const COMPACT_PLAN_FORMAT = 'zmesh-plan/2';

export interface Peer {
  /** Node id of the peer, or the access device's name. */
  node: string;
  /** "node" or "device". */
  kind: 'node' | 'device';
  /** WireGuard public key (base64). */
  publicKey: string;
  /** "ip:port" ("[v6]:port"), or null when the peer cannot be dialled (hidden node, device). */
  endpoint: string | null;
  /** CIDRs routed to this peer; never overlapping within one resource. */
  allowedIps: string[];
  /** Seconds, or null. */
  persistentKeepalive: number | null;
  /**
   * Only on a hidden node's peer for another hidden node of the network (a *direct peer*): that node's subnet.
   * The plan gives a direct peer no allowed-ips and no endpoint; the node moves this subnet onto it at run time
   * once a handshake proves a direct path (topology/paths.ts), and back to its access node when the path goes stale.
   */
  directSubnet?: string;
}

export interface Resource {
  node: string;
  /** This node's subnet of the network range, e.g. "10.1.3.0/24". */
  subnet: string;
  /** Workloads' gateway on the node's bridge: the subnet's first host, e.g. "10.1.3.1". */
  gateway: string;
  /** Address of the WireGuard interface: the subnet's last host as /32, e.g. "10.1.3.254/32". */
  wgAddress: string;
  listenPort: number;
  /** WireGuard public key of this resource. */
  publicKey: string;
  /** The WireGuard private key sealed to the node identity key (see src/crypto/seal.ts). */
  sealedPrivateKey: string;
  /** The node identity public key the private key is sealed to. */
  sealedTo: string;
  hidden: boolean;
  /** For a hidden node: the public node it enters the mesh through; otherwise null. */
  accessNode: string | null;
  peers: Peer[];
}

export interface AccessDevice {
  name: string;
  /** The device's subnet of the range (it takes one slot) and its address (first host, /32). */
  subnet: string;
  address: string;
  /** The public node the device dials. */
  via: string;
  publicKey: string;
  /** True when the planner generated the key pair (the private key is only in wgQuickConfig). */
  generatedKey: boolean;
  /**
   * Present (true) when the blueprint gives the device egress through its access node. The node takes this from
   * the signed blueprint, not from the plan: a plan cannot grant egress the tenant did not sign.
   */
  egress?: true;
  /** wg-quick config for the device; holds a private key only when generatedKey. Never sent to nodes. */
  wgQuickConfig?: string;
}

export interface NetworkPlan {
  name: string;
  /** Short deterministic id (10 chars, [a-z0-9]) from tenant, blueprint and network name: n-<id>, w-<id>. */
  id: string;
  ipRange: string;
  subnetPrefix: number;
  egress: boolean;
  /** Present (true) when the blueprint's network has a policy: node parts then carry the network's members. */
  policy?: true;
  resources: Resource[];
  access: AccessDevice[];
}

export interface WorkloadPlan {
  name: string;
  node: string;
  network: string;
  ip: string;
}

export interface Plan {
  format: typeof PLAN_FORMAT;
  tenant: string;
  blueprint: string;
  version: number;
  generation: number;
  networks: NetworkPlan[];
  workloads: WorkloadPlan[];
}

/** A resource as the compact plan holds it: no peers, but the endpoint other nodes dial (null when hidden). */
export type CompactResource = Omit<Resource, 'peers'> & {
  /** "ip:port" ("[v6]:port") of a public node: its first inventory endpoint and its listen port; null when hidden. */
  endpoint: string | null;
};

export interface CompactNetwork extends Omit<NetworkPlan, 'resources'> {
  resources: CompactResource[];
}

export interface CompactPlan {
  format: typeof COMPACT_PLAN_FORMAT;
  tenant: string;
  blueprint: string;
  version: number;
  generation: number;
  /** Keepalive (seconds) a hidden node sends its access node: the one knob of the peer derivation. */
  hiddenKeepalive: number;
  networks: CompactNetwork[];
  workloads: WorkloadPlan[];
}

/** A plan in either form. */
export type AnyPlan = Plan | CompactPlan;

export function isCompactPlan(p: AnyPlan): p is CompactPlan {
  return p.format === COMPACT_PLAN_FORMAT;
}

/** The context string bound into a sealed private key: "<network id>/<node id>". */
export function sealContext(networkId: string, node: string): string {
  return `${networkId}/${node}`;
}
