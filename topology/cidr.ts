// IPv4 address and CIDR arithmetic on unsigned 32-bit integers. Pure and allocation-light: the planner calls
// these for thousands of nodes.
import { isIPv6 } from 'node:net';

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  prefix: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses dotted-quad IPv4 (no leading zeros); null when malformed. */
export function parseIPv4(text: string): number | null {
  if (typeof text !== 'string') return null;
  const m = IPV4.exec(text);
  if (!m) return null;
  return ((+m[1] << 24) >>> 0) + (+m[2] << 16) + (+m[3] << 8) + +m[4];
}

export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function sizeOf(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** Parses "a.b.c.d/p". With strict, host bits must be zero. Null when malformed. */
export function parseCidr(text: string, strict = true): Cidr | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = parseIPv4(text.slice(0, slash));
  const ptext = text.slice(slash + 1);
  if (addr === null || !/^(3[0-2]|[12]?\d)$/.test(ptext)) return null;
  const prefix = +ptext;
  const base = (addr & maskOf(prefix)) >>> 0;
  if (strict && base !== addr) return null;
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.base)}/${c.prefix}`;
}

export function cidrContainsIp(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.base;
}

/** True when inner lies entirely inside outer. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContainsIp(outer, inner.base);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** The i-th subnet of length `prefix` inside `range`. */
export function nthSubnet(range: Cidr, prefix: number, i: number): Cidr {
  return { base: (range.base + i * sizeOf(prefix)) >>> 0, prefix };
}

/** Index of `sub` among the subnets of its length inside `range`. */
export function subnetIndex(range: Cidr, sub: Cidr): number {
  return (sub.base - range.base) / sizeOf(sub.prefix);
}

/** First usable host (gateway) and last usable host of a subnet (prefix ≤ 30). */
export function firstHost(c: Cidr): number {
  return c.base + 1;
}
export function lastHost(c: Cidr): number {
  return c.base + sizeOf(c.prefix) - 2;
}

/**
 * `outer` minus `hole`, as the smallest sorted list of CIDRs: at each level from outer's prefix down to
 * hole's, the half that does not hold the hole. E.g. 10.0.0.0/16 minus 10.0.3.0/24 = 8 CIDRs.
 */
export function cidrExclude(outer: Cidr, hole: Cidr): Cidr[] {
  if (!cidrContains(outer, hole)) return [outer];
  const out: Cidr[] = [];
  for (let p = outer.prefix + 1; p <= hole.prefix; p++) {
    const holeHalf = (hole.base & maskOf(p)) >>> 0;
    const sibling = (holeHalf ^ (2 ** (32 - p))) >>> 0;
    out.push({ base: sibling, prefix: p });
  }
  return out.sort((a, b) => a.base - b.base);
}

/** Formats an endpoint "ip:port", with IPv6 in brackets. */
export function formatEndpoint(ip: string, port: number): string {
  return isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`;
}
