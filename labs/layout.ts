// Where everything of a lab lives: namespace names, link names, underlay addresses. Pure.
// Addresses and indexes are stable across `lab up` runs: what a previous layout assigned is kept, new members
// take the lowest free slot. Only documentation ranges are used: 203.0.113.0/24 is the "internet",
// 198.51.100.0/24 is split into /27 LANs, one per NAT router.
// An IPv6 underlay (`underlay: ipv6 | dual`) mirrors the IPv4 layout into 2001:db8::/32 (documentation, never
// inside a tenant's fc00::/7): the IPv4 subnet a.b.c.d/p becomes 2001:db8:<a.b>:<c.d>::/64 and host offset h
// its host h (mirror6), so IPv6 addresses are as stable as the IPv4 slots they mirror.
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
/** Prefix length of every IPv6 underlay link (the internet and each NAT LAN). */
export const UNDERLAY6_PREFIX = 64;
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
  /** IPv6 underlay (`underlay: ipv6 | dual`): the address mirroring `address` (/64) and its gateway. With
   *  `underlay: ipv6` only these are configured (`address` is then the slot it mirrors). */
  address6?: string;
  gateway6?: string;
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
  /** IPv6 underlay: WAN address, LAN /64 and LAN gateway, mirroring the IPv4 ones (NAT66: masquerade). */
  wanAddress6?: string;
  lan6?: string;
  lanGateway6?: string;
}

export interface Layout {
  lab: string;
  /** The underlay's families: absent = IPv4 only (as before the option existed); ipv6: IPv6 only; dual: both. */
  underlay?: 'ipv6' | 'dual';
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
  const layout: Layout = { lab, internetNs: internetNs(lab), nats, nodes, devices };
  const underlay = spec.underlay ?? 'ipv4';
  return underlay === 'ipv4' ? layout : withUnderlay6(layout, underlay);
}

/**
 * The IPv6 address mirroring an IPv4 address of a subnet /prefix: 2001:db8:<network's upper 16 bits>:<lower
 * 16 bits>::<host offset> (hex), e.g. 203.0.113.5 in /24 → 2001:db8:cb00:7100::5. Pure.
 */
export function mirror6(ipv4: string, prefix: number): string {
  const n = parseIPv4(ipv4);
  if (n === null || prefix < 1 || prefix > 32) throw new TypeError(`not an IPv4 address in a /${prefix}: ${ipv4}`);
  const mask = prefix === 32 ? 0xffffffff : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (n & mask) >>> 0;
  const off = (n - net) >>> 0;
  const hex = (v: number) => v.toString(16);
  const hostPart = off === 0 ? '' : off > 0xffff ? `${hex(off >>> 16)}:${hex(off & 0xffff)}` : hex(off);
  return `2001:db8:${hex(net >>> 16)}:${hex(net & 0xffff)}::${hostPart}`;
}

/** The /64 mirroring an IPv4 subnet ("198.51.100.32/27" → "2001:db8:c633:6420::/64"). */
export function mirrorSubnet6(cidr: string): string {
  const [ip, p] = cidr.split('/');
  return `${mirror6(ip, Number(p))}/${UNDERLAY6_PREFIX}`;
}

export const INTERNET6 = mirrorSubnet6(INTERNET);
export const INTERNET6_GW = mirror6(INTERNET_GW, 24);

/** Adds the IPv6 underlay to a layout (or refreshes it after an IPv4 address moved: a roam). Pure. */
export function withUnderlay6(layout: Layout, underlay: 'ipv6' | 'dual'): Layout {
  const host = (h: HostLayout): HostLayout => {
    const nat = h.attach.kind === 'nat' ? layout.nats.find((n) => n.name === (h.attach as { nat: string }).nat) : undefined;
    return { ...h, address6: mirror6(h.address, h.prefix), gateway6: nat ? mirror6(nat.lanGateway, h.prefix) : INTERNET6_GW };
  };
  const nats = layout.nats.map((n) => ({ ...n, wanAddress6: mirror6(n.wanAddress, 24), lan6: mirrorSubnet6(n.lan), lanGateway6: mirror6(n.lanGateway, Number(n.lan.split('/')[1])) }));
  const next: Layout = { ...layout, underlay, nats };
  return { ...next, nodes: layout.nodes.map(host), devices: layout.devices.map(host) };
}

/** Which families a layout's underlay links carry. */
export function underlayFamilies(layout: Pick<Layout, 'underlay'>): { v4: boolean; v6: boolean } {
  return { v4: layout.underlay !== 'ipv6', v6: layout.underlay === 'ipv6' || layout.underlay === 'dual' };
}

/**
 * The addresses a public node is dialled at (its inventory endpoints; the planner dials the first): IPv4, or its
 * IPv6 address with `underlay: ipv6`, or both with `dual` (IPv4 first: peers dial IPv4). Hidden: none.
 */
export function hostEndpoints(host: HostLayout, underlay: Layout['underlay']): string[] {
  if (host.attach.kind !== 'internet') return [];
  if (underlay === 'ipv6') return [host.address6!];
  if (underlay === 'dual') return [host.address, host.address6!];
  return [host.address];
}

export function hostByName(layout: Layout, name: string): HostLayout | undefined {
  return layout.nodes.find((n) => n.name === name) ?? layout.devices.find((d) => d.name === name);
}
