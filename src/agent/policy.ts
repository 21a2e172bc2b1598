// The policy a node enforces for one network: compiled from the signed blueprint's policy and groups and the
// plan part's members (docs/policy.md). Pure.
import type { Blueprint, NetworkSpec } from '../blueprint/types.ts';
import type { NodeNetworkPart } from '../plan/part.ts';
import { compilePolicy, type CompiledPolicy, type PolicyGroups } from '../plan/policy.ts';
import type { WorkloadPlan } from '../plan/types.ts';

/** group → members of the network with it, from the blueprint. */
export function policyGroups(bp: Blueprint, spec: NetworkSpec): PolicyGroups {
  const workloads: Record<string, string[]> = {};
  const devices: Record<string, string[]> = {};
  for (const w of bp.workloads) if (w.network.name === spec.name) for (const g of w.groups ?? []) (workloads[g] ??= []).push(w.name);
  for (const a of spec.access) for (const g of a.groups ?? []) (devices[g] ??= []).push(a.name);
  return { workloads, devices };
}

export function nodePolicy(bp: Blueprint, spec: NetworkSpec, n: NodeNetworkPart, placed: WorkloadPlan[]): CompiledPolicy {
  const r = n.resource;
  // Dual-stack: the node's own IPv6 addresses are destinations it guards too, and the policy covers both families.
  const dual = n.ipv6Range !== undefined && r.gateway6 !== undefined && r.wgAddress6 !== undefined;
  return compilePolicy(
    spec.policy!,
    n.ipRange,
    n.members!,
    policyGroups(bp, spec),
    {
      node: [`${r.gateway}/32`, r.wgAddress, ...(dual ? [`${r.gateway6}/128`, r.wgAddress6!] : [])],
      workloads: placed.filter((w) => w.network === n.name).map((w) => w.name),
      devices: r.peers.filter((p) => p.kind === 'device').map((p) => p.node),
    },
    dual ? n.ipv6Range : undefined,
  );
}
