// IPv6 address and CIDR arithmetic on 128-bit bigints: parse (every RFC 4291 text form, embedded IPv4 too) and
// format (RFC 5952 canonical text: lower case, no leading zeros, the longest run of two or more zero groups as
// "::", the first one on a tie), contains, overlap, exclude, the n-th subnet. Pure; the planner calls these for
// every node of a dual-stack network (topology/cidr.ts is the IPv4 twin).
import { isIPv6 } from 'node:net';
import { parseIPv4 } from './cidr.ts';

export interface Cidr6 {
  /** Network address as an unsigned 128-bit integer. */
  base: bigint;
  prefix: number;
}

const ALL = (1n << 128n) - 1n;

/** Parses an IPv6 address (no zone, no brackets); null when malformed. */
export function parseIPv6(text: string): bigint | null {
  if (typeof text !== 'string' || text.length > 45 || !isIPv6(text) || text.includes('%')) return null;
  let s = text;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    // Embedded IPv4 ("::ffff:192.0.2.1"): its two groups in hex.
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const dbl = s.indexOf('::');
  const parts = (x: string) => (x === '' ? [] : x.split(':'));
  let groups: string[];
  const want = 8;
  if (dbl >= 0) {
    const head = parts(s.slice(0, dbl));
    const rest = parts(s.slice(dbl + 2));
    const zeros = want - head.length - rest.length;
    if (zeros < 1) return null;
    groups = [...head, ...new Array<string>(zeros).fill('0'), ...rest];
  } else groups = parts(s);
  if (groups.length !== want) return null;
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

/** RFC 5952 canonical text of a 128-bit address. */
export function formatIPv6(n: bigint): string {
  // One BigInt → hex conversion, then plain string work (the planner formats a few addresses per member).
  const hex32 = n.toString(16).padStart(32, '0');
  const g: string[] = new Array<string>(8);
  for (let i = 0; i < 8; i++) {
    let j = i * 4;
    const end = j + 3;
    while (j < end && hex32.charCodeAt(j) === 48) j++;
    g[i] = hex32.slice(j, i * 4 + 4);
  }
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestAt < 0) return g.join(':');
  return `${g.slice(0, bestAt).join(':')}::${g.slice(bestAt + bestLen).join(':')}`;
}

export function mask6(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL;
}

export function size6(prefix: number): bigint {
  return 1n << BigInt(128 - prefix);
}

/** Parses "addr/p". With strict, host bits must be zero. Null when malformed. */
export function parseCidr6(text: string, strict = true): Cidr6 | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = parseIPv6(text.slice(0, slash));
  const ptext = text.slice(slash + 1);
  if (addr === null || !/^(12[0-8]|1[01]\d|[1-9]?\d)$/.test(ptext)) return null;
  const prefix = +ptext;
  const base = addr & mask6(prefix);
  if (strict && base !== addr) return null;
  return { base, prefix };
}

export function formatCidr6(c: Cidr6): string {
  return `${formatIPv6(c.base)}/${c.prefix}`;
}

/** The canonical (RFC 5952) text of an IPv6 address or CIDR text, or null when it is not one. */
export function canonicalIPv6(text: string): string | null {
  const n = parseIPv6(text);
  return n === null ? null : formatIPv6(n);
}

export function cidr6ContainsIp(c: Cidr6, ip: bigint): boolean {
  return (ip & mask6(c.prefix)) === c.base;
}

/** True when inner lies entirely inside outer. */
export function cidr6Contains(outer: Cidr6, inner: Cidr6): boolean {
  return inner.prefix >= outer.prefix && cidr6ContainsIp(outer, inner.base);
}

export function cidrs6Overlap(a: Cidr6, b: Cidr6): boolean {
  return cidr6Contains(a, b) || cidr6Contains(b, a);
}

/** The i-th subnet of length `prefix` inside `range`. */
export function nthSubnet6(range: Cidr6, prefix: number, i: number): Cidr6 {
  return { base: range.base + BigInt(i) * size6(prefix), prefix };
}

/** Index of `sub` among the subnets of its length inside `range`. */
export function subnetIndex6(range: Cidr6, sub: Cidr6): number {
  return Number((sub.base - range.base) / size6(sub.prefix));
}

/** `outer` minus `hole`, as the smallest list of CIDRs sorted by address (cidrExclude's twin). */
export function cidr6Exclude(outer: Cidr6, hole: Cidr6): Cidr6[] {
  if (!cidr6Contains(outer, hole)) return [outer];
  const out: Cidr6[] = [];
  for (let p = outer.prefix + 1; p <= hole.prefix; p++) {
    const holeHalf = hole.base & mask6(p);
    out.push({ base: holeHalf ^ (1n << BigInt(128 - p)), prefix: p });
  }
  return out.sort(compareCidr6);
}

export function compareCidr6(a: Cidr6, b: Cidr6): number {
  return a.base < b.base ? -1 : a.base > b.base ? 1 : a.prefix - b.prefix;
}

/** fc00::/7, the unique local addresses (RFC 4193). */
export const ULA: Cidr6 = { base: 0xfcn << 120n, prefix: 7 };

/** Sorted by base; the first overlapping pair's indices in the input, or null (findOverlap's twin). */
export function findOverlap6(cidrs: Cidr6[]): [number, number] | null {
  const idx = cidrs.map((c, i) => ({ c, i })).sort((a, b) => compareCidr6(a.c, b.c));
  let maxEnd = -1n;
  let maxAt = -1;
  for (const { c, i } of idx) {
    if (c.base <= maxEnd) return [maxAt, i];
    const end = c.base + size6(c.prefix) - 1n;
    if (end > maxEnd) {
      maxEnd = end;
      maxAt = i;
    }
  }
  return null;
}
