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
import { cidr6Contains, cidr6ContainsIp, findOverlap6, formatCidr6, formatIPv6, nthSubnet6, parseCidr6, parseIPv6, ULA, type Cidr6 } from '../../topology/cidr6.ts';
import type { Inventory, InventoryNode } from './inventory.ts';
import { subnet6PrefixOf, ulaRange } from './planner.ts';
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
    const spec6 = spec.ipv6Range !== undefined ? parseCidr6(spec.ipv6Range) : null;
    const want6 = spec.ipv6 === false ? undefined : spec6 ? formatCidr6(spec6) : (spec.ipv6Range ?? ulaRange(bp.tenant, bp.name, spec.name));
    if (net.ipv6Range !== want6) {
      bad('E_PLAN_IPV6', `${at}.ipv6Range`, want6 === undefined ? `network ${spec.name} is IPv4-only (ipv6: false) but the plan gives it IPv6` : `the ipv6Range of network ${spec.name} must be ${want6}, not ${String(net.ipv6Range)}`);
    }
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
  const res6 = new Map<string, AnyResource>();
  const dual = new Set<string>();
  for (const n of plan.networks) {
    if (n.ipv6Range !== undefined) dual.add(n.name);
    for (const r of n.resources) {
      subnetOf.set(`${n.name}\0${r.node}`, parseCidr(r.subnet));
      res6.set(`${n.name}\0${r.node}`, r);
    }
  }
  const seen = new Set<string>();
  for (const w of plan.workloads) {
    // IPv6: present exactly on dual-stack networks; a host of the node's subnet6 other than its base, gateway6 and
    // WireGuard address; unique in the network.
    if (dual.has(w.network) !== (w.ip6 !== undefined)) {
      bad('E_PLAN_WORKLOAD', `workloads.${w.name}`, w.ip6 === undefined ? `workload ${w.name} has no ip6 on dual-stack network ${w.network}` : `workload ${w.name} has an ip6 on IPv4-only network ${w.network}`);
    } else if (w.ip6 !== undefined) {
      const r = res6.get(`${w.network}\0${w.node}`);
      const sub6 = r?.subnet6 !== undefined ? parseCidr6(r.subnet6) : null;
      const ip6 = parseIPv6(w.ip6);
      if (!r || !sub6 || ip6 === null || formatIPv6(ip6) !== w.ip6 || !cidr6ContainsIp(sub6, ip6) || ip6 === sub6.base || w.ip6 === r.gateway6 || `${w.ip6}/128` === r.wgAddress6) {
        bad('E_PLAN_WORKLOAD', `workloads.${w.name}`, `workload ${w.name} address ${w.ip6} is not a free host of its node subnet6`);
      }
      if (seen.has(`${w.network}/${w.ip6}`)) bad('E_PLAN_WORKLOAD', `workloads.${w.name}`, `address ${w.ip6} used twice`);
      seen.add(`${w.network}/${w.ip6}`);
    }
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
function checkMembers(
  net: Omit<NetworkPlan, 'resources'> & { resources: AnyResource[] },
  at: string,
  nodes: string[],
  invNodes: Map<string, InvNode>,
  bad: Bad,
): { range: Cidr; subnets: Cidr[]; subnets6: Cidr6[] | null } | null {
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
  const subnets6 = checkMembers6(net, at, range, bad);
  return { range, subnets: all, subnets6 };
}

/**
 * The IPv6 rules of a network's members (docs/plan-format.md#ipv6): a dual-stack network has a ULA ipv6Range /48
 * to /56 and the derived subnet6Prefix, and every member the IPv6 twins of its IPv4 fields (subnet6 the slot of
 * subnet's index, every host mirrored); an IPv4-only one has no IPv6 field anywhere. Returns the subnet6s.
 */
function checkMembers6(net: Omit<NetworkPlan, 'resources'> & { resources: AnyResource[] }, at: string, range: Cidr, bad: Bad): Cidr6[] | null {
  if (net.ipv6Range === undefined) {
    if (net.subnet6Prefix !== undefined) bad('E_PLAN_IPV6', at, 'an IPv4-only network has no subnet6Prefix');
    for (const r of net.resources) if (r.subnet6 !== undefined || r.gateway6 !== undefined || r.wgAddress6 !== undefined) bad('E_PLAN_IPV6', `${at}.${r.node}`, 'IPv6 fields on a network without ipv6Range');
    for (const d of net.access) if (d.subnet6 !== undefined || d.address6 !== undefined) bad('E_PLAN_IPV6', `${at}.access.${d.name}`, 'IPv6 fields on a network without ipv6Range');
    return null;
  }
  const range6 = parseCidr6(net.ipv6Range);
  if (!range6 || formatCidr6(range6) !== net.ipv6Range || range6.prefix < 48 || range6.prefix > 56 || !cidr6Contains(ULA, range6)) {
    bad('E_PLAN_IPV6', `${at}.ipv6Range`, `${net.ipv6Range} is not a unique local /48 to /56 in canonical form`);
    return null;
  }
  const prefix6 = subnet6PrefixOf(range6.prefix, range.prefix, net.subnetPrefix);
  if (net.subnet6Prefix !== prefix6) {
    bad('E_PLAN_IPV6', `${at}.subnet6Prefix`, `subnet6Prefix must be ${prefix6} (max(64, ${range6.prefix} + ${net.subnetPrefix - range.prefix}))`);
    return null;
  }
  const all: Cidr6[] = [];
  const names: string[] = [];
  // The IPv6 twin of a member: null when its IPv4 subnet is already bad (reported above).
  const twin = (subnet: string): { sub: Cidr; sub6: Cidr6; host: (ip: number) => string } | null => {
    const sub = parseCidr(subnet);
    if (!sub || !cidrContains(range, sub) || sub.prefix !== net.subnetPrefix) return null;
    const sub6 = nthSubnet6(range6, prefix6, (sub.base - range.base) / 2 ** (32 - sub.prefix));
    return { sub, sub6, host: (ip) => formatIPv6(sub6.base + BigInt(ip - sub.base)) };
  };
  for (const r of net.resources) {
    const p = `${at}.${r.node}`;
    const t = twin(r.subnet);
    if (!t) continue;
    if (r.subnet6 !== formatCidr6(t.sub6)) {
      bad('E_PLAN_IPV6', p, `subnet6 ${String(r.subnet6)} is not ${formatCidr6(t.sub6)}, the slot of ${r.subnet} in ${net.ipv6Range}`);
      continue;
    }
    all.push(t.sub6);
    names.push(r.node);
    if (r.gateway6 !== t.host(firstHost(t.sub)) || r.wgAddress6 !== `${t.host(lastHost(t.sub))}/128`) {
      bad('E_PLAN_IPV6', p, `gateway6 and wgAddress6 must be ${t.host(firstHost(t.sub))} and ${t.host(lastHost(t.sub))}/128 (the IPv4 hosts mirrored)`);
    }
  }
  for (const d of net.access) {
    const p = `${at}.access.${d.name}`;
    const sub = parseCidr(d.subnet);
    const t = sub && sub.prefix === net.subnetPrefix ? twin(d.subnet) : null;
    if (!t) {
      if (d.subnet6 !== undefined) {
        const c = parseCidr6(d.subnet6);
        if (c && cidr6Contains(range6, c)) {
          all.push(c);
          names.push(d.name);
        } else bad('E_PLAN_IPV6', p, `device subnet6 ${d.subnet6} outside ${net.ipv6Range}`);
      } else bad('E_PLAN_IPV6', p, 'a device of a dual-stack network needs subnet6 and address6');
      continue;
    }
    if (d.subnet6 !== formatCidr6(t.sub6) || d.address6 !== t.host(firstHost(t.sub))) {
      bad('E_PLAN_IPV6', p, `subnet6 and address6 must be ${formatCidr6(t.sub6)} and ${t.host(firstHost(t.sub))} (the IPv4 slot and host mirrored)`);
      continue;
    }
    all.push(t.sub6);
    names.push(d.name);
  }
  const ov = findOverlap6(all);
  if (ov) bad('E_PLAN_OVERLAP', at, `subnet6s of ${names[ov[0]]} and ${names[ov[1]]} overlap`);
  return all;
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
  if (members.subnets6) checkPeers6(net, at, members.subnets6, bad);
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
      else if (x.directSubnet6 !== t.subnet6) bad('E_PLAN_DIRECT', p, `direct peer ${x.node}: directSubnet6 is not its subnet6`);
      if (x.allowedIps.length || x.endpoint !== null || x.persistentKeepalive !== null) bad('E_PLAN_DIRECT', p, `direct peer ${x.node}: the plan gives a direct peer no allowed-ips, endpoint or keepalive`);
    }
    // allowed-ips: no overlap; with own subnet, cover every subnet.
    const allowed: Cidr[] = [];
    for (const x of r.peers)
      for (const a of x.allowedIps) {
        if (net.ipv6Range !== undefined && typeof a === 'string' && a.includes(':')) continue; // checkPeers6
        const c = parseCidr(a);
        if (!c) bad('E_PLAN_ALLOWED', p, `bad allowed-ip ${a}`);
        else allowed.push(c);
      }
    if (findOverlap(allowed)) bad('E_PLAN_ALLOWED', p, 'peers allowed-ips overlap');
    const own = parseCidr(r.subnet);
    const cover = own ? [...allowed, own].sort((a, b) => a.base - b.base) : allowed;
    for (const s of subnetsSorted) {
      // the covering CIDR is the last one with base <= s.base
      const found = lastAtOrBelow(cover, s.base);
      if (found < 0 || !cidrContains(cover[found], s)) {
        bad('E_PLAN_COVER', p, 'allowed-ips with the own subnet do not cover every subnet of the network');
        break;
      }
    }
  }
}

/** Index of the last CIDR (sorted by base) whose base is at or below `base`; -1 when none. Binary search. */
function lastAtOrBelow<B extends number | bigint>(sorted: { base: B }[], base: B): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid].base <= base) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * The peer rules in IPv6 (a dual-stack full network): each resource's IPv6 allowed-ips (after its IPv4 ones) never
 * overlap and, with its own subnet6, cover every subnet6 of the network; each family sorted by address.
 */
function checkPeers6(net: NetworkPlan, at: string, all: Cidr6[], bad: Bad): void {
  const sorted = [...all].sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
  for (const r of net.resources) {
    if (!Array.isArray(r.peers)) continue;
    const p = `${at}.${r.node}`;
    const allowed: Cidr6[] = [];
    for (const x of r.peers) {
      let seen6 = false;
      let last: Cidr6 | null = null;
      for (const a of x.allowedIps) {
        const six = typeof a === 'string' && a.includes(':');
        if (!six) {
          if (seen6) bad('E_PLAN_ALLOWED', p, `peer ${x.node}: IPv4 allowed-ips come before IPv6 ones`);
          continue;
        }
        seen6 = true;
        const c = parseCidr6(a);
        if (!c || formatCidr6(c) !== a) bad('E_PLAN_ALLOWED', p, `bad allowed-ip ${a}`);
        else {
          if (last && last.base >= c.base) bad('E_PLAN_ALLOWED', p, `peer ${x.node}: IPv6 allowed-ips are not sorted`);
          last = c;
          allowed.push(c);
        }
      }
    }
    if (findOverlap6(allowed)) bad('E_PLAN_ALLOWED', p, 'peers IPv6 allowed-ips overlap');
    const own = r.subnet6 !== undefined ? parseCidr6(r.subnet6) : null;
    const cover = (own ? [...allowed, own] : allowed).sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
    for (const s of sorted) {
      const found = lastAtOrBelow(cover, s.base);
      if (found < 0 || !cidr6Contains(cover[found], s)) {
        bad('E_PLAN_COVER', p, 'IPv6 allowed-ips with the own subnet6 do not cover every subnet6 of the network');
        break;
      }
    }
  }
}
