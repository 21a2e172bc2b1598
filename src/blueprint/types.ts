// What a tenant asks for. These are the types after parsing and validation (defaults filled in).

export interface AccessSpec {
  /** DNS label. */
  name: string;
  /** WireGuard public key of the device; absent → the planner generates a key pair for it. */
  publicKey?: string;
  /**
   * Whether the device may reach the outside through its access node (needs the network's egress). Present only
   * when true (absent: no egress), so blueprints signed before the field existed keep their normal form.
   */
  egress?: true;
  /** Policy groups (docs/policy.md); present only when non-empty. */
  groups?: string[];
}

/** "workload:NAME" | "device:NAME" | "node:NAME" | "group:NAME" | "cidr:A.B.C.D/N" | "any". */
export type PolicySelector = string;
/** "tcp/N" | "tcp/N-M" | "udp/N" | "udp/N-M" | "icmp" | "any". */
export type PolicyPort = string;

export interface PolicyRule {
  from: PolicySelector[];
  to: PolicySelector[];
  ports: PolicyPort[];
}

/** Who may talk to whom inside a network, enforced where the packet arrives (docs/policy.md). */
export interface NetworkPolicy {
  default: 'allow' | 'deny';
  rules: PolicyRule[];
}

export interface NetworkSpec {
  name: string;
  /** IPv4 CIDR, /8 to /22, no host bits. */
  ipRange: string;
  /** Prefix length of each node's subnet (default 24); longer than the range's, at most 29. */
  subnetPrefix: number;
  /** Node ids this network spans. */
  nodes: string[];
  access: AccessSpec[];
  /**
   * The network's IPv6 range: a /48 to /56 inside fc00::/7. Absent: a ULA /48 derived from tenant and network
   * (docs/blueprint-format.md#ipv6). Present only when given.
   */
  ipv6Range?: string;
  /** Present (false) only to make the network IPv4-only; absent: dual-stack. */
  ipv6?: false;
  /** Whether workloads may reach the outside through the node (NAT). Default false. */
  egress: boolean;
  /**
   * IPv6 egress too (NAT66, on nodes with an IPv6 default route that allow it; docs/netns.md#ipv6-egress). Needs
   * `egress` and a dual-stack network. Present only when true, so blueprints signed before it keep their form.
   */
  egressIpv6?: true;
  /** Absent: everything inside the network may reach everything (and blueprints without it keep their form). */
  policy?: NetworkPolicy;
}

export interface WorkloadVolume {
  name: string;
  /** Absolute path inside the container. */
  mount: string;
}

export interface WorkloadSpec {
  name: string;
  node: string;
  image: string;
  command: string[];
  network: { name: string; ip?: string; ip6?: string };
  /** CPU cores (may be fractional), > 0. */
  cpu: number;
  /** Memory limit in bytes (the YAML may say "256Mi", "1G", ...). */
  memory: number;
  /**
   * Disk limit in bytes of the container's writable layer (image files included; volumes have their own size).
   * Absent: the node applies DEFAULT_DISK (1Gi). Writing past it fails with EDQUOT/ENOSPC.
   */
  disk?: number;
  volumes: WorkloadVolume[];
  /** Policy groups (docs/policy.md); present only when non-empty. */
  groups?: string[];
}

export interface VolumeSpec {
  name: string;
  node: string;
  /** Size in bytes (the YAML may say "1Gi", ...). */
  size: number;
}

export interface Blueprint {
  tenant: string;
  name: string;
  /** Integer ≥ 1; only grows. */
  version: number;
  networks: NetworkSpec[];
  workloads: WorkloadSpec[];
  volumes: VolumeSpec[];
}

/** A signed envelope as `zmesh sign` prints it. */
export interface SignedBlueprint {
  format: 'zmesh-signed-blueprint/1';
  /** The blueprint, normalized; the signature covers its RFC 8785 canonical form. */
  blueprint: Blueprint;
  signature: {
    alg: 'ed25519';
    /** Tenant ed25519 public key, base64. */
    publicKey: string;
    /** base64 of the 64-byte signature. */
    signature: string;
  };
}
