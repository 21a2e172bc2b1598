// What the runtime is asked for and what it reports. Plain JSON-serializable data.

/** A workload as the runtime runs it: the blueprint's spec joined with the plan's address on this node. */
export interface DesiredWorkload {
  tenant: string;
  blueprint: string;
  name: string;
  node: string;
  image: string;
  command: string[];
  /** CPU cores (may be fractional). */
  cpu: number;
  /** Memory limit in bytes. */
  memory: number;
  /** Disk limit in bytes of the container's writable layer (image files included). */
  disk: number;
  network: {
    /** Network id (10 characters): the tenant namespace is n-<id>, its bridge b-<id>. */
    id: string;
    name: string;
    /** The planned address, e.g. "10.1.3.2". */
    ip: string;
    /** Prefix length of this node's subnet, e.g. 24. */
    prefix: number;
    /** The subnet's gateway on the node bridge (its first host). */
    gateway: string;
    /** Dual-stack networks: the workload's IPv6 address, the prefix of the node's subnet6 and its gateway6. */
    ip6?: string;
    prefix6?: number;
    gateway6?: string;
  };
  /** Volumes of the same blueprint mounted into the container. */
  mounts: { volume: string; path: string }[];
}

export interface DesiredVolume {
  tenant: string;
  blueprint: string;
  name: string;
  node: string;
  /** Bytes. */
  size: number;
}

/** Why a container stopped, from the engine's inspect. */
export interface ExitInfo {
  exitCode: number;
  oomKilled: boolean;
  /** Engine error text, when any. */
  error: string;
  finishedAt: string;
}

/**
 * The stored result of attaching a workload (CNI's ADD result): what was created, read back from the live
 * state. CHECK compares it with the live state; DEL removes `hostIf` (its peer goes with it).
 */
export interface Attachment {
  workload: string;
  containerId: string;
  pid: number;
  networkId: string;
  /** The tenant namespace (a path to its nsfs file). */
  netns: string;
  bridge: string;
  /** The veth end in the tenant namespace, enslaved to the bridge. */
  hostIf: string;
  hostIfIndex: number;
  /** The veth end in the container ("eth0"). */
  containerIf: string;
  containerIfIndex: number;
  /** "10.1.3.2/24". */
  address: string;
  gateway: string;
  /** Dual-stack: "fd12:3456:789a:3::2/64" and the IPv6 gateway. */
  address6?: string;
  gateway6?: string;
  mtu: number;
  mac: string;
  at: string;
}

export interface RuntimeEvent {
  level: 'info' | 'warn' | 'error';
  /** workload.created, workload.exited, workload.restarted, workload.removed, volume.created, ... */
  kind: string;
  /** "workload acme/shop/web", "volume acme/shop/data", "pool". */
  subject: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface RuntimeReport {
  ok: boolean;
  /** Number of changes made (creations, restarts, removals, re-attachments, resizes). */
  changes: number;
  events: RuntimeEvent[];
  errors: { subject: string; code: string; message: string }[];
  /** Whether the container engine answered (false: unreachable or not needed and not asked). */
  engine: boolean;
  ms: number;
}

export type WorkloadStateName = 'running' | 'exited' | 'created' | 'restarting' | 'missing' | 'unknown';

export interface WorkloadView {
  tenant: string;
  blueprint: string;
  name: string;
  node: string;
  image: string;
  state: WorkloadStateName;
  /** Attached with the planned address ("10.1.3.2/24"), or null. */
  address: string | null;
  plannedAddress: string;
  network: string;
  networkId: string;
  containerId: string | null;
  restarts: number;
  startedAt: string | null;
  uptimeSec: number | null;
  lastExit: ExitInfo | null;
  cpu: number;
  memory: number;
  disk: number;
}

export interface VolumeView {
  tenant: string;
  blueprint: string;
  name: string;
  node: string;
  /** Bytes. */
  size: number;
  /** Bytes referenced (btrfs qgroup), or null when unknown. */
  used: number | null;
  /** Limit actually set, bytes, or null. */
  limit: number | null;
  state: 'ready' | 'missing' | 'creating' | 'deleting' | 'orphan';
  path: string;
  /** Workloads that mount it. */
  mountedBy: string[];
}
