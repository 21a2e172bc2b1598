// Names inside a tenant network (docs/dns.md): the records a network's resolver serves, from the plan only.
//   <workload>.<network> and <workload>   a workload's ip (A) and ip6 (AAAA)
//   <device>.<network>                    an access device's address and address6
//   <node>.<network>                      a node's resource: its gateway and gateway6
// A node part carries its network's names (NodeNetworkPart.names); the agent checks them against the signed
// blueprint (namesProblems) before it serves them: every name is a workload, device or node of that network in
// the blueprint, every address lies in the network's ranges. Nothing of another network is ever a record here.
// Pure: no I/O.
import { isIPv4 } from 'node:net';
import type { NetworkSpec, WorkloadSpec } from '../blueprint/types.ts';
import type { Problem } from '../errors.ts';
import { cidrContainsIp, parseCidr, parseIPv4 } from '../../topology/cidr.ts';
import { canonicalIPv6, cidr6ContainsIp, parseCidr6, parseIPv6 } from '../../topology/cidr6.ts';
import type { AccessDevice, NetworkPlan, Plan, Resource } from './types.ts';

/** One name's addresses: IPv4 always, IPv6 on a dual-stack network. */
export interface NameAddrs {
  ip: string;
  ip6?: string;
}

/** The names a network serves, by kind, each keyed by its DNS label. */
export interface NetworkNames {
  workloads: Record<string, NameAddrs>;
  devices: Record<string, NameAddrs>;
  nodes: Record<string, NameAddrs>;
}

export interface NameRecord {
  /** "db.net" or "db". */
  name: string;
  type: 'A' | 'AAAA';
  address: string;
  kind: 'workload' | 'device' | 'node';
}

/** A DNS label (what the blueprint accepts for every name): lower case, digits, inner hyphens, 1–63 characters. */
export const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** At most this many names per network (the blueprint's list limit, 10 000, for each of workloads, devices, nodes). */
export const MAX_NAMES = 30_000;

const host = (a: string) => a.split('/')[0];

function addrs(ip: string, ip6: string | undefined): NameAddrs {
  return ip6 !== undefined ? { ip: host(ip), ip6: host(ip6) } : { ip: host(ip) };
}

/** A network's names, from the plan: its workloads, its access devices and its nodes' gateways. Keys sorted. */
export function networkNames(
  plan: Pick<Plan, 'workloads'>,
  n: Pick<NetworkPlan, 'name'> & { access: Pick<AccessDevice, 'name' | 'address' | 'address6'>[]; resources: Pick<Resource, 'node' | 'gateway' | 'gateway6'>[] },
): NetworkNames {
  const sorted = <T>(pairs: [string, T][]) => Object.fromEntries(pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
  return {
    workloads: sorted(plan.workloads.filter((w) => w.network === n.name).map((w) => [w.name, addrs(w.ip, w.ip6)])),
    devices: sorted(n.access.map((d) => [d.name, addrs(d.address, d.address6)])),
    nodes: sorted(n.resources.map((r) => [r.node, addrs(r.gateway, r.gateway6)])),
  };
}

/** Own entries of a record object (never its prototype's), or [] when it is not one. */
function entries(v: unknown): [string, unknown][] {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.entries(v) : [];
}

/**
 * The records a network serves, in the hosts file's order: workloads, then devices, then nodes, each by name; a
 * name taken by an earlier kind is not served again (a workload named like a node keeps the name). Defensive: a
 * label or address that is not valid is left out (the agent refuses such parts before; see namesProblems).
 */
export function nameRecords(network: string, names: NetworkNames): NameRecord[] {
  const out: NameRecord[] = [];
  if (!DNS_LABEL.test(network)) return out;
  const taken = new Set<string>();
  const kinds = [
    ['workload', names.workloads],
    ['device', names.devices],
    ['node', names.nodes],
  ] as const;
  for (const [kind, map] of kinds) {
    for (const [label, a] of entries(map).sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
      if (!DNS_LABEL.test(label) || typeof a !== 'object' || a === null) continue;
      const { ip, ip6 } = a as Partial<NameAddrs>;
      const v4 = typeof ip === 'string' && isIPv4(ip) ? ip : null;
      const v6 = typeof ip6 === 'string' ? canonicalIPv6(ip6) : null;
      const fq = [`${label}.${network}`, ...(kind === 'workload' ? [label] : [])].filter((x) => !taken.has(x));
      for (const x of fq) taken.add(x);
      for (const name of fq) {
        if (v4) out.push({ name, type: 'A', address: v4, kind });
        if (v6) out.push({ name, type: 'AAAA', address: v6, kind });
      }
      if (out.length > 4 * MAX_NAMES) return out;
    }
  }
  return out;
}

/** Where each name and address must lie: the network's IPv4 range and, when dual-stack, its IPv6 range. */
export interface NameBounds {
  ipRange: string;
  /** null: IPv4-only (no name may carry ip6). */
  ipRange6: string | null;
}

/**
 * Problems with a part's names for a network of the signed blueprint: the shape, the count, a name that is not a
 * workload of that network, one of its access devices or one of its nodes, an address outside its ranges.
 * `placed`: workloads whose addresses are known good (their names must say the same). Never throws.
 */
export function namesProblems(
  spec: Pick<NetworkSpec, 'name' | 'nodes' | 'access'>,
  workloads: Pick<WorkloadSpec, 'name' | 'network'>[],
  bounds: NameBounds,
  names: unknown,
  path: string,
  placed: { name: string; network: string; ip: string; ip6?: string }[] = [],
): Problem[] {
  const out: Problem[] = [];
  const bad = (p: string, message: string) => out.push({ code: 'E_PART_NAMES', path: p, message, hint: 're-plan with this version of zmesh and send this node its new part' });
  if (typeof names !== 'object' || names === null || Array.isArray(names)) {
    bad(path, 'the part must carry the network\'s names (workloads, devices, nodes)');
    return out;
  }
  const n = names as Record<string, unknown>;
  const range = parseCidr(bounds.ipRange);
  const range6 = bounds.ipRange6 === null ? null : parseCidr6(bounds.ipRange6);
  const allowed = {
    workloads: new Set(workloads.filter((w) => w.network.name === spec.name).map((w) => w.name)),
    devices: new Set(spec.access.map((a) => a.name)),
    nodes: new Set(spec.nodes),
  };
  const own = new Map(placed.filter((w) => w.network === spec.name).map((w) => [w.name, w]));
  let total = 0;
  for (const kind of ['workloads', 'devices', 'nodes'] as const) {
    const map = n[kind];
    const at = `${path}.${kind}`;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      bad(at, `${kind} must be an object of name → addresses`);
      continue;
    }
    const list = Object.entries(map);
    total += list.length;
    if (total > MAX_NAMES) {
      bad(at, `more than ${MAX_NAMES} names`);
      return out;
    }
    for (const [label, a] of list) {
      const p = `${at}.${label.slice(0, 64)}`;
      if (!DNS_LABEL.test(label) || !allowed[kind].has(label)) {
        bad(p, `${JSON.stringify(label.slice(0, 64))} is not one of the ${kind} of network ${spec.name} in the blueprint`);
        continue;
      }
      const { ip, ip6, ...rest } = (typeof a === 'object' && a !== null ? a : {}) as Record<string, unknown>;
      const v4 = typeof ip === 'string' ? parseIPv4(ip) : null;
      if (Object.keys(rest).length || v4 === null || range === null || !cidrContainsIp(range, v4)) {
        bad(p, `the IPv4 address must lie inside ${bounds.ipRange}`);
        continue;
      }
      if (ip6 !== undefined) {
        const v6 = typeof ip6 === 'string' ? parseIPv6(ip6) : null;
        if (v6 === null || range6 === null || !cidr6ContainsIp(range6, v6)) {
          bad(p, range6 === null ? 'the network is IPv4-only: no ip6' : `the IPv6 address must lie inside ${bounds.ipRange6}`);
          continue;
        }
      }
      const w = kind === 'workloads' ? own.get(label) : undefined;
      if (w && (w.ip !== ip || (w.ip6 ?? null) !== (typeof ip6 === 'string' ? canonicalIPv6(ip6) : null))) {
        bad(p, `workload ${label} runs on this node at ${w.ip}${w.ip6 ? ` and ${w.ip6}` : ''}, its name says otherwise`);
      }
    }
  }
  return out;
}
