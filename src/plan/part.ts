// A node's part of a plan: what one node receives. Holds only that node's resources (with sealed keys),
// every subnet of each network (for the node's own consistency checks) and the workloads placed on it.
// Access devices' configs (which may hold generated private keys) are never included. Cut from a plan of either
// form: the peers come from the one derivation (src/plan/derive.ts) for a compact plan, as stored for a full one.
import type { NetworkSpec } from '../blueprint/types.ts';
import { expandResource, peerLookup } from './derive.ts';
import { networkNames, type NetworkNames } from './names.ts';
import type { AnyPlan, NetworkPlan, Plan, Resource, WorkloadPlan } from './types.ts';

export const NODE_PART_FORMAT = 'zmesh-node-plan/1';

export interface NodeNetworkPart {
  name: string;
  id: string;
  ipRange: string;
  subnetPrefix: number;
  /** Dual-stack networks only: the network's IPv6 range and the prefix of its nodes' IPv6 subnets. */
  ipv6Range?: string;
  subnet6Prefix?: number;
  egress: boolean;
  resource: Resource;
  /** Every subnet of the network (nodes and devices), sorted. */
  subnets: string[];
  /**
   * Present when the network has a policy (docs/policy.md): the addresses its selectors name. Nodes: their
   * gateway and WireGuard addresses (/32); workloads and devices: their address (/32).
   */
  members?: PolicyMembers;
  /**
   * The names the network's resolver serves on this node (docs/dns.md): every workload, access device and node of
   * the network with its addresses. Absent in parts written before names: the node serves its own only.
   */
  names?: NetworkNames;
}

export interface PolicyMembers {
  nodes: Record<string, string[]>;
  workloads: Record<string, string>;
  devices: Record<string, string>;
  /** Dual-stack networks only: the same members' IPv6 addresses (/128s): gateway6 and wgAddress6, ip6, address6. */
  nodes6?: Record<string, string[]>;
  workloads6?: Record<string, string>;
  devices6?: Record<string, string>;
}

/** The addresses a network's policy selectors name, from the plan (in both families on a dual-stack network). */
export function policyMembers(
  plan: Pick<Plan, 'workloads'>,
  n: Pick<NetworkPlan, 'name' | 'access' | 'ipv6Range'> & { resources: Pick<Resource, 'node' | 'gateway' | 'wgAddress' | 'gateway6' | 'wgAddress6'>[] },
): PolicyMembers {
  const nodes: Record<string, string[]> = {};
  for (const r of n.resources) nodes[r.node] = [`${r.gateway}/32`, r.wgAddress];
  const workloads: Record<string, string> = {};
  for (const w of plan.workloads) if (w.network === n.name) workloads[w.name] = `${w.ip}/32`;
  const devices: Record<string, string> = {};
  for (const d of n.access) devices[d.name] = d.address.includes('/') ? d.address : `${d.address}/32`;
  if (n.ipv6Range === undefined) return { nodes, workloads, devices };
  const host6 = (a: string) => (a.includes('/') ? a : `${a}/128`);
  const nodes6: Record<string, string[]> = {};
  for (const r of n.resources) if (r.gateway6 !== undefined && r.wgAddress6 !== undefined) nodes6[r.node] = [host6(r.gateway6), host6(r.wgAddress6)];
  const workloads6: Record<string, string> = {};
  for (const w of plan.workloads) if (w.network === n.name && w.ip6 !== undefined) workloads6[w.name] = host6(w.ip6);
  const devices6: Record<string, string> = {};
  for (const d of n.access) if (d.address6 !== undefined) devices6[d.name] = host6(d.address6);
  return { nodes, workloads, devices, nodes6, workloads6, devices6 };
}

export interface NodePlanPart {
  format: typeof NODE_PART_FORMAT;
  tenant: string;
  blueprint: string;
  version: number;
  generation: number;
  node: string;
  networks: NodeNetworkPart[];
  workloads: WorkloadPlan[];
}

/**
 * The sources a node lets out through its egress from the tunnel: the subnets (allowed IPs) of the access
 * devices it serves (its peers of kind "device") whose entry in the signed blueprint has `egress: true`, and only
 * on a network with egress. Read from the blueprint, not the plan, so no plan can grant what the tenant did not
 * sign. Sorted, unique.
 */
export function deviceEgressSources(spec: Pick<NetworkSpec, 'egress' | 'egressIpv6' | 'access'>, resource: Pick<Resource, 'peers'>): string[] {
  if (!spec.egress) return [];
  const allowed = new Set(spec.access.filter((a) => a.egress === true).map((a) => a.name));
  const out = new Set<string>();
  // A device's IPv6 subnet leaves only with the network's IPv6 egress (docs/netns.md#ipv6-egress).
  const six = spec.egressIpv6 === true;
  for (const p of resource.peers) if (p.kind === 'device' && allowed.has(p.node)) for (const c of p.allowedIps) if (six || !c.includes(':')) out.add(c);
  return [...out].sort();
}

/** The nodes a plan has a resource for, sorted. */
export function planNodes(plan: AnyPlan): string[] {
  const s = new Set<string>();
  for (const n of plan.networks) for (const r of n.resources) s.add(r.node);
  return [...s].sort();
}

/** One node's part, O(n) per network it is in (plus an O(n log n) index when `peersOf` is not given). */
export function nodePart(plan: AnyPlan, node: string, peersOf = peerLookup(plan)): NodePlanPart {
  const networks: NodeNetworkPart[] = [];
  for (const n of plan.networks) {
    const found = (n.resources as Omit<Resource, 'peers'>[]).find((r) => r.node === node);
    if (!found) continue;
    networks.push({
      name: n.name,
      id: n.id,
      ipRange: n.ipRange,
      subnetPrefix: n.subnetPrefix,
      ...(n.ipv6Range !== undefined ? { ipv6Range: n.ipv6Range, subnet6Prefix: n.subnet6Prefix } : {}),
      egress: n.egress,
      resource: expandResource(found, peersOf(n.name, node) ?? []),
      subnets: [...n.resources.map((r) => r.subnet), ...n.access.map((d) => d.subnet)].sort(),
      ...(n.policy ? { members: policyMembers(plan, n) } : {}),
      names: networkNames(plan, n),
    });
  }
  return {
    format: NODE_PART_FORMAT,
    tenant: plan.tenant,
    blueprint: plan.blueprint,
    version: plan.version,
    generation: plan.generation,
    node,
    networks,
    workloads: plan.workloads.filter((w) => w.node === node),
  };
}
