// Where everything of a lab lives: namespace names, link names, underlay addresses. Pure.
// Addresses and indexes are stable across `lab up` runs: what a previous layout assigned is kept, new members
// take the lowest free slot. Only documentation ranges are used: 203.0.113.0/24 is the "internet",
// 198.51.100.0/24 is split into /27 LANs, one per NAT router.
import { formatIPv4, parseCidr, parseIPv4, type Cidr } from '../topology/cidr.ts';
import type { LabSpec, Shaping } from './spec.ts';

/** Every namespace of every lab starts with this; `lab down --all` finds leftovers by it. */
export const LAB_NS_PREFIX = 'zl-';
/** Lab names are DNS labels, so "_" ends the lab part unambiguously. */
export function labPrefix(lab: string): string {
  return `${LAB_NS_PREFIX}${lab}_`;
}
export const INTERNET = '203.0.113.0/24';
export const INTERNET_GW = '203.0.113.1';
export const NAT_POOL = '198.51.100.0/24';
export const NAT_LAN_PREFIX = 27;
/** Bridge in the internet namespace, bridge on a NAT router's LAN side, WAN link of a NAT router. */
export const INET_BRIDGE = 'inet';
export const LAN_BRIDGE = 'lan';
export const WAN_LINK = 'wan';
/** The underlay interface inside a node or device namespace. */
export const UNDERLAY_IF = 'eth0';
/** TCP port of the echo service in every tenant namespace and device. */
export const ECHO_PORT = 7777;

export type Attach = { kind: 'internet' } | { kind: 'nat'; nat: string };

export interface HostLayout {
  /** node or device name. */
  name: string;
  role: 'node' | 'device';
  index: number;
  ns: string;
  attach: Attach;
  /** Underlay address and prefix length. */
  address: string;
  prefix: number;
  gateway: string;
  /** The namespace the other end of the underlay veth sits in (internet or NAT router) and its name there. */
  upstreamNs: string;
  port: string;
  shaping: Shaping;
}

export interface NatLayout {
  name: string;
  index: number;
  ns: string;
  wanAddress: string;
  /** Name of the WAN veth's peer in the internet namespace. */
  port: string;
  lan: string;
  lanGateway: string;
  /** cone or symmetric (labs/underlay.ts natRuleset). */
  type: 'cone' | 'symmetric';
}

export interface Layout {
  lab: string;
  internetNs: string;
  nats: NatLayout[];
  nodes: HostLayout[];
  devices: HostLayout[];
}

export function nodeNs(lab: string, node: string): string {
  return `${labPrefix(lab)}n-${node}`;
}
export function deviceNs(lab: string, device: string): string {
  return `${labPrefix(lab)}d-${device}`;
}
export function natNs(lab: string, nat: string): string {
  return `${labPrefix(lab)}r-${nat}`;
}
export function internetNs(lab: string): string {
  return `${labPrefix(lab)}inet`;
}

/** Lowest integer ≥ from not in used. */
function lowestFree(used: Set<number>, from: number, max: number): number {
  for (let i = from; i <= max; i++) if (!used.has(i)) return i;
  throw new Error(`no free slot from ${from} to ${max}`);
}

/** Assigns indexes, addresses and names; keeps what `previous` assigned to members that still fit. */
export function layoutFor(spec: LabSpec, previous?: Layout | null): Layout {
  const lab = spec.name;
  const prev = previous && previous.lab === lab ? previous : null;
  const inet = parseCidr(INTERNET)!;

  // Indexes (they name links): kept members keep theirs, newcomers take the lowest free.
  const usedIdx = new Set<number>();
  const prevIdx = new Map<string, number>();
  const keep = (key: string, p: { index: number } | undefined) => {
    if (p && !usedIdx.has(p.index)) {
      usedIdx.add(p.index);
      prevIdx.set(key, p.index);
    }
  };
  for (const n of spec.nats) keep(`nat:${n.name}`, prev?.nats.find((x) => x.name === n.name));
  for (const n of spec.nodes) keep(`node:${n.name}`, prev?.nodes.find((x) => x.name === n.name));
  for (const d of spec.devices) keep(`device:${d.name}`, prev?.devices.find((x) => x.name === d.name));
  const indexOf = (key: string) => {
    const k = prevIdx.get(key);
    if (k !== undefined) return k;
    const i = lowestFree(usedIdx, 1, 9999);
    usedIdx.add(i);
    return i;
  };

  // Addresses: kept first (so a newcomer never takes an address someone keeps), then the lowest free.
  const usedInet = new Set<number>([0, 1, 255]);
  const pool = parseCidr(NAT_POOL)!;
  const slots = 2 ** (NAT_LAN_PREFIX - pool.prefix);
  const lanOf = (i: number) => `${formatIPv4(pool.base + i * 2 ** (32 - NAT_LAN_PREFIX))}/${NAT_LAN_PREFIX}`;
  const offsetIn = (range: Cidr, ip: string | undefined): number | null => {
    const n = ip ? parseIPv4(ip) : null;
    if (n === null) return null;
    const off = n - range.base;
    return off >= 2 && off < 2 ** (32 - range.prefix) - 1 ? off : null;
  };
  const keptInet = new Map<string, number>();
  for (const n of spec.nats) {
    const off = offsetIn(inet, prev?.nats.find((x) => x.name === n.name)?.wanAddress);
    if (off !== null && !usedInet.has(off)) {
      usedInet.add(off);
      keptInet.set(`nat:${n.name}`, off);
    }
  }
  const hostsIn = (role: 'node' | 'device') => (role === 'node' ? spec.nodes : spec.devices);
  for (const role of ['node', 'device'] as const) {
    for (const h of hostsIn(role)) {
      const p = (role === 'node' ? prev?.nodes : prev?.devices)?.find((x) => x.name === h.name);
      if (!h.nat && p?.attach.kind === 'internet') {
        const off = offsetIn(inet, p.address);
        if (off !== null && !usedInet.has(off)) {
          usedInet.add(off);
          keptInet.set(`${role}:${h.name}`, off);
        }
      }
    }
  }
  const inetAddr = (key: string) => {
    let off = keptInet.get(key);
    if (off === undefined) {
      off = lowestFree(usedInet, 2, 254);
      usedInet.add(off);
    }
    return formatIPv4(inet.base + off);
  };

  const usedLans = new Set<string>(spec.nats.map((n) => n.lan).filter((l): l is string => Boolean(l)));
  for (const n of spec.nats) {
    const p = prev?.nats.find((x) => x.name === n.name);
    if (!n.lan && p && !usedLans.has(p.lan)) usedLans.add(p.lan);
  }
  const nats: NatLayout[] = spec.nats.map((n) => {
    const p = prev?.nats.find((x) => x.name === n.name);
    let lan = n.lan ?? (p && p.lan ? p.lan : null);
    if (!lan || (!n.lan && spec.nats.some((o) => o !== n && o.lan === lan))) {
      let i = 0;
      while (i < slots && usedLans.has(lanOf(i))) i++;
      if (i >= slots) throw new Error(`more than ${slots} NAT routers need an explicit lan range`);
      lan = lanOf(i);
      usedLans.add(lan);
    }
    const idx = indexOf(`nat:${n.name}`);
    return { name: n.name, index: idx, ns: natNs(lab, n.name), wanAddress: inetAddr(`nat:${n.name}`), port: `rt${idx}`, lan, lanGateway: formatIPv4(parseCidr(lan)!.base + 1), type: n.type ?? 'cone' };
  });
  const natByName = new Map(nats.map((n) => [n.name, n]));
  const usedLan = new Map<string, Set<number>>(nats.map((n) => [n.name, new Set([0, 1])]));
  const keptLan = new Map<string, number>();
  for (const role of ['node', 'device'] as const) {
    for (const h of hostsIn(role)) {
      const p = (role === 'node' ? prev?.nodes : prev?.devices)?.find((x) => x.name === h.name);
      if (h.nat && p?.attach.kind === 'nat' && p.attach.nat === h.nat) {
        const off = offsetIn(parseCidr(natByName.get(h.nat)!.lan)!, p.address);
        const used = usedLan.get(h.nat)!;
        if (off !== null && !used.has(off)) {
          used.add(off);
          keptLan.set(`${role}:${h.name}`, off);
        }
      }
    }
  }

  const host = (role: 'node' | 'device', h: { name: string; nat?: string; shaping?: Shaping }): HostLayout => {
    const key = `${role}:${h.name}`;
    const idx = indexOf(key);
    const nat = h.nat ? natByName.get(h.nat)! : null;
    let address: string;
    if (nat) {
      const range = parseCidr(nat.lan)!;
      let off = keptLan.get(key);
      if (off === undefined) {
        const used = usedLan.get(nat.name)!;
        off = lowestFree(used, 2, 2 ** (32 - range.prefix) - 2);
        used.add(off);
      }
      address = formatIPv4(range.base + off);
    } else address = inetAddr(key);
    return {
      name: h.name,
      role,
      index: idx,
      ns: role === 'node' ? nodeNs(lab, h.name) : deviceNs(lab, h.name),
      attach: nat ? { kind: 'nat', nat: nat.name } : { kind: 'internet' },
      address,
      prefix: nat ? parseCidr(nat.lan)!.prefix : inet.prefix,
      gateway: nat ? nat.lanGateway : INTERNET_GW,
      upstreamNs: nat ? nat.ns : internetNs(lab),
      port: `${role === 'node' ? 'nd' : 'dv'}${idx}`,
      shaping: h.shaping ?? {},
    };
  };
  const nodes = spec.nodes.map((n) => host('node', n));
  const devices = spec.devices.map((d) => host('device', { name: d.name, nat: d.nat }));
  return { lab, internetNs: internetNs(lab), nats, nodes, devices };
}

export function hostByName(layout: Layout, name: string): HostLayout | undefined {
  return layout.nodes.find((n) => n.name === name) ?? layout.devices.find((d) => d.name === name);
}
