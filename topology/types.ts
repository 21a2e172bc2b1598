// The shapes of one network's plan that the peer mesh (topology/mesh.ts) makes and the graph export
// (topology/graph.ts) reads: a peer, a node's resource, an access device, the network. Part of the plan
// (src/plan/types.ts re-exports them; docs/plan-format.md documents them), kept here so that topology/ imports
// nothing from src/plan.

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
  /** With directSubnet on a dual-stack network: that node's IPv6 subnet, moved together with directSubnet. */
  directSubnet6?: string;
}

export interface Resource {
  node: string;
  /** This node's subnet of the network range, e.g. "10.1.3.0/24". */
  subnet: string;
  /** Workloads' gateway on the node's bridge: the subnet's first host, e.g. "10.1.3.1". */
  gateway: string;
  /** Address of the WireGuard interface: the subnet's last host as /32, e.g. "10.1.3.254/32". */
  wgAddress: string;
  /**
   * Dual-stack networks only (absent when the network has `ipv6: false`, and in plans written before IPv6):
   * this node's IPv6 subnet, the same slot index as `subnet` in the network's ipv6Range (docs/plan-format.md#ipv6),
   * e.g. "fd12:3456:789a:3::/64".
   */
  subnet6?: string;
  /** Workloads' IPv6 gateway: subnet6's host 1, e.g. "fd12:3456:789a:3::1". */
  gateway6?: string;
  /** The WireGuard interface's IPv6 address: subnet6's host with wgAddress's host index, as /128. */
  wgAddress6?: string;
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
  /** Dual-stack only: the device's IPv6 subnet (same slot index as subnet) and its address (host 1, /128). */
  subnet6?: string;
  address6?: string;
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
  /**
   * Dual-stack only: the network's IPv6 range (a ULA /48 derived from tenant and network, or the blueprint's
   * ipv6Range, /48 to /56 inside fc00::/7) and the prefix of each node's IPv6 subnet (64, or longer when the
   * IPv4 slots outnumber the /64s). Absent: the network is IPv4-only.
   */
  ipv6Range?: string;
  subnet6Prefix?: number;
  egress: boolean;
  /** Present (true) when the blueprint's network has a policy: node parts then carry the network's members. */
  policy?: true;
  resources: Resource[];
  access: AccessDevice[];
}
