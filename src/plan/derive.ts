// Peers from the compact plan: the one place a resource's peer list comes from. The CLI (`--expand`, `--part`,
// `plan part`), the etcd controller (the parts it writes) and the checks all call these; topology/mesh.ts holds
// the mesh rules themselves (memberPeers). Pure; O(n log n) per network, O(n) more per node.
import { ZmeshError } from '../errors.ts';
import { MeshError, meshIndex, memberPeerCount, memberPeers, relayPeer, type MeshIndex, type MeshMember } from '../../topology/mesh.ts';
import {
  COMPACT_PLAN_FORMAT,
  PLAN_FORMAT,
  type AnyPlan,
  type CompactNetwork,
  type CompactPlan,
  type CompactResource,
  type NetworkPlan,
  type Peer,
  type Plan,
  type Resource,
} from './types.ts';

/** The mesh members of a compact network: its resources (public ones with their endpoint) and its devices. */
export function meshMembers(net: Pick<CompactNetwork, 'resources' | 'access'>): MeshMember[] {
  const out: MeshMember[] = net.resources.map((r) => ({
    id: r.node,
    kind: 'node',
    subnet: r.subnet,
    ...(r.subnet6 !== undefined ? { subnet6: r.subnet6 } : {}),
    publicKey: r.publicKey,
    endpoint: r.hidden ? null : r.endpoint,
    via: r.hidden ? r.accessNode : null,
  }));
  for (const d of net.access) {
    out.push({ id: d.name, kind: 'device', subnet: d.subnet, ...(d.subnet6 !== undefined ? { subnet6: d.subnet6 } : {}), publicKey: d.publicKey, endpoint: null, via: d.via });
  }
  return out;
}

/** The mesh index of one compact network; a plan whose members do not form a mesh is an E_PLAN_MESH error. */
export function networkMesh(net: CompactNetwork, hiddenKeepalive: number): MeshIndex {
  try {
    return meshIndex(net.ipRange, meshMembers(net), { hiddenKeepalive, range6: net.ipv6Range ?? null });
  } catch (e) {
    if (!(e instanceof MeshError)) throw e;
    throw new ZmeshError('E_PLAN_MESH', `network ${net.name}: ${e.message} (${e.code})`, {
      path: `networks.${net.name}.${e.member}`,
      hint: 'the plan is damaged or hand-edited: re-plan from the blueprint (zmesh plan)',
      cause: e,
    });
  }
}

/** The peers of one node in one compact network (what its part carries). */
export function resourcePeers(net: CompactNetwork, node: string, hiddenKeepalive: number): Peer[] {
  return memberPeers(networkMesh(net, hiddenKeepalive), node);
}

/** A resource's fields without its peers, in the full form's field order (compact plans, etcd entries). */
export function resourceFields(r: Omit<Resource, 'peers'>): Omit<Resource, 'peers'> {
  return {
    node: r.node,
    subnet: r.subnet,
    gateway: r.gateway,
    wgAddress: r.wgAddress,
    ...(r.subnet6 !== undefined ? { subnet6: r.subnet6, gateway6: r.gateway6, wgAddress6: r.wgAddress6 } : {}),
    listenPort: r.listenPort,
    publicKey: r.publicKey,
    sealedPrivateKey: r.sealedPrivateKey,
    sealedTo: r.sealedTo,
    hidden: r.hidden,
    accessNode: r.accessNode,
  };
}

/** A compact resource with its peers, in the full form's field order. */
export function expandResource(r: Omit<Resource, 'peers'>, peers: Peer[]): Resource {
  return { ...resourceFields(r), peers };
}

export function expandNetwork(net: CompactNetwork, hiddenKeepalive: number): NetworkPlan {
  const ix = networkMesh(net, hiddenKeepalive);
  const out: NetworkPlan = {
    name: net.name,
    id: net.id,
    ipRange: net.ipRange,
    subnetPrefix: net.subnetPrefix,
    ...ipv6Fields(net),
    egress: net.egress,
    resources: net.resources.map((r) => expandResource(r, memberPeers(ix, r.node))),
    access: net.access,
  };
  if (net.policy) out.policy = true;
  return out;
}

/** The full form (`zmesh-plan/1`) of a plan: every resource with its derived peers. A full plan is returned as is. */
export function expandPlan(plan: AnyPlan): Plan {
  if (plan.format === PLAN_FORMAT) return plan;
  return {
    format: PLAN_FORMAT,
    tenant: plan.tenant,
    blueprint: plan.blueprint,
    version: plan.version,
    generation: plan.generation,
    networks: plan.networks.map((n) => expandNetwork(n, plan.hiddenKeepalive)),
    workloads: plan.workloads,
  };
}

/**
 * The compact form of a full plan. A resource's endpoint is read from the peer entries other members hold for it
 * (or `endpointOf`, e.g. from the inventory, when no member peers with it). Used to re-plan, check and diff plans
 * written before the compact form; the planner itself never goes through it.
 */
export function compactPlan(plan: AnyPlan, endpointOf?: (node: string, listenPort: number) => string | null, hiddenKeepalive = 25): CompactPlan {
  if (plan.format === COMPACT_PLAN_FORMAT) return plan;
  let keepalive: number | null = null;
  const networks = plan.networks.map((n): CompactNetwork => {
    const seen = new Map<string, string | null>();
    for (const r of n.resources) {
      for (const p of r.peers ?? []) {
        if (p.endpoint !== null && p.directSubnet === undefined && !seen.has(p.node)) seen.set(p.node, p.endpoint);
        if (r.hidden && p.node === r.accessNode && typeof p.persistentKeepalive === 'number') keepalive ??= p.persistentKeepalive;
      }
    }
    const resources = n.resources.map((r): CompactResource => {
      const { peers: _peers, ...rest } = r;
      const endpoint = r.hidden ? null : (seen.get(r.node) ?? endpointOf?.(r.node, r.listenPort) ?? null);
      return { ...rest, endpoint };
    });
    return { ...withoutResources(n), resources, access: n.access };
  });
  return {
    format: COMPACT_PLAN_FORMAT,
    tenant: plan.tenant,
    blueprint: plan.blueprint,
    version: plan.version,
    generation: plan.generation,
    hiddenKeepalive: keepalive ?? hiddenKeepalive,
    networks,
    workloads: plan.workloads,
  };
}

function withoutResources(n: NetworkPlan): Omit<CompactNetwork, 'resources' | 'access'> {
  return { name: n.name, id: n.id, ipRange: n.ipRange, subnetPrefix: n.subnetPrefix, ...ipv6Fields(n), egress: n.egress, ...(n.policy ? { policy: true as const } : {}) };
}

/** A network's IPv6 fields (ipv6Range, subnet6Prefix) when it is dual-stack, in the plan's field order; else none. */
export function ipv6Fields(n: Pick<NetworkPlan, 'ipv6Range' | 'subnet6Prefix'>): Pick<NetworkPlan, 'ipv6Range' | 'subnet6Prefix'> {
  return n.ipv6Range !== undefined ? { ipv6Range: n.ipv6Range, subnet6Prefix: n.subnet6Prefix } : {};
}

/**
 * A per-network peer lookup over a plan of either form: derived (compact) or as stored (full). `peersOf(net,
 * node)` is O(n) after an O(n log n) index built once per network.
 */
export function peerLookup(plan: AnyPlan): (network: string, node: string, directs?: boolean) => Peer[] | null {
  if (plan.format === PLAN_FORMAT) {
    const byNet = new Map(plan.networks.map((n) => [n.name, new Map(n.resources.map((r) => [r.node, r]))]));
    return (network, node, directs = true) => {
      const r = byNet.get(network)?.get(node);
      if (!r) return null;
      return directs || !r.hidden ? r.peers : r.peers.filter((p) => p.directSubnet === undefined);
    };
  }
  const nets = new Map(plan.networks.map((n) => [n.name, n]));
  const index = new Map<string, MeshIndex>();
  return (network, node, directs = true) => {
    const n = nets.get(network);
    if (!n) return null;
    let ix = index.get(network);
    if (!ix) index.set(network, (ix = networkMesh(n, plan.hiddenKeepalive)));
    const m = ix.byId.get(node);
    if (m?.kind !== 'node') return null;
    // Without direct peers (they come from the network's directory on etcd): a hidden node's relay alone.
    if (!directs && m.via !== null) return [relayPeer(ix, node)!];
    return memberPeers(ix, node);
  };
}

/**
 * Each network's direct-peer entries (its hidden members, as every other hidden member sees them), serialized:
 * networkId → node → JSON. What the etcd controller writes once per network (src/control/directory.ts).
 */
export function directoryEntries(plan: CompactPlan): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const n of plan.networks) {
    if (!n.resources.some((r) => r.hidden)) continue;
    const m = new Map<string, string>();
    for (const p of networkMesh(n, plan.hiddenKeepalive).directEntries) m.set(p.node, JSON.stringify(p));
    if (m.size) out.set(n.id, m);
  }
  return out;
}

/** How many peers each node has in each network, without building the lists: (network, node) → count. */
export function peerCounter(plan: AnyPlan): (network: string, node: string) => number {
  if (plan.format === PLAN_FORMAT) {
    const lookup = peerLookup(plan);
    return (network, node) => lookup(network, node)?.length ?? 0;
  }
  const index = new Map(plan.networks.map((n) => [n.name, networkMesh(n, plan.hiddenKeepalive)]));
  return (network, node) => {
    const ix = index.get(network);
    return ix ? memberPeerCount(ix, node) : 0;
  };
}
