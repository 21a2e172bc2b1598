// The policy compiler (docs/policy.md): a network's policy (from the signed blueprint) and its members'
// addresses (from the node's plan part) → the rule set one node enforces for the destinations it owns. Pure.
// Enforcement is where the packet arrives (as Nebula checks inbound): a node compiles only the rules whose `to`
// names one of its own destinations (its gateway and WireGuard address, its workloads in the network, the
// access devices it serves), and for each only those destinations.
import { parsePort, parseSelector, type Port } from '../blueprint/policy.ts';
import type { NetworkPolicy } from '../blueprint/types.ts';
import { cidrContains, formatCidr, parseCidr, sizeOf, type Cidr } from '../../topology/cidr.ts';
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
  /** This node's gateway and WireGuard address (/32). */
  node: string[];
  /** Workloads of this network placed on this node (names). */
  workloads: string[];
  /** Access devices this node serves (names). */
  devices: string[];
}

const byBase = (a: Cidr, b: Cidr) => a.base - b.base || a.prefix - b.prefix;

/** CIDRs with every one contained in another removed, sorted by address. */
export function mergeCidrs(list: string[]): string[] {
  const parsed = [...new Set(list)].map((t) => parseCidr(t)).filter((c): c is Cidr => c !== null).sort(byBase);
  const out: Cidr[] = [];
  for (const c of parsed) {
    const last = out[out.length - 1];
    if (last && cidrContains(last, c)) continue;
    out.push(c);
  }
  return out.map(formatCidr);
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
 */
export function compilePolicy(policy: NetworkPolicy, range: string, members: PolicyMembers, groups: PolicyGroups, local: LocalDestinations): CompiledPolicy {
  const localSet = mergeCidrs([
    ...local.node,
    ...local.workloads.map((w) => members.workloads[w]).filter((x): x is string => !!x),
    ...local.devices.map((d) => members.devices[d]).filter((x): x is string => !!x),
  ]);
  const resolve = (text: string): string[] => {
    const s = parseSelector(text);
    if ('error' in s) return [];
    switch (s.kind) {
      case 'any':
        return [range];
      case 'cidr':
        return [formatCidr(s.cidr)];
      case 'workload':
        return members.workloads[s.name] ? [members.workloads[s.name]] : [];
      case 'device':
        return members.devices[s.name] ? [members.devices[s.name]] : [];
      case 'node':
        return members.nodes[s.name] ?? [];
      case 'group':
        return [...(groups.workloads[s.name] ?? []).map((w) => members.workloads[w]), ...(groups.devices[s.name] ?? []).map((d) => members.devices[d])].filter((x): x is string => !!x);
    }
  };
  const localCidrs = localSet.map((t) => parseCidr(t)!);
  const rules: CompiledRule[] = [];
  policy.rules.forEach((r, index) => {
    const targets = mergeCidrs(r.to.flatMap(resolve)).map((t) => parseCidr(t)!);
    const to = localCidrs.filter((l) => targets.some((t) => cidrContains(t, l))).map(formatCidr);
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
  return { range, default: policy.default, local: localSet, rules };
}

export type Verdict = { allowed: boolean; rule: number | null; reason: string };

function ipToInt(ip: string): number | null {
  const c = parseCidr(`${ip}/32`);
  return c ? c.base : null;
}

function inList(list: string[], ip: number): boolean {
  return list.some((t) => {
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
  if (src === null || dst === null) return { allowed: false, rule: null, reason: 'not IPv4 addresses' };
  if (!inList(p.local, dst)) return { allowed: true, rule: null, reason: `${flow.dst} is not a destination this node guards` };
  if (!inList([p.range], src)) return { allowed: true, rule: null, reason: `${flow.src} is outside the network` };
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
