// The desired on-node layout of one network resource, as plain data: links, addresses, routes, WireGuard
// configuration and nft tables. Pure: computed from a DesiredResource and a few host facts.
import { Key } from '../src/crypto/index.ts';
import type { NftRuleSpec, NftSetSpec, NftTableSpec } from './build.ts';
import type { CompiledPolicy } from '../src/plan/policy.ts';
import { egressBlocked, type BlockedSets } from './egress.ts';
import { addressMac, canonicalCidr, canonicalEndpoint, canonicalIfAddr, cidrContains, egressAddrs6, formatIp, isCidr, parseCidr, parseIp } from './ip.ts';
import { isNetworkId, namesFor, type ResourceNames } from './names.ts';
import type { DesiredResource } from './types.ts';

/** WireGuard's worst-case overhead (IPv6 underlay): 40 IP + 8 UDP + 32 WireGuard. */
export const WG_OVERHEAD = 80;
export const MIN_OVERLAY_MTU = 576;

export interface DesiredLink {
  name: string;
  kind: 'bridge' | 'wireguard' | 'tun' | 'veth';
  mtu: number;
  alias: string;
  /** A MAC of its own (the bridge: addressMac of the gateway); absent: whatever the kernel gives. */
  mac?: string;
  /** Interface addresses, canonical ("10.1.3.1/24"). */
  addrs: string[];
}

export interface DesiredRoute {
  dst: string;
  dev: string;
  gateway: string | null;
}

export interface DesiredPeer {
  publicKey: string;
  endpoint: string | null;
  /** Canonical, sorted, unique. */
  allowedIps: string[];
  persistentKeepalive: number | null;
  /** Set the endpoint even after a recent handshake (a direct-path probe moving to its next candidate). */
  forceEndpoint?: true;
}

export interface EgressLayout {
  hostLink: DesiredLink;
  tenantAddr: string;
  hostAddr: string;
  /** IPv6 egress in force (LayoutContext.egress6): the pair's IPv6 transfer addresses (netns/ip.ts egressAddrs6). */
  tenantAddr6?: string;
  hostAddr6?: string;
}

export interface Layout {
  names: ResourceNames;
  underlayMtu: number;
  overlayMtu: number;
  /** Links inside the tenant namespace (besides loopback, which only gets the marker and is set up). */
  links: DesiredLink[];
  routes: DesiredRoute[];
  wg: { publicKey: string; listenPort: number; peers: DesiredPeer[] };
  egress: EgressLayout | null;
  nftTenant: NftTableSpec;
  nftHost: NftTableSpec | null;
}

export interface LayoutContext {
  underlayMtu: number;
  /** The kind the WireGuard link has with the selected backend. */
  wgKind: 'wireguard' | 'tun';
  /** The egress transfer addresses (host .1/30, tenant .2/30) when egress is on. */
  egressAddrs: { hostAddr: string; tenantAddr: string } | null;
  /** The destinations egress never reaches (netns/egress.ts) when egress is on. */
  egressBlocked?: BlockedSets | null;
  /**
   * Whether IPv6 egress is in force for this resource: asked for (DesiredResource.egress6: the signed blueprint's
   * `egressIpv6`, the node's config allowing it) and the host has an IPv6 default route. Absent: false.
   */
  egress6?: boolean;
}

/** Checks a desired resource before any side effect. Returns problems (empty when fine). */
export function validateDesired(d: DesiredResource): string[] {
  const p: string[] = [];
  if (!isNetworkId(d.networkId)) return [`networkId must be 10 characters [a-z0-9], got ${JSON.stringify(d.networkId)}`];
  const r = d.resource;
  if (!r || typeof r !== 'object') return ['resource is missing'];
  const range = parseCidr(d.ipRange);
  if (!range || range.family !== 4) p.push(`ipRange ${JSON.stringify(d.ipRange)} is not an IPv4 CIDR`);
  const subnet = parseCidr(r.subnet);
  if (!subnet || subnet.family !== 4) p.push(`subnet ${JSON.stringify(r.subnet)} is not an IPv4 CIDR`);
  else if (range && !cidrContains(range, subnet)) p.push(`subnet ${r.subnet} is not inside the range ${d.ipRange}`);
  const gw = parseIp(r.gateway);
  if (!gw || !subnet || !cidrContains(subnet, { family: gw.family, value: gw.value, prefix: 32 })) {
    p.push(`gateway ${JSON.stringify(r.gateway)} is not an address of the subnet`);
  }
  const wga = parseCidr(r.wgAddress);
  if (!wga || wga.prefix !== 32 || !subnet || !cidrContains(subnet, wga)) p.push(`wgAddress ${JSON.stringify(r.wgAddress)} is not a /32 of the subnet`);
  if (!Number.isInteger(r.listenPort) || r.listenPort < 1 || r.listenPort > 65535) p.push(`listenPort ${r.listenPort} is not a port`);
  if (!Key.isValid(r.publicKey)) p.push('publicKey is not a WireGuard key');
  if (typeof r.sealedPrivateKey !== 'string' || r.sealedPrivateKey === '') p.push('sealedPrivateKey is missing');
  // Dual-stack: the IPv6 range and the resource's three IPv6 fields come together (netns/types.ts).
  let range6: ReturnType<typeof parseCidr> = null;
  if (d.ipRange6 !== undefined) {
    range6 = parseCidr(d.ipRange6);
    if (!range6 || range6.family !== 6) p.push(`ipRange6 ${JSON.stringify(d.ipRange6)} is not an IPv6 CIDR`);
    const subnet6 = parseCidr(r.subnet6 as string);
    if (!subnet6 || subnet6.family !== 6) p.push(`subnet6 ${JSON.stringify(r.subnet6)} is not an IPv6 CIDR`);
    else if (range6 && range6.family === 6 && !cidrContains(range6, subnet6)) p.push(`subnet6 ${r.subnet6} is not inside the range ${d.ipRange6}`);
    const gw6 = parseIp(r.gateway6 as string);
    if (!gw6 || !subnet6 || !cidrContains(subnet6, { family: gw6.family, value: gw6.value, prefix: 128 })) p.push(`gateway6 ${JSON.stringify(r.gateway6)} is not an address of subnet6`);
    const wga6 = parseCidr(r.wgAddress6 as string);
    if (!wga6 || wga6.prefix !== 128 || !subnet6 || !cidrContains(subnet6, wga6)) p.push(`wgAddress6 ${JSON.stringify(r.wgAddress6)} is not a /128 of subnet6`);
  }
  if (d.bridgeHosts !== undefined) {
    if (!Array.isArray(d.bridgeHosts)) p.push('bridgeHosts must be a list of addresses');
    else {
      const s6 = r.subnet6 !== undefined ? parseCidr(r.subnet6) : null;
      for (const a of d.bridgeHosts) {
        const ip = typeof a === 'string' && !a.includes('/') ? parseIp(a) : null;
        const host = ip ? { family: ip.family, value: ip.value, prefix: ip.family === 4 ? 32 : 128 } : null;
        if (!host || !((subnet && cidrContains(subnet, host)) || (s6 && cidrContains(s6, host)))) p.push(`bridgeHosts: ${JSON.stringify(a)} is not an address of the subnet`);
      }
    }
  }
  if (d.egressDevices !== undefined) {
    if (!Array.isArray(d.egressDevices)) p.push('egressDevices must be a list of CIDRs');
    else {
      for (const e of d.egressDevices) {
        const c = parseCidr(e);
        const inside = c !== null && ((range !== null && cidrContains(range, c)) || (range6 !== null && cidrContains(range6, c)));
        if (!inside) p.push(`egressDevices: ${JSON.stringify(e)} is not a CIDR inside the range`);
      }
    }
  }
  const seen = new Set<string>();
  (r.peers ?? []).forEach((peer, i) => {
    const where = `peers[${i}] (${peer?.node})`;
    if (!Key.isValid(peer.publicKey)) p.push(`${where}: publicKey is not a WireGuard key`);
    else if (peer.publicKey === r.publicKey) p.push(`${where}: is this resource itself`);
    else if (seen.has(peer.publicKey)) p.push(`${where}: duplicate publicKey`);
    seen.add(peer.publicKey);
    if (peer.endpoint !== null && canonicalEndpoint(peer.endpoint) === null) p.push(`${where}: bad endpoint ${JSON.stringify(peer.endpoint)}`);
    for (const a of peer.allowedIps ?? []) if (!isCidr(a)) p.push(`${where}: bad allowed IP ${JSON.stringify(a)}`);
    const ka = peer.persistentKeepalive;
    if (ka !== null && (!Number.isInteger(ka) || ka < 0 || ka > 65535)) p.push(`${where}: bad persistentKeepalive ${ka}`);
  });
  return p;
}

export function normalizePeers(peers: DesiredResource['resource']['peers']): DesiredPeer[] {
  return peers
    .map((p) => ({
      publicKey: p.publicKey,
      endpoint: p.endpoint === null ? null : canonicalEndpoint(p.endpoint),
      allowedIps: p.allowedIps.length === 1 ? [canonicalCidr(p.allowedIps[0])] : [...new Set(p.allowedIps.map(canonicalCidr))].sort(),
      persistentKeepalive: p.persistentKeepalive ? p.persistentKeepalive : null,
      ...((p as { forceEndpoint?: true }).forceEndpoint && p.endpoint !== null ? { forceEndpoint: true as const } : {}),
    }))
    .sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0));
}

export function overlayMtu(underlayMtu: number): number {
  return Math.max(MIN_OVERLAY_MTU, underlayMtu - WG_OVERHEAD);
}

/**
 * The tenant namespace's table. With `subnet` (the node's subnet of the network), spoofed sources are dropped:
 * from the bridge (workloads) only the subnet is admitted, and only the subnet is sent into the tunnel from
 * the namespace itself — a peer's allowed IPs cannot catch this on an access node, whose peers accept its
 * hidden nodes' subnets from it, nor on a hidden node, which accepts the whole range from its access node.
 * With egress, what comes out of the tunnel never goes on to the egress veth unless its source is one of
 * `egressDevices` (the subnets of access devices this node serves whose blueprint entry has `egress: true`):
 * egress is for this node's workloads, not for other nodes' or for devices that widen their AllowedIPs.
 */
/**
 * The policy's chains and sets (docs/policy.md), one copy on the input hook (the node's own addresses), one on
 * forward (its workloads and devices) and one on output (the node itself to its workloads and devices): for a new IPv4 flow from inside the range to a destination this node
 * guards, the first rule that matches accepts; else the default. Replies to allowed flows pass (conntrack).
 * Every rule counts its packets (`r<index>-<proto>`, `default-drop`).
 */
export function policyNft(p: CompiledPolicy): { sets: NftSetSpec[]; chains: NftTableSpec['chains'] } {
  // Dual-stack (p.range6): each family has its own sets and rules (an `ip …` match never matches an IPv6 packet
  // in an inet table, nor `ip6 …` an IPv4 one); neighbour discovery is never a flow between members.
  const dual = p.range6 !== undefined;
  const v4 = (l: string[]) => (dual ? l.filter((x) => !x.includes(':')) : l);
  const v6 = (l: string[]) => l.filter((x) => x.includes(':'));
  const sets: NftSetSpec[] = [{ name: 'pol_local', type: 'ipv4_addr', elements: v4(p.local) }];
  if (dual) sets.push({ name: 'pol_local6', type: 'ipv6_addr', elements: v6(p.local) });
  const rules: NftRuleSpec[] = dual
    ? [
        { tag: 'pol-nd', rule: 'icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept' },
        { tag: 'pol-not-guarded', rule: 'ip daddr != @pol_local accept' },
        // Link-local addresses (the bridge's, a workload's) are the node's and its members' too: guarded, and
        // policed as sources, so that fe80:: is no way around the rules (no rule names them: the default decides).
        { tag: 'pol-not-guarded6', rule: 'ip6 daddr != @pol_local6 ip6 daddr != fe80::/10 accept' },
        { tag: 'pol-outside', rule: `ip saddr != ${canonicalCidr(p.range)} accept` },
        { tag: 'pol-outside6', rule: `ip6 saddr != { ${canonicalCidr(p.range6!)}, fe80::/10 } accept` },
        { tag: 'pol-established', rule: 'ct state established,related accept' },
      ]
    : [
        // IPv4-only: IPv6 passes, but for link-local destinations (the bridge's fe80:: address is the node's too:
        // a way around the policy to what listens on [::]), which the default decides; neighbour discovery passes.
        { tag: 'pol-other-family', rule: 'ip6 daddr != fe80::/10 accept' },
        { tag: 'pol-nd', rule: 'icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept' },
        { tag: 'pol-not-guarded', rule: 'ip daddr != @pol_local accept' },
        { tag: 'pol-outside', rule: `ip saddr != ${canonicalCidr(p.range)} accept` },
        { tag: 'pol-established', rule: 'ct state established,related accept' },
      ];
  const family = (r: CompiledPolicy['rules'][number], six: boolean) => {
    const from = six ? v6(r.from) : v4(r.from);
    const to = six ? v6(r.to) : v4(r.to);
    // A rule with no source or no destination in this family has nothing to match in it.
    if (dual && (from.length === 0 || to.length === 0)) return;
    const [f, s, ip, type] = six ? ['6', '6', 'ip6', 'ipv6_addr' as const] : ['', '', 'ip', 'ipv4_addr' as const];
    sets.push({ name: `r${r.index}_from${s}`, type, elements: from }, { name: `r${r.index}_to${s}`, type, elements: to });
    const match = `${ip} saddr @r${r.index}_from${s} ${ip} daddr @r${r.index}_to${s}`;
    if (r.any) rules.push({ tag: `r${r.index}-any${f}`, rule: `${match} counter accept` });
    if (r.tcp.length) rules.push({ tag: `r${r.index}-tcp${f}`, rule: `${match} tcp dport { ${r.tcp.join(', ')} } counter accept` });
    if (r.udp.length) rules.push({ tag: `r${r.index}-udp${f}`, rule: `${match} udp dport { ${r.udp.join(', ')} } counter accept` });
    if (r.icmp) rules.push({ tag: `r${r.index}-icmp${f}`, rule: `${match} meta l4proto ${six ? 'ipv6-icmp' : 'icmp'} counter accept` });
  };
  for (const r of p.rules) {
    family(r, false);
    if (dual) family(r, true);
  }
  rules.push(p.default === 'deny' ? { tag: 'default-drop', rule: 'counter drop' } : { tag: 'default-allow', rule: 'counter accept' });
  const chain = (name: string, hook: 'input' | 'forward' | 'output', first: NftRuleSpec[] = []) => ({ name, type: 'filter' as const, hook, priority: 'filter' as const, policy: 'accept' as const, rules: [...first, ...rules] });
  // Output: what the namespace sends itself (the node's own address to the workloads and devices it serves);
  // traffic to itself over loopback is not a flow between members.
  // Input: the node's resolver (netns/dns.ts; it serves only this network's names) stays reachable whatever the
  // policy: a deny-by-default network still resolves names (docs/dns.md#policy).
  return { sets, chains: [chain('policy-in', 'input', [{ tag: 'pol-dns', rule: 'meta l4proto { tcp, udp } th dport 53 accept' }]), chain('policy-fwd', 'forward'), chain('policy-out', 'output', [{ tag: 'pol-loopback', rule: 'oifname "lo" accept' }])] };
}

/**
 * With `subnet6` (dual-stack: the node's IPv6 subnet) the same anti-spoofing covers IPv6 sources (`…6` rules;
 * the bridge's input also admits link-local sources: neighbour and router solicitations), and no IPv6 packet
 * goes out by the egress veth (`egress-v6`) unless IPv6 egress is in force (`egress6`: the host end's IPv6
 * transfer address `hostAddr6`, docs/netns.md#ipv6-egress): then the tunnel's IPv6 sources are held back like
 * its IPv4 ones (`tunnel-egress6`: only the devices' IPv6 subnets pass) and the host end's neighbour discovery
 * is let in from the outside.
 */
export function tenantNftSpec(
  names: ResourceNames,
  egress: boolean,
  subnet?: string,
  egressDevices: string[] = [],
  policy?: CompiledPolicy,
  subnet6?: string,
  hostAddr6?: string,
  bridgeHosts?: string[],
): NftTableSpec {
  const outside = `"${names.tenantVeth}"`;
  // Every drop rule counts what it drops (`zmesh diagnose` and GET /v1/networks show it): a counter is only
  // touched by packets the rule matches, so the common path pays nothing.
  const spoof = (tag: string, dir: 'iifname' | 'oifname', ifname: string) => [
    ...(subnet ? [{ tag, rule: `${dir} "${ifname}" ip saddr != ${subnet} counter drop` }] : []),
    ...(subnet6 ? [{ tag: `${tag}6`, rule: `${dir} "${ifname}" ip6 saddr != ${tag === 'in-spoof' ? `{ ${subnet6}, fe80::/10 }` : subnet6} counter drop` }] : []),
  ];
  const egress6 = egress && subnet6 !== undefined && hostAddr6 !== undefined;
  const devices = [...new Set(egressDevices.filter((c) => !c.includes(':')).map(canonicalCidr))].sort();
  const devices6 = [...new Set(egressDevices.filter((c) => c.includes(':')).map(canonicalCidr))].sort();
  const tunnel = `iifname "${names.wg}" oifname ${outside}`;
  // Without IPv6 egress, IPv6 sources never get an exception (egress-v6 drops them anyway), and the IPv4 rule keeps
  // the text it always had (a changed rule is a rewrite on every node); with it, each family has its own rule.
  const tunnelEgress = !egress
    ? []
    : !egress6
      ? [{ tag: 'tunnel-egress', rule: `${tunnel} ${devices.length ? `ip saddr != { ${devices.join(', ')} } ` : ''}counter drop` }]
      : [
          { tag: 'tunnel-egress', rule: `${tunnel} ${devices.length ? `ip saddr != { ${devices.join(', ')} }` : 'meta nfproto ipv4'} counter drop` },
          { tag: 'tunnel-egress6', rule: `${tunnel} ${devices6.length ? `ip6 saddr != { ${devices6.join(', ')} }` : 'meta nfproto ipv6'} counter drop` },
        ];
  // New connections from the outside (the egress veth) are dropped, replies let in. Only with egress: a `ct`
  // expression turns connection tracking on for every packet of the namespace, tunnel traffic included
  // (~4% of single-stream throughput measured with wireguard-go), and without the veth there is no outside.
  const outsideOnly = (dir: 'in' | 'fwd') =>
    egress
      ? [
          { tag: `${dir}-established`, rule: 'ct state established,related accept' },
          // IPv6 egress: the host end resolves the tenant end's address and answers its solicitations (neighbour
          // discovery is not tracked); only from the host end's own address.
          // Linux solicits from the link's fe80:: address unless the queued packet's source is its own (a forwarded
          // reply's never is): both sources, and only from the host end (red team of issue #20, F1).
          ...(egress6 && dir === 'in' ? [{ tag: 'in-nd-outside', rule: `iifname ${outside} ip6 saddr { ${hostAddr6!.split('/')[0]}, fe80::/10 } ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept` }] : []),
          { tag: `${dir}-drop-outside`, rule: `iifname ${outside} counter drop` },
        ]
      : [];
  // Only the node's own workloads live on the bridge: forwarding there to any other address would make the
  // namespace resolve it (an entry in the machine-wide neighbour table, pinned while unanswered; red team of #20).
  // Set elements as nft lists them back (host CIDRs), so that a table read back compares equal (no-op stays one).
  const hostCidrs = (six: boolean) => [...new Set((bridgeHosts ?? []).filter((a) => a.includes(':') === six).map((a) => canonicalCidr(`${a}/${six ? 128 : 32}`)))].sort();
  const hosts = bridgeHosts === undefined ? null : { v4: hostCidrs(false), v6: hostCidrs(true) };
  const bridgeOut = `oifname "${names.bridge}"`;
  const toHosts = hosts
    ? [
        { tag: 'to-unknown', rule: `${bridgeOut} ip daddr != @hosts4 counter drop` },
        ...(subnet6 ? [{ tag: 'to-unknown6', rule: `${bridgeOut} ip6 daddr != @hosts6 counter drop` }] : []),
      ]
    : [];
  const sets: NftSetSpec[] = hosts ? [{ name: 'hosts4', type: 'ipv4_addr', elements: hosts.v4 }, ...(subnet6 ? [{ name: 'hosts6', type: 'ipv6_addr' as const, elements: hosts.v6 }] : [])] : [];
  const chains: NftTableSpec['chains'] = [
    {
      name: 'input',
      type: 'filter',
      hook: 'input',
      priority: 'filter',
      policy: 'accept',
      rules: [
        // IPv4-only: no IPv6 forwarding makes the kernel ignore them, so a workload's router advertisement would give
        // the bridge an address and a default route via the workload (accept_ra is per link; red team of issue #20).
        ...(subnet6 ? [] : [{ tag: 'in-ra', rule: `iifname "${names.bridge}" icmpv6 type { nd-router-advert, nd-redirect } counter drop` }]),
        ...spoof('in-spoof', 'iifname', names.bridge),
        ...outsideOnly('in'),
      ],
    },
    {
      name: 'forward',
      type: 'filter',
      hook: 'forward',
      priority: 'filter',
      policy: 'accept',
      rules: [
        { tag: 'mss-clamp', rule: 'tcp flags syn tcp option maxseg size set rt mtu' },
        ...spoof('fwd-spoof', 'iifname', names.bridge),
        ...toHosts,
        // Before the established-accept: a device whose egress was taken away loses its open connections too.
        ...tunnelEgress,
        ...(egress && subnet6 && !egress6 ? [{ tag: 'egress-v6', rule: `oifname ${outside} meta nfproto ipv6 counter drop` }] : []),
        ...outsideOnly('fwd'),
      ],
    },
  ];
  if (subnet) {
    // Workloads reach each other through the namespace (runtime/attach.ts: only the gateway is on-link for them);
    // no redirect tells them to go direct (it would take same-node pairs past these rules and the policy).
    const noRedirect = hosts
      ? [
          { tag: 'no-redirect', rule: `${bridgeOut} icmp type redirect counter drop` },
          ...(subnet6 ? [{ tag: 'no-redirect6', rule: `${bridgeOut} icmpv6 type nd-redirect counter drop` }] : []),
        ]
      : [];
    chains.push({ name: 'output', type: 'filter', hook: 'output', priority: 'filter', policy: 'accept', rules: [...spoof('out-spoof', 'oifname', names.wg), ...noRedirect] });
  }
  if (egress) {
    chains.push({
      name: 'postrouting',
      type: 'nat',
      hook: 'postrouting',
      priority: 'srcnat',
      policy: 'accept',
      rules: [{ tag: 'egress-masquerade', rule: `oifname ${outside} masquerade` }],
    });
  }
  if (policy) {
    const p = policyNft(policy);
    return { family: 'inet', name: names.nftTenant, comment: `${names.marker} tenant namespace rules`, sets: [...sets, ...p.sets], chains: [...chains, ...p.chains] };
  }
  return { family: 'inet', name: names.nftTenant, comment: `${names.marker} tenant namespace rules`, ...(sets.length ? { sets } : {}), chains };
}

/** The named sets of the host table: the destinations egress never reaches, per family. */
export const BLOCKED_SET_V4 = 'blocked4';
/** Connections one tenant network may have open through its egress at once (nf_conntrack_max is shared). */
export const EGRESS_MAX_CONNECTIONS = 4096;
export const BLOCKED_SET_V6 = 'blocked6';

/**
 * The host's table for one network's egress: the tenant end's traffic is forwarded to the outside only — never
 * to the host itself, another tenant, or a blocked destination (`blocked`, netns/egress.ts: private and
 * special ranges, the host's own addresses and every destination it routes other than by its default route,
 * the mesh's underlay, the control plane, the node's public addresses; the operator's allow/deny applied) —
 * and NATed to the host's address.
 * Without IPv6 egress the tenant end has no IPv6 address, so an IPv6 packet from the veth is spoofed and
 * dropped (`egress-v6`, after the IPv6 set). With it (`tenantAddr6`: the tenant end's IPv6 transfer address,
 * docs/netns.md#ipv6-egress) the same rules hold for IPv6: only that source, the blocked6 set, NAT66 to the
 * uplink's address; the host lets in the tenant end's neighbour discovery from its own addresses only.
 */
export function hostNftSpec(names: ResourceNames, tenantAddr: string, blocked: BlockedSets, tenantAddr6?: string): NftTableSpec {
  const me = `"${names.hostVeth}"`;
  const tenantIp = tenantAddr.split('/')[0];
  const tenantIp6 = tenantAddr6?.split('/')[0];
  return {
    family: 'inet',
    name: names.nftHost,
    comment: `${names.marker} host rules for egress`,
    sets: [
      { name: BLOCKED_SET_V4, type: 'ipv4_addr', elements: blocked.v4 },
      { name: BLOCKED_SET_V6, type: 'ipv6_addr', elements: blocked.v6 },
    ],
    chains: [
      {
        name: 'input',
        type: 'filter',
        hook: 'input',
        priority: 'filter',
        policy: 'accept',
        rules: [
          // The tenant end's own addresses (its fc00:5a:: one, its link's fe80::): only the tenant namespace's kernel
          // sends on the veth (forwarded packets never carry a link-local source), so the host's neighbour table
          // holds at most two entries per network.
          ...(tenantIp6 ? [{ tag: 'nd-from-tenant', rule: `iifname ${me} ip6 saddr { ${tenantIp6}, fe80::/10 } ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept` }] : []),
          { tag: 'tenant-to-host', rule: `iifname ${me} drop` },
        ],
      },
      {
        name: 'forward',
        type: 'filter',
        hook: 'forward',
        priority: 'filter',
        policy: 'accept',
        rules: [
          // Only the tenant end's address leaves the veth (the tenant namespace masquerades to it): a packet
          // NAT skipped (conntrack-invalid) with a spoofed source never reaches the underlay.
          { tag: 'egress-spoof', rule: `iifname ${me} ip saddr != ${tenantIp} drop` },
          ...(tenantIp6 ? [{ tag: 'egress-spoof6', rule: `iifname ${me} ip6 saddr != ${tenantIp6} drop` }] : []),
          { tag: 'tenant-to-tenant', rule: `iifname ${me} oifname "ze-*" drop` },
          // Out only by the host's default route(s): not by a VPN or site link some other routing table uses.
          ...(blocked.uplinks
            ? [{ tag: 'egress-uplink', rule: blocked.uplinks.length ? `iifname ${me} oifname != { ${blocked.uplinks.map((d) => `"${d}"`).join(', ')} } drop` : `iifname ${me} drop` }]
            : []),
          // One tenant network cannot fill the host's connection-tracking table (shared with every tenant and the node).
          { tag: 'egress-conns', rule: `iifname ${me} ct state new ct count over ${EGRESS_MAX_CONNECTIONS} drop` },
          // The outside only: not the node's LAN, underlay, sites, mesh or control plane, nor private ranges.
          { tag: 'egress-blocked', rule: `iifname ${me} ip daddr @${BLOCKED_SET_V4} drop` },
          { tag: 'egress-blocked6', rule: `iifname ${me} ip6 daddr @${BLOCKED_SET_V6} drop` },
          ...(tenantIp6 ? [] : [{ tag: 'egress-v6', rule: `iifname ${me} meta nfproto ipv6 drop` }]),
          { tag: 'replies-in', rule: `oifname ${me} ct state established,related accept` },
          { tag: 'no-new-inbound', rule: `oifname ${me} drop` },
        ],
      },
      {
        name: 'postrouting',
        type: 'nat',
        hook: 'postrouting',
        priority: 'srcnat',
        policy: 'accept',
        rules: [
          { tag: 'egress-masquerade', rule: `ip saddr ${tenantIp} masquerade` },
          ...(tenantIp6 ? [{ tag: 'egress-masquerade6', rule: `ip6 saddr ${tenantIp6} masquerade` }] : []),
        ],
      },
    ],
  };
}

/** The layout of a (validated) desired resource. */
export function layoutFor(d: DesiredResource, ctx: LayoutContext): Layout {
  const names = namesFor(d.networkId);
  const r = d.resource;
  const mtu = overlayMtu(ctx.underlayMtu);
  const subnet = parseCidr(r.subnet)!;
  const gatewayIp = formatIp(parseIp(r.gateway)!);
  const gateway = `${gatewayIp}/${subnet.prefix}`;
  // Dual-stack: the bridge also holds gateway6 (with subnet6's prefix: the kernel adds its connected route, as
  // for IPv4), the WireGuard interface wgAddress6 (/128), and the IPv6 range goes through the tunnel too.
  const dual = d.ipRange6 !== undefined && r.subnet6 !== undefined && r.gateway6 !== undefined && r.wgAddress6 !== undefined;
  const subnet6 = dual ? canonicalCidr(r.subnet6!) : undefined;
  const gateway6 = dual ? [canonicalIfAddr(`${r.gateway6}/${parseCidr(r.subnet6!)!.prefix}`)] : [];
  const links: DesiredLink[] = [
    // The bridge's own MAC: without one it borrows its lowest port's, and changes it when that workload goes.
    { name: names.bridge, kind: 'bridge', mtu, alias: names.marker, mac: addressMac(gatewayIp), addrs: [canonicalIfAddr(gateway), ...gateway6] },
    { name: names.wg, kind: ctx.wgKind, mtu, alias: names.marker, addrs: [canonicalIfAddr(r.wgAddress), ...(dual ? [canonicalIfAddr(r.wgAddress6!)] : [])] },
  ];
  const range = canonicalCidr(d.ipRange);
  const routes: DesiredRoute[] = [{ dst: range, dev: names.wg, gateway: null }];
  if (dual) routes.push({ dst: canonicalCidr(d.ipRange6!), dev: names.wg, gateway: null });
  let egress: EgressLayout | null = null;
  if (d.egress) {
    if (!ctx.egressAddrs) throw new Error('egress needs transfer addresses');
    const { hostAddr, tenantAddr } = ctx.egressAddrs;
    // IPv6 egress: a dual-stack network that asks for it on a host with an IPv6 default route (the driver decides).
    const six = dual && ctx.egress6 === true ? egressAddrs6(hostAddr) : null;
    links.push({ name: names.tenantVeth, kind: 'veth', mtu: ctx.underlayMtu, alias: names.marker, addrs: [tenantAddr, ...(six ? [canonicalIfAddr(six.tenantAddr6)] : [])] });
    routes.push({ dst: 'default', dev: names.tenantVeth, gateway: hostAddr.split('/')[0] });
    if (six) routes.push({ dst: '::/0', dev: names.tenantVeth, gateway: six.hostAddr6.split('/')[0] });
    egress = {
      hostLink: { name: names.hostVeth, kind: 'veth', mtu: ctx.underlayMtu, alias: names.marker, addrs: [hostAddr, ...(six ? [canonicalIfAddr(six.hostAddr6)] : [])] },
      hostAddr,
      tenantAddr,
      ...(six ? { hostAddr6: six.hostAddr6, tenantAddr6: six.tenantAddr6 } : {}),
    };
  }
  return {
    names,
    underlayMtu: ctx.underlayMtu,
    overlayMtu: mtu,
    links,
    routes,
    wg: { publicKey: r.publicKey, listenPort: r.listenPort, peers: normalizePeers(r.peers) },
    egress,
    nftTenant: tenantNftSpec(names, d.egress, canonicalCidr(r.subnet), d.egressDevices ?? [], d.policy, subnet6, egress?.hostAddr6, d.bridgeHosts),
    nftHost: egress ? hostNftSpec(names, egress.tenantAddr, ctx.egressBlocked ?? egressBlocked({ addresses: [], routes: [], peerEndpoints: [] }), egress.tenantAddr6) : null,
  };
}
