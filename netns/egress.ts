// Where a tenant's egress must never go, as plain data: the blocked destinations of the host's egress table
// (nft interval sets), derived from the host's own addresses and routes, the mesh's underlay endpoints, the
// control plane and the operator's policy. Pure: facts in, sorted set elements out. See docs/netns.md#egress.
import { bits, formatCidr, formatIp, maskOf, networkOf, parseCidr, parseIp, type Family } from './ip.ts';

/**
 * The operator's egress policy (the agent config's `egress:` section, plus the control-plane addresses the
 * agent knows). CIDRs or bare addresses, either family.
 */
export interface EgressPolicy {
  /** Destinations tenants may reach although blocked by default (e.g. an on-site resolver). Never wins over `deny`. */
  allow?: string[];
  /** More destinations tenants never reach; wins over `allow`. */
  deny?: string[];
  /** Control-plane endpoint addresses (the agent's etcd endpoints' hosts): blocked unless allowed. */
  controlPlane?: string[];
  /**
   * The node's own public addresses where they may be on no interface of the host (1:1 NAT, a floating IP, a
   * router forwarding to it; the agent's `endpoints`): traffic to them comes back in to the node's services.
   */
  nodeAddresses?: string[];
}

/** What the host looks like, as read by the driver. */
export interface EgressFacts {
  /** The host namespace's own addresses ("a/len" or bare), any family. */
  addresses: string[];
  /** Destinations of the host's main routing tables, both families (default routes are ignored). */
  routes: string[];
  /** Underlay endpoints of the mesh peers of the networks on this host ("ip:port", "[v6]:port"). */
  peerEndpoints: string[];
  /** Devices of the host's default routes (main table): the only way out (absent: no uplink rule). */
  uplinks?: string[];
}

/** The nft set elements of the blocked destinations, per family: CIDRs, or "a-b" ranges where no prefix fits. */
export interface BlockedSets {
  v4: string[];
  v6: string[];
  /**
   * The only interfaces egress may leave by: the devices of the host's default routes. Whatever else the host
   * routes (policy-routing tables, VPNs, site links) is not the outside, whatever table the kernel picks.
   * Absent: no such rule (hand-made sets in tests); empty: nothing leaves.
   */
  uplinks?: string[];
}

/** An interface name safe to put in an nft rule (quoted). */
const IFNAME = /^[A-Za-z0-9._@-]{1,15}$/;

/**
 * Private and special-purpose IPv4 ranges (RFC 6890 and friends): never the outside. The documentation
 * ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are left open: labs use them as their internet.
 */
export const SPECIAL_V4: readonly string[] = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', // RFC 1918
  '100.64.0.0/10', // CGNAT (RFC 6598)
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local: cloud metadata, and every egress transfer network of this host
  '172.16.0.0/12', // RFC 1918
  '192.0.0.0/24', // IETF protocol assignments
  '192.88.99.0/24', // 6to4 relay anycast (deprecated)
  '192.168.0.0/16', // RFC 1918
  '198.18.0.0/15', // benchmarking, often used inside sites
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and the limited broadcast 255.255.255.255
];

/** The same for IPv6 (2001:db8::/32, documentation, stays open). */
export const SPECIAL_V6: readonly string[] = [
  '::/8', // unspecified, loopback ::1, IPv4-mapped ::ffff:0:0/96, IPv4-compatible, NAT64 64:ff9b::/96 and 64:ff9b:1::/48
  '100::/64', // discard-only
  '2001::/23', // IETF protocol assignments: Teredo 2001::/32 (tunnels to IPv4), benchmarking, ORCHID
  '2002::/16', // 6to4: embeds IPv4 addresses, private ones included
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
];

type Range = [bigint, bigint];

function rangeOf(cidr: string): { family: Family; range: Range } | null {
  const c = parseCidr(cidr);
  if (!c) return null;
  const m = maskOf(c.family, c.prefix);
  const lo = c.value & m;
  const hi = lo | (((1n << BigInt(bits(c.family))) - 1n) & ~m);
  return { family: c.family, range: [lo, hi] };
}

/** Sorted, merged (overlapping or adjacent ranges joined). */
function merge(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1] + 1n) {
      if (r[1] > last[1]) last[1] = r[1];
    } else out.push([r[0], r[1]]);
  }
  return out;
}

/** `from` minus `cut` (both merged). */
function subtract(from: Range[], cut: Range[]): Range[] {
  const out: Range[] = [];
  for (const r of from) {
    let pieces: Range[] = [[r[0], r[1]]];
    for (const c of cut) {
      const next: Range[] = [];
      for (const p of pieces) {
        if (c[1] < p[0] || c[0] > p[1]) {
          next.push(p);
          continue;
        }
        if (c[0] > p[0]) next.push([p[0], c[0] - 1n]);
        if (c[1] < p[1]) next.push([c[1] + 1n, p[1]]);
      }
      pieces = next;
    }
    out.push(...pieces);
  }
  return out;
}

/** One nft set element: a CIDR when the range is exactly one prefix, else "a-b". */
function element(family: Family, r: Range): string {
  const size = r[1] - r[0] + 1n;
  const width = BigInt(bits(family));
  if ((size & (size - 1n)) === 0n) {
    let hostBits = 0n;
    while (1n << hostBits < size) hostBits++;
    const prefix = Number(width - hostBits);
    if ((r[0] & maskOf(family, prefix)) === r[0]) return `${formatIp({ family, value: r[0] })}/${prefix}`;
  }
  return `${formatIp({ family, value: r[0] })}-${formatIp({ family, value: r[1] })}`;
}

/** The host part of "ip:port" / "[v6]:port", or null. */
function endpointHost(ep: string): string | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):\d{1,5}$/.exec(ep);
  const host = m ? (m[1] ?? m[2]) : null;
  return host && parseIp(host) ? host : null;
}

/**
 * The destinations a tenant's egress never reaches, per family:
 *   (special ranges ∪ the host's own addresses ∪ every destination it has a route for besides its default route
 *    — its connected underlay subnets, LAN neighbours and sites behind them — ∪ the mesh peers' underlay
 *    addresses ∪ the control plane ∪ the node's public addresses) − allow, ∪ deny.
 * Sorted and merged, so equal facts always give equal sets (a no-op apply stays a no-op).
 */
export function egressBlocked(facts: EgressFacts, policy: EgressPolicy = {}): BlockedSets {
  const blocked: Record<Family, Range[]> = { 4: [], 6: [] };
  const allow: Record<Family, Range[]> = { 4: [], 6: [] };
  const deny: Record<Family, Range[]> = { 4: [], 6: [] };
  const add = (into: Record<Family, Range[]>, cidr: string, hostOnly = false) => {
    const c = parseCidr(cidr);
    if (!c) return;
    const r = rangeOf(hostOnly ? formatIp(c) : cidr);
    if (r) into[r.family].push(r.range);
  };
  for (const s of [...SPECIAL_V4, ...SPECIAL_V6]) add(blocked, s);
  for (const a of facts.addresses) {
    add(blocked, a, true);
    // The address's own network too, whether or not the host has a route for it (`noprefixroute`, an off-link
    // SLAAC prefix, a DHCPv6 /128): it is the host's LAN. An IPv6 link is a /64 whatever the address says.
    const c = parseCidr(a);
    if (c && a.includes('/')) add(blocked, formatCidr(networkOf({ ...c, prefix: c.family === 6 ? Math.min(c.prefix, 64) : c.prefix })));
  }
  // The default routes are the outside itself (either family: "default", "::/0", "0.0.0.0/0").
  for (const r of facts.routes) if (r !== 'default' && parseCidr(r)?.prefix !== 0) add(blocked, r);
  for (const ep of facts.peerEndpoints) {
    const h = endpointHost(ep);
    if (h) add(blocked, h);
  }
  for (const a of [...(policy.controlPlane ?? []), ...(policy.nodeAddresses ?? [])]) add(blocked, a);
  for (const a of policy.allow ?? []) add(allow, a);
  for (const a of policy.deny ?? []) add(deny, a);
  const out = (f: Family) => merge([...subtract(merge(blocked[f]), merge(allow[f])), ...deny[f]]).map((r) => element(f, r));
  const uplinks = facts.uplinks ? { uplinks: [...new Set(facts.uplinks.filter((d) => IFNAME.test(d)))].sort() } : {};
  return { v4: out(4), v6: out(6), ...uplinks };
}

/** Checks a list of policy CIDRs (`what`: its path, e.g. "egress.allow"): problems, one per bad entry (empty when fine). */
export function checkEgressCidrs(list: unknown, what: string): { path: string; message: string }[] {
  if (!Array.isArray(list)) return [{ path: what, message: `${what} is a list of CIDRs` }];
  const p: { path: string; message: string }[] = [];
  list.forEach((v, i) => {
    const path = `${what}[${i}]`;
    const c = typeof v === 'string' ? parseCidr(v) : null;
    if (!c || (typeof v === 'string' && !v.includes('/'))) {
      p.push({ path, message: `${JSON.stringify(v)} is not a CIDR like 192.168.10.0/24 or 2001:db8:5::/48` });
      return;
    }
    const net = c.value & maskOf(c.family, c.prefix);
    if (net !== c.value) p.push({ path, message: `${v} has host bits set; did you mean ${formatIp({ family: c.family, value: net })}/${c.prefix}?` });
  });
  return p;
}

/** Whether an address lies in the blocked sets (their elements: CIDRs or "a-b" ranges). */
export function inBlocked(address: string, sets: BlockedSets): boolean {
  const ip = parseIp(address);
  if (!ip) return false;
  for (const e of ip.family === 4 ? sets.v4 : sets.v6) {
    const dash = e.indexOf('-');
    const r: Range | null = dash > 0 ? [parseIp(e.slice(0, dash))?.value ?? -1n, parseIp(e.slice(dash + 1))?.value ?? -2n] : (rangeOf(e)?.range ?? null);
    if (r && ip.value >= r[0] && ip.value <= r[1]) return true;
  }
  return false;
}

/**
 * Where a tenant network's resolver may forward (the agent config's `dnsUpstreams`): what is wrong with each
 * address, from the egress rules alone (forwarded queries leave by the network's egress like any other packet).
 * Never loopback, unspecified, link-local, multicast or reserved (not reachable from a tenant namespace at all);
 * a private or special address only when `egress.allow` opens it and `egress.deny` does not close it again.
 * What the host adds at apply time (its LAN, its underlay) is not known here: docs/dns.md says so.
 */
export function checkDnsUpstreams(list: unknown, policy: Pick<EgressPolicy, 'allow' | 'deny'>, what = 'dnsUpstreams'): { path: string; message: string; hint: string }[] {
  const hint = 'list at most 3 IPv4 addresses of resolvers reachable through egress, e.g. dnsUpstreams: [9.9.9.9]; a private one also in egress.allow (docs/dns.md)';
  if (!Array.isArray(list) || list.length > 3) return [{ path: what, message: `${what} is a list of at most 3 IPv4 addresses`, hint }];
  const blocked = egressBlocked({ addresses: [], routes: [], peerEndpoints: [] }, policy);
  const never = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3']; // the last: multicast and reserved
  const p: { path: string; message: string; hint: string }[] = [];
  list.forEach((v, i) => {
    const path = `${what}[${i}]`;
    const ip = typeof v === 'string' ? parseIp(v) : null;
    if (!ip || ip.family !== 4 || v.includes('/')) p.push({ path, message: `${JSON.stringify(v)} is not an IPv4 address (upstreams are reached over IPv4, which every network with egress has)`, hint });
    else if (inBlocked(v as string, { v4: never, v6: [] })) p.push({ path, message: `${v} is loopback, unspecified, link-local, multicast or reserved: a tenant's namespace never reaches it`, hint });
    else if (list.indexOf(v) !== i) p.push({ path, message: `${v} is listed twice`, hint });
    else if (inBlocked(v, blocked)) {
      const denied = (policy.deny ?? []).some((c) => inBlocked(v, { v4: [c], v6: [] }));
      p.push({ path, message: denied ? `${v} is in egress.deny: forwarded queries could not reach it` : `${v} is a private or special address that egress blocks`, hint: denied ? hint : `add ${v}/32 to egress.allow (tenants with egress may then reach it on any port), or pick a public resolver` });
    }
  });
  return p;
}
