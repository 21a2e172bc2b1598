// The policy compiler (docs/policy.md): a network's policy (from the signed blueprint) and its members'
// addresses (from the node's plan part) → the rule set one node enforces for the destinations it owns. Pure.
// Enforcement is where the packet arrives (as Nebula checks inbound): a node compiles only the rules whose `to`
// names one of its own destinations (its gateway and WireGuard address, its workloads in the network, the
// access devices it serves), and for each only those destinations.
import { parsePort, parseSelector, type Port } from '../blueprint/policy.ts';
import type { NetworkPolicy } from '../blueprint/types.ts';
import { cidrContains, formatCidr, parseCidr, sizeOf, type Cidr } from '../../topology/cidr.ts';
import { cidr6Contains, cidr6ContainsIp, compareCidr6, formatCidr6, parseCidr6, parseIPv6, type Cidr6 } from '../../topology/cidr6.ts';
import type { PolicyMembers } from './part.ts';

export interface CompiledRule {
  /** The rule's index in the blueprint's list (what diagnose and counters name). */
  index: number;
  /** Sources: CIDRs inside the range, merged (no element inside another), sorted. */
  from: string[];
  /** This node's destinations the rule allows: /32s, sorted. */
  to: string[];
  /** TCP and UDP port ranges ("N" or "N-M", merged, sorted); icmp; any (every protocol and port). */
  tcp: string[];
  udp: string[];
  icmp: boolean;
  any: boolean;
}

export interface CompiledPolicy {
  range: string;
  /** Dual-stack networks: the IPv6 range; `local` and the rules' `from`/`to` then hold IPv6 CIDRs (/128s) too. */
  range6?: string;
  default: 'allow' | 'deny';
  /** Every destination of the network this node owns (what the policy guards here): /32s, sorted. */
  local: string[];
  rules: CompiledRule[];
}

/** Who a selector's names can be: the network's groups by member, from the signed blueprint. */
export interface PolicyGroups {
  /** group → workload names (of this network) and device names with it. */
  workloads: Record<string, string[]>;
  devices: Record<string, string[]>;
}

export interface LocalDestinations {
  /** This node's gateway and WireGuard address (/32); dual-stack: also gateway6 and wgAddress6 (/128). */
  node: string[];
  /** Workloads of this network placed on this node (names). */
  workloads: string[];
  /** Access devices this node serves (names). */
  devices: string[];
}

const byBase = (a: Cidr, b: Cidr) => a.base - b.base || a.prefix - b.prefix;

/** CIDRs with every one contained in another removed, sorted by address: IPv4 first, then IPv6. */
export function mergeCidrs(list: string[]): string[] {
  const parsed = [...new Set(list)].map((t) => parseCidr(t)).filter((c): c is Cidr => c !== null).sort(byBase);
  const out: Cidr[] = [];
  for (const c of parsed) {
    const last = out[out.length - 1];
    if (last && cidrContains(last, c)) continue;
    out.push(c);
  }
  const parsed6 = [...new Set(list)].filter((t) => t.includes(':')).map((t) => parseCidr6(t)).filter((c): c is Cidr6 => c !== null).sort(compareCidr6);
  const out6: Cidr6[] = [];
  for (const c of parsed6) {
    const last = out6[out6.length - 1];
    if (last && cidr6Contains(last, c)) continue;
    out6.push(c);
  }
  return [...out.map(formatCidr), ...out6.map(formatCidr6)];
}

/** Whether CIDR text `outer` contains CIDR text `inner` (same family). */
function contains(outer: string, inner: string): boolean {
  if (outer.includes(':') !== inner.includes(':')) return false;
  if (outer.includes(':')) {
    const [o, i] = [parseCidr6(outer), parseCidr6(inner)];
    return o !== null && i !== null && cidr6Contains(o, i);
  }
  const [o, i] = [parseCidr(outer), parseCidr(inner)];
  return o !== null && i !== null && cidrContains(o, i);
}

function mergePorts(ranges: [number, number][]): string[] {
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: [number, number][] = [];
  for (const [f, t] of ranges) {
    const last = out[out.length - 1];
    if (last && f <= last[1] + 1) last[1] = Math.max(last[1], t);
    else out.push([f, t]);
  }
  return out.map(([f, t]) => (f === t ? String(f) : `${f}-${t}`));
}

/**
 * Compiles a network's policy for one node. Selectors the members do not know resolve to nothing (validation
 * already refused unknown names; a member without an address yet matches nothing rather than everything).
 * Dual-stack (`range6`, and the members' IPv6 maps): every name resolves to its addresses in both families, `any`
 * to both ranges, an IPv6 `cidr:` to what of it lies inside range6; without range6 the IPv4 policy of before.
 */
export function compilePolicy(policy: NetworkPolicy, range: string, members: PolicyMembers, groups: PolicyGroups, local: LocalDestinations, range6?: string): CompiledPolicy {
  const r6 = range6 !== undefined ? parseCidr6(range6) : null;
  const six = <T>(v: T | undefined): T[] => (r6 && v !== undefined ? [v] : []);
  const workload = (w: string) => [members.workloads[w], ...six(members.workloads6?.[w])].filter((x): x is string => !!x);
  const device = (d: string) => [members.devices[d], ...six(members.devices6?.[d])].filter((x): x is string => !!x);
  const localSet = mergeCidrs([...local.node.filter((x) => r6 || !x.includes(':')), ...local.workloads.flatMap(workload), ...local.devices.flatMap(device)]);
  const resolve = (text: string): string[] => {
    const s = parseSelector(text);
    if ('error' in s) return [];
    switch (s.kind) {
      case 'any':
        return [range, ...(r6 ? [formatCidr6(r6)] : [])];
      case 'cidr':
        return [formatCidr(s.cidr)];
      case 'cidr6':
        return r6 && cidr6Contains(r6, s.cidr) ? [formatCidr6(s.cidr)] : r6 && cidr6Contains(s.cidr, r6) ? [formatCidr6(r6)] : [];
      case 'workload':
        return workload(s.name);
      case 'device':
        return device(s.name);
      case 'node':
        return [...(members.nodes[s.name] ?? []), ...(r6 ? (members.nodes6?.[s.name] ?? []) : [])];
      case 'group':
        return [...(groups.workloads[s.name] ?? []).flatMap(workload), ...(groups.devices[s.name] ?? []).flatMap(device)];
    }
  };
  const rules: CompiledRule[] = [];
  policy.rules.forEach((r, index) => {
    const targets = mergeCidrs(r.to.flatMap(resolve));
    const to = localSet.filter((l) => targets.some((t) => contains(t, l)));
    if (!to.length) return;
    const from = mergeCidrs(r.from.flatMap(resolve));
    if (!from.length) return;
    const ports = r.ports.map(parsePort).filter((p): p is Port => !('error' in p));
    const any = ports.some((p) => p.proto === 'any');
    const tcp = any ? [] : mergePorts(ports.flatMap((p) => (p.proto === 'tcp' ? [[p.from, p.to] as [number, number]] : [])));
    const udp = any ? [] : mergePorts(ports.flatMap((p) => (p.proto === 'udp' ? [[p.from, p.to] as [number, number]] : [])));
    const icmp = !any && ports.some((p) => p.proto === 'icmp');
    rules.push({ index, from, to, tcp, udp, icmp, any });
  });
  return { range, ...(r6 ? { range6: formatCidr6(r6) } : {}), default: policy.default, local: localSet, rules };
}

export type Verdict = { allowed: boolean; rule: number | null; reason: string };

type Addr = number | bigint;

function ipToInt(ip: string): Addr | null {
  if (ip.includes(':')) return parseIPv6(ip);
  const c = parseCidr(`${ip}/32`);
  return c ? c.base : null;
}

function inList(list: string[], ip: Addr): boolean {
  return list.some((t) => {
    if (typeof ip === 'bigint') {
      const c6 = t.includes(':') ? parseCidr6(t) : null;
      return c6 !== null && cidr6ContainsIp(c6, ip);
    }
    if (t.includes(':')) return false;
    const c = parseCidr(t)!;
    return ip >= c.base && ip < c.base + sizeOf(c.prefix);
  });
}

function inPorts(list: string[], port: number): boolean {
  return list.some((r) => {
    const [f, t] = r.split('-').map(Number);
    return port >= f && port <= (t ?? f);
  });
}

/**
 * What the compiled rules do with a new flow (the exact model of the nft chain, docs/policy.md): a destination
 * this node does not guard, or a source outside the range, is not the policy's business (allowed); else the
 * first rule that matches allows; else the default.
 */
export function evaluate(p: CompiledPolicy, flow: { src: string; dst: string; proto: 'tcp' | 'udp' | 'icmp'; port?: number }): Verdict {
  const src = ipToInt(flow.src);
  const dst = ipToInt(flow.dst);
  if (src === null || dst === null || typeof src !== typeof dst) return { allowed: false, rule: null, reason: 'not IP addresses of one family' };
  // Link-local (fe80::/10) destinations and sources are guarded and policed like the node's and members' own
  // (pol-not-guarded6, pol-outside6): no rule names them, so the default decides.
  const linkLocal = (ip: Addr) => typeof ip === 'bigint' && ip >> 118n === 0x3fan;
  // Without range6 the IPv4 policy alone exists: IPv6 is not its business (pol-other-family accepts it), but for
  // link-local destinations (the node's bridge too), which the default decides.
  if (typeof dst === 'bigint' && p.range6 === undefined) {
    if (linkLocal(dst)) return { allowed: p.default === 'allow', rule: null, reason: `no rule matches: the default (${p.default})` };
    return { allowed: true, rule: null, reason: 'the policy covers IPv4 only on this network' };
  }
  if (!inList(p.local, dst) && !linkLocal(dst)) return { allowed: true, rule: null, reason: `${flow.dst} is not a destination this node guards` };
  if (!inList([typeof src === 'bigint' ? p.range6! : p.range], src) && !linkLocal(src)) return { allowed: true, rule: null, reason: `${flow.src} is outside the network` };
  for (const r of p.rules) {
    if (!inList(r.from, src) || !inList(r.to, dst)) continue;
    const portOk =
      r.any ||
      (flow.proto === 'icmp' && r.icmp) ||
      (flow.proto === 'tcp' && flow.port !== undefined && inPorts(r.tcp, flow.port)) ||
      (flow.proto === 'udp' && flow.port !== undefined && inPorts(r.udp, flow.port));
    if (portOk) return { allowed: true, rule: r.index, reason: `rule ${r.index} allows it` };
  }
  return { allowed: p.default === 'allow', rule: null, reason: `no rule matches: the default (${p.default})` };
}
