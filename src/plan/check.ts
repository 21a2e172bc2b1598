// An independent checker of every rule a plan must satisfy (docs/plan-format.md). Used by tests (property tests
// compare the planner against it) and before a plan is used. Returns problems; never throws on bad data.
//
// A compact plan (`zmesh-plan/2`) is checked directly, in O(n log n) per network: subnets, keys, endpoints,
// access nodes, ports and workloads. Its peer lists follow from those by the one derivation (topology/mesh.ts
// memberPeers); the peer rules themselves (full mesh, relays, direct peers, allowed-ips that never overlap and
// cover the network) are checked on a full plan (`zmesh-plan/1`, e.g. an expanded one) by checkPeers, which the
// property tests run on every expanded plan: the derivation is checked against the rules, not against itself.
import type { Blueprint } from '../blueprint/types.ts';
import type { Problem } from '../errors.ts';
import { cidrContains, cidrContainsIp, firstHost, formatCidr, formatEndpoint, formatIPv4, lastHost, parseCidr, parseIPv4, type Cidr } from '../../topology/cidr.ts';
import type { Inventory, InventoryNode } from './inventory.ts';
import { COMPACT_PLAN_FORMAT, PLAN_FORMAT, type AnyPlan, type CompactResource, type NetworkPlan, type Resource } from './types.ts';

/** Sorted by base; returns the first overlapping pair's indices in the input, or null. */
export function findOverlap(cidrs: Cidr[]): [number, number] | null {
  const idx = cidrs.map((c, i) => ({ c, i })).sort((a, b) => a.c.base - b.c.base || a.c.prefix - b.c.prefix);
  let maxEnd = -1;
  let maxAt = -1;
  for (const { c, i } of idx) {
    if (c.base <= maxEnd) return [maxAt, i];
    const end = c.base + 2 ** (32 - c.prefix) - 1;
    if (end > maxEnd) {
      maxEnd = end;
      maxAt = i;
    }
  }
  return null;
}

type Bad = (code: string, path: string, message: string) => void;

function collector(): { out: Problem[]; bad: Bad } {
  const out: Problem[] = [];
  return { out, bad: (code, path, message) => out.push({ code, path, message, hint: 're-plan from the blueprint' }) };
}

/** Every rule of docs/plan-format.md, for a plan of either form. */
export function checkPlan(plan: AnyPlan, bp: Blueprint, inv: Inventory): Problem[] {
  const { out, bad } = collector();
  const invNodes = new Map(inv.nodes.map((n) => [n.id, n]));
  if (plan.format !== PLAN_FORMAT && plan.format !== COMPACT_PLAN_FORMAT) return [{ code: 'E_PLAN_FORMAT', path: 'format', message: `not a zmesh plan: ${String((plan as { format?: unknown }).format)}`, hint: 'pass a plan written by `zmesh plan`' }];
  if (plan.tenant !== bp.tenant || plan.blueprint !== bp.name) bad('E_PLAN_BLUEPRINT', '', 'plan is for another blueprint');
  if (plan.networks.length !== bp.networks.length) bad('E_PLAN_NETWORKS', 'networks', 'plan and blueprint have different networks');
  if (plan.format === COMPACT_PLAN_FORMAT && !(Number.isInteger(plan.hiddenKeepalive) && plan.hiddenKeepalive > 0 && plan.hiddenKeepalive < 65536)) {
    bad('E_PLAN_KEEPALIVE', 'hiddenKeepalive', 'a hidden node must keep its tunnel open with a keepalive (1-65535 s)');
  }
  const nets = new Map<string, AnyPlan['networks'][number]>(plan.networks.map((n) => [n.name, n]));
  const portsOn = new Map<string, Set<number>>();
  bp.networks.forEach((spec, ni) => {
    const net = nets.get(spec.name);
    const at = `networks[${ni}]`;
    if (!net) return bad('E_PLAN_NETWORKS', at, `network ${spec.name} is missing from the plan`);
    if (plan.format === COMPACT_PLAN_FORMAT) out.push(...checkCompactNetwork(net as { resources: CompactResource[] } & Omit<NetworkPlan, 'resources'>, at, spec.nodes, invNodes));
    else out.push(...checkNetwork(net as NetworkPlan, at, spec.nodes, invNodes));
    for (const r of net.resources) {
      const n = invNodes.get(r.node);
      let used = portsOn.get(r.node);
      if (!used) portsOn.set(r.node, (used = new Set()));
      if (used.has(r.listenPort)) bad('E_PLAN_PORT', `${at}.${r.node}`, `port ${r.listenPort} used twice on ${r.node}`);
      used.add(r.listenPort);
      if (n?.reservedPorts.includes(r.listenPort)) bad('E_PLAN_PORT', `${at}.${r.node}`, `port ${r.listenPort} is reserved on ${r.node}`);
    }
  });
  checkWorkloads(plan, bad);
  return out;
}

/** Workloads: inside their node's subnet, not network / gateway / WireGuard / broadcast address, unique per network. */
function checkWorkloads(plan: AnyPlan, bad: Bad): void {
  const subnetOf = new Map<string, Cidr | null>();
  for (const n of plan.networks) for (const r of n.resources) subnetOf.set(`${n.name}\0${r.node}`, parseCidr(r.subnet));
  const seen = new Set<string>();
  for (const w of plan.workloads) {
    const ip = parseIPv4(w.ip);
    const sub = subnetOf.get(`${w.network}\0${w.node}`);
    if (!sub || ip === null || !cidrContainsIp(sub, ip) || ip <= firstHost(sub) || ip >= lastHost(sub)) {
      bad('E_PLAN_WORKLOAD', `workloads.${w.name}`, `workload ${w.name} address ${w.ip} is not a free host of its node subnet`);
    }
    if (seen.has(`${w.network}/${w.ip}`)) bad('E_PLAN_WORKLOAD', `workloads.${w.name}`, `address ${w.ip} used twice`);
    seen.add(`${w.network}/${w.ip}`);
  }
}

type AnyResource = Omit<Resource, 'peers'>;
type InvNode = Pick<InventoryNode, 'endpoints'> & Partial<Pick<InventoryNode, 'publicKey'>>;

/**
 * The rules on a network's members that hold in both forms: one resource per node, distinct keys, subnets of the
 * right size inside the range and disjoint, addresses at the subnet's first and last host, the hidden flag and
 * the sealing key from the inventory, hidden nodes and devices entering through a public member. O(n log n).
 */
function checkMembers(net: Omit<NetworkPlan, 'resources'> & { resources: AnyResource[] }, at: string, nodes: string[], invNodes: Map<string, InvNode>, bad: Bad): { range: Cidr; subnets: Cidr[] } | null {
  const range = parseCidr(net.ipRange);
  if (!range) {
    bad('E_PLAN_RANGE', at, 'bad range');
    return null;
  }
  const res = new Map(net.resources.map((r) => [r.node, r]));
  if (res.size !== net.resources.length || nodes.length !== res.size || nodes.some((n) => !res.has(n))) {
    bad('E_PLAN_MEMBERS', at, 'resources are not exactly one per network node');
  }
  // Every WireGuard key of the network is one member's: two members with one key would share a peer entry.
  const keys = [...net.resources.map((r) => r.publicKey), ...net.access.map((d) => d.publicKey)];
  if (new Set(keys).size !== keys.length) bad('E_PLAN_PEER_KEY', at, 'two members of the network have the same WireGuard key');
  const all: Cidr[] = [];
  const names: string[] = [];
  const publicMember = (id: string | null) => id !== null && res.has(id) && (invNodes.get(id)?.endpoints.length ?? 0) > 0;
  for (const r of net.resources) {
    const p = `${at}.${r.node}`;
    const c = parseCidr(r.subnet);
    if (!c || !cidrContains(range, c) || c.prefix !== net.subnetPrefix) bad('E_PLAN_SUBNET', p, `subnet ${r.subnet} is not a /${net.subnetPrefix} inside ${net.ipRange}`);
    else {
      all.push(c);
      names.push(r.node);
      if (r.gateway !== formatIPv4(firstHost(c)) || r.wgAddress !== `${formatIPv4(lastHost(c))}/32`) bad('E_PLAN_SUBNET', p, `gateway and WireGuard address must be the first and last host of ${formatCidr(c)}`);
    }
    const n = invNodes.get(r.node);
    if (r.hidden === publicMember(r.node)) bad('E_PLAN_HIDDEN', p, 'hidden flag does not match the inventory');
    if (n?.publicKey !== undefined && r.sealedTo !== n.publicKey) bad('E_PLAN_SEALED', p, "the private key is sealed to another identity than the node's");
    if (r.hidden && !publicMember(r.accessNode)) bad('E_PLAN_HIDDEN_PEER', p, 'a hidden node must enter through a public node of the network (accessNode)');
    if (!r.hidden && r.accessNode !== null) bad('E_PLAN_HIDDEN_PEER', p, 'a public node has no access node');
  }
  for (const d of net.access) {
    const c = parseCidr(d.subnet);
    if (!c || !cidrContains(range, c)) bad('E_PLAN_SUBNET', `${at}.access.${d.name}`, `device subnet ${d.subnet} outside the range`);
    else {
      all.push(c);
      names.push(d.name);
    }
    if (!publicMember(d.via)) bad('E_PLAN_MESH', `${at}.access.${d.name}`, `device ${d.name} must enter through a public node of the network`);
  }
  const ov = findOverlap(all);
  if (ov) bad('E_PLAN_OVERLAP', at, `subnets of ${names[ov[0]]} and ${names[ov[1]]} overlap`);
  return { range, subnets: all };
}

/** A compact network: the member rules plus each public node's endpoint (its first inventory endpoint, its port). */
export function checkCompactNetwork(net: Omit<NetworkPlan, 'resources'> & { resources: CompactResource[] }, at: string, nodes: string[], invNodes: Map<string, InvNode>): Problem[] {
  const { out, bad } = collector();
  if (!checkMembers(net, at, nodes, invNodes, bad)) return out;
  for (const r of net.resources) {
    const ep = invNodes.get(r.node)?.endpoints[0];
    const want = r.hidden ? null : ep ? formatEndpoint(ep, r.listenPort) : undefined;
    if (r.endpoint !== want) bad('E_PLAN_ENDPOINT', `${at}.${r.node}`, r.hidden ? 'a hidden node cannot be dialled but has an endpoint' : `endpoint ${String(r.endpoint)} is not the node's first endpoint and listen port`);
  }
  return out;
}

/** A full network: the member rules plus every peer rule. */
export function checkNetwork(net: NetworkPlan, at: string, nodes: string[], invNodes: Map<string, InvNode>): Problem[] {
  const { out, bad } = collector();
  const members = checkMembers(net, at, nodes, invNodes, bad);
  if (!members) return out;
  checkPeers(net, at, members.subnets, invNodes, bad);
  return out;
}

/** The peer rules of a full network (docs/plan-format.md): O(peer entries · log). */
function checkPeers(net: NetworkPlan, at: string, all: Cidr[], invNodes: Map<string, InvNode>, bad: Bad): void {
  const res = new Map(net.resources.map((r) => [r.node, r]));
  const publicIds = net.resources.filter((r) => (invNodes.get(r.node)?.endpoints.length ?? 0) > 0).map((r) => r.node);
  const publicSet = new Set(publicIds);
  const devices = new Map(net.access.map((d) => [d.name, d]));
  const subnetsSorted = [...all].sort((a, b) => a.base - b.base);
  for (const r of net.resources) {
    const p = `${at}.${r.node}`;
    const isPublic = publicSet.has(r.node);
    const peerNodes = new Set((r.peers ?? []).map((x) => x.node));
    if (!Array.isArray(r.peers)) {
      bad('E_PLAN_PEERS', p, 'a full plan lists the peers of every resource');
      continue;
    }
    if (peerNodes.size !== r.peers.length) bad('E_PLAN_PEERS', p, 'a peer is listed twice');
    if (peerNodes.has(r.node)) bad('E_PLAN_PEERS', p, 'a resource peers with itself');
    for (const x of r.peers) {
      const target = res.get(x.node);
      const dev = devices.get(x.node);
      const key = x.kind === 'device' ? dev?.publicKey : target?.publicKey;
      if (!key || key !== x.publicKey) bad('E_PLAN_PEER_KEY', p, `peer ${x.node} key does not match its resource`);
      if (x.kind === 'node' && target && !target.hidden) {
        const ep = invNodes.get(x.node)?.endpoints[0];
        if (!ep || x.endpoint !== formatEndpoint(ep, target.listenPort)) bad('E_PLAN_ENDPOINT', p, `peer ${x.node} endpoint is wrong`);
      } else if (x.endpoint !== null) bad('E_PLAN_ENDPOINT', p, `peer ${x.node} cannot be dialled but has an endpoint`);
    }
    if (isPublic) {
      for (const q of publicIds) if (q !== r.node && !peerNodes.has(q)) bad('E_PLAN_MESH', p, `public node misses public peer ${q}`);
      for (const x of r.peers) {
        const t = res.get(x.node);
        if (t?.hidden && t.accessNode !== r.node) bad('E_PLAN_MESH', p, `peers with hidden ${x.node} that enters elsewhere`);
        if (x.kind === 'device' && devices.get(x.node)?.via !== r.node) bad('E_PLAN_MESH', p, `peers with device ${x.node} that enters elsewhere`);
      }
      for (const t of net.resources) if (t.hidden && t.accessNode === r.node && !peerNodes.has(t.node)) bad('E_PLAN_MESH', p, `misses hidden ${t.node}`);
      for (const d of net.access) if (d.via === r.node && !peerNodes.has(d.name)) bad('E_PLAN_MESH', p, `misses device ${d.name}`);
    } else {
      const relay = r.peers.filter((x) => x.directSubnet === undefined);
      if (relay.length !== 1 || !r.accessNode || relay[0].node !== r.accessNode || !publicSet.has(r.accessNode)) {
        bad('E_PLAN_HIDDEN_PEER', p, 'a hidden node must have exactly one relayed peer: its public access node');
      } else if (!relay[0].persistentKeepalive) bad('E_PLAN_KEEPALIVE', p, 'a hidden node must keep its tunnel open with a keepalive');
      for (const t of net.resources) if (t.hidden && t.node !== r.node && !peerNodes.has(t.node)) bad('E_PLAN_MESH', p, `misses direct peer ${t.node}`);
    }
    for (const x of r.peers) {
      if (x.directSubnet === undefined) continue;
      const t = res.get(x.node);
      if (!r.hidden || !t?.hidden || x.kind !== 'node') bad('E_PLAN_DIRECT', p, `direct peer ${x.node}: only hidden nodes have direct peers, and only for other hidden nodes`);
      else if (x.directSubnet !== t.subnet) bad('E_PLAN_DIRECT', p, `direct peer ${x.node}: directSubnet is not its subnet`);
      if (x.allowedIps.length || x.endpoint !== null || x.persistentKeepalive !== null) bad('E_PLAN_DIRECT', p, `direct peer ${x.node}: the plan gives a direct peer no allowed-ips, endpoint or keepalive`);
    }
    // allowed-ips: no overlap; with own subnet, cover every subnet.
    const allowed: Cidr[] = [];
    for (const x of r.peers)
      for (const a of x.allowedIps) {
        const c = parseCidr(a);
        if (!c) bad('E_PLAN_ALLOWED', p, `bad allowed-ip ${a}`);
        else allowed.push(c);
      }
    if (findOverlap(allowed)) bad('E_PLAN_ALLOWED', p, 'peers allowed-ips overlap');
    const own = parseCidr(r.subnet);
    const cover = own ? [...allowed, own].sort((a, b) => a.base - b.base) : allowed;
    for (const s of subnetsSorted) {
      // the covering CIDR is the last one with base <= s.base
      let lo = 0;
      let hi = cover.length - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (cover[mid].base <= s.base) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (found < 0 || !cidrContains(cover[found], s)) {
        bad('E_PLAN_COVER', p, 'allowed-ips with the own subnet do not cover every subnet of the network');
        break;
      }
    }
  }
}
