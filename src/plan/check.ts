// An independent checker of every rule a plan must satisfy. Used by tests (property tests compare the planner
// against it) and by the node agent before it applies anything. Returns problems; never throws on bad data.
import type { Blueprint } from '../blueprint/types.ts';
import type { Problem } from '../errors.ts';
import { cidrContains, cidrContainsIp, firstHost, formatEndpoint, lastHost, parseCidr, parseIPv4, type Cidr } from '../../topology/cidr.ts';
import type { Inventory } from './inventory.ts';
import type { NetworkPlan, Plan } from './types.ts';

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

export function checkPlan(plan: Plan, bp: Blueprint, inv: Inventory): Problem[] {
  const out: Problem[] = [];
  const bad = (code: string, path: string, message: string) => out.push({ code, path, message, hint: 're-plan from the blueprint' });
  const invNodes = new Map(inv.nodes.map((n) => [n.id, n]));
  const portsOn = new Map<string, Set<number>>();
  if (plan.tenant !== bp.tenant || plan.blueprint !== bp.name) bad('E_PLAN_BLUEPRINT', '', 'plan is for another blueprint');
  if (plan.networks.length !== bp.networks.length) bad('E_PLAN_NETWORKS', 'networks', 'plan and blueprint have different networks');
  bp.networks.forEach((spec, ni) => {
    const net = plan.networks.find((n) => n.name === spec.name);
    const at = `networks[${ni}]`;
    if (!net) return bad('E_PLAN_NETWORKS', at, `network ${spec.name} is missing from the plan`);
    out.push(...checkNetwork(net, at, spec.nodes, invNodes));
    for (const r of net.resources) {
      const n = invNodes.get(r.node);
      let used = portsOn.get(r.node);
      if (!used) portsOn.set(r.node, (used = new Set()));
      if (used.has(r.listenPort)) bad('E_PLAN_PORT', `${at}.${r.node}`, `port ${r.listenPort} used twice on ${r.node}`);
      used.add(r.listenPort);
      if (n?.reservedPorts.includes(r.listenPort)) bad('E_PLAN_PORT', `${at}.${r.node}`, `port ${r.listenPort} is reserved on ${r.node}`);
    }
  });
  // Workloads: inside their node's subnet, not gateway / wg address, unique per network.
  const seen = new Set<string>();
  for (const w of plan.workloads) {
    const net = plan.networks.find((n) => n.name === w.network);
    const r = net?.resources.find((x) => x.node === w.node);
    const ip = parseIPv4(w.ip);
    const sub = r ? parseCidr(r.subnet) : null;
    if (!sub || ip === null || !cidrContainsIp(sub, ip) || ip <= firstHost(sub) || ip >= lastHost(sub)) {
      bad('E_PLAN_WORKLOAD', `workloads.${w.name}`, `workload ${w.name} address ${w.ip} is not a free host of its node subnet`);
    }
    if (seen.has(`${w.network}/${w.ip}`)) bad('E_PLAN_WORKLOAD', `workloads.${w.name}`, `address ${w.ip} used twice`);
    seen.add(`${w.network}/${w.ip}`);
  }
  return out;
}

export function checkNetwork(
  net: NetworkPlan,
  at: string,
  nodes: string[],
  invNodes: Map<string, { endpoints: string[] }>,
): Problem[] {
  const out: Problem[] = [];
  const bad = (code: string, path: string, message: string) => out.push({ code, path, message, hint: 're-plan from the blueprint' });
  const range = parseCidr(net.ipRange);
  if (!range) return [{ code: 'E_PLAN_RANGE', path: at, message: 'bad range', hint: '' }];
  const all: Cidr[] = [];
  const names: string[] = [];
  const res = new Map(net.resources.map((r) => [r.node, r]));
  if (res.size !== net.resources.length || nodes.length !== res.size || nodes.some((n) => !res.has(n))) {
    bad('E_PLAN_MEMBERS', at, 'resources are not exactly one per network node');
  }
  // Every WireGuard key of the network is one member's: two members with one key would share a peer entry.
  const keys = [...net.resources.map((r) => r.publicKey), ...net.access.map((d) => d.publicKey)];
  if (new Set(keys).size !== keys.length) bad('E_PLAN_PEER_KEY', at, 'two members of the network have the same WireGuard key');
  for (const r of net.resources) {
    const c = parseCidr(r.subnet);
    if (!c || !cidrContains(range, c) || c.prefix !== net.subnetPrefix) bad('E_PLAN_SUBNET', `${at}.${r.node}`, `subnet ${r.subnet} is not a /${net.subnetPrefix} inside ${net.ipRange}`);
    else {
      all.push(c);
      names.push(r.node);
    }
  }
  for (const d of net.access) {
    const c = parseCidr(d.subnet);
    if (!c || !cidrContains(range, c)) bad('E_PLAN_SUBNET', `${at}.access.${d.name}`, `device subnet ${d.subnet} outside the range`);
    else {
      all.push(c);
      names.push(d.name);
    }
  }
  const ov = findOverlap(all);
  if (ov) bad('E_PLAN_OVERLAP', at, `subnets of ${names[ov[0]]} and ${names[ov[1]]} overlap`);
  const publicIds = net.resources.filter((r) => (invNodes.get(r.node)?.endpoints.length ?? 0) > 0).map((r) => r.node);
  const publicSet = new Set(publicIds);
  const devices = new Map(net.access.map((d) => [d.name, d]));
  const subnetsSorted = [...all].sort((a, b) => a.base - b.base);
  for (const r of net.resources) {
    const p = `${at}.${r.node}`;
    const isPublic = publicSet.has(r.node);
    if (r.hidden === isPublic) bad('E_PLAN_HIDDEN', p, 'hidden flag does not match the inventory');
    const peerNodes = new Set(r.peers.map((x) => x.node));
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
  return out;
}
