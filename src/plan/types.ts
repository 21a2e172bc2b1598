// The plan: what every node must look like to give a blueprint. Plain, sorted, JSON-serializable data.
// Documented in docs/plan-format.md. Two forms:
//  - the compact plan (`zmesh-plan/2`, CompactPlan): each resource once, no peer lists. What `zmesh plan` writes
//    and the etcd controller stores; peers are derived by one pure function (src/plan/derive.ts).
//  - the full plan (`zmesh-plan/1`, Plan): every resource with its peers. What `zmesh plan --expand` prints and
//    what plans written before the compact form hold; still read (as `--previous`, by `plan part`), never written
//    unless asked for.
// One network's shapes (Peer, Resource, AccessDevice, NetworkPlan) live beside the peer mesh that makes them, in
// topology/types.ts, so that topology/ imports nothing from here; they are re-exported as part of the plan.
import type { AccessDevice, NetworkPlan, Peer, Resource } from '../../topology/types.ts';

export type { AccessDevice, NetworkPlan, Peer, Resource };

/** The full (expanded) form: every resource with its peer list. */
export const PLAN_FORMAT = 'zmesh-plan/1';
/** The compact form: resources without peers (they are derived). */
export const COMPACT_PLAN_FORMAT = 'zmesh-plan/2';

export interface WorkloadPlan {
  name: string;
  node: string;
  network: string;
  ip: string;
  /** Dual-stack networks: the workload's IPv6 address (its IPv4 host index in the node's subnet6, or the blueprint's ip6). */
  ip6?: string;
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
