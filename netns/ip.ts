// Small, pure IPv4/IPv6 helpers: parse, format (RFC 5952 for IPv6, the way iproute2 and wg print), mask.
import { createHash } from 'node:crypto';

export type Family = 4 | 6;

export interface IpAddress {
  family: Family;
  value: bigint;
}

export interface Cidr {
  family: Family;
  /** The address as written (host bits kept). */
  value: bigint;
  prefix: number;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(s: string): bigint | null {
  const m = V4.exec(s);
  if (!m) return null;
  let v = 0n;
  for (let i = 1; i <= 4; i++) {
    if (m[i].length > 1 && m[i].startsWith('0')) return null;
    const n = Number(m[i]);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return null;
  let tail4: bigint | null = null;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === null) return null;
    text = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0]);
  const rest = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (!head || !rest) return null;
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return null;
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  if (tail4 !== null) v = (v & ~0xffffffffn) | tail4;
  return v;
}

export function parseIp(s: string): IpAddress | null {
  if (typeof s !== 'string') return null;
  const v4 = parseV4(s);
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = parseV6(s);
  if (v6 !== null) return { family: 6, value: v6 };
  return null;
}

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
}

function formatV6(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // IPv4-mapped addresses print as ::ffff:a.b.c.d (as inet_ntop does).
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${formatV4(v & 0xffffffffn)}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatIp(a: IpAddress): string {
  return a.family === 4 ? formatV4(a.value) : formatV6(a.value);
}

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** Parses "a.b.c.d/n", "v6/n", or a bare address (full-length prefix). Returns null when malformed. */
export function parseCidr(s: string): Cidr | null {
  if (typeof s !== 'string') return null;
  const slash = s.indexOf('/');
  const addr = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return null;
  let prefix = bits(addr.family);
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > bits(addr.family)) return null;
  }
  return { family: addr.family, value: addr.value, prefix };
}

export function maskOf(family: Family, prefix: number): bigint {
  const total = BigInt(bits(family));
  const all = (1n << total) - 1n;
  return prefix === 0 ? 0n : (all >> (total - BigInt(prefix))) << (total - BigInt(prefix));
}

export function networkOf(c: Cidr): Cidr {
  return { family: c.family, value: c.value & maskOf(c.family, c.prefix), prefix: c.prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.prefix}`;
}

// The driver canonicalizes thousands of the same strings on every apply (1,000 peers' allowed IPs and
// endpoints): a fast IPv4 path and a bounded memo keep a no-op apply cheap.
const MEMO_MAX = 100_000;
/** A pure function of a string, memoized (at most `max` entries, then cleared). A throw is not kept. */
export function memo<T>(fn: (s: string) => T, max = MEMO_MAX): (s: string) => T {
  const cache = new Map<string, T>();
  return (s: string) => {
    let v = cache.get(s);
    if (v === undefined && !cache.has(s)) {
      v = fn(s);
      if (cache.size >= max) cache.clear();
      cache.set(s, v);
    }
    return v as T;
  };
}

const V4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

function canonicalV4(s: string): string | null | undefined {
  const m = V4_CIDR.exec(s);
  if (!m) return undefined; // not IPv4: take the general path
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    if (m[i].length > 1 && m[i][0] === '0') return null;
    const n = Number(m[i]);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  const prefix = m[5] === undefined ? 32 : Number(m[5]);
  if (prefix > 32 || (m[5] !== undefined && m[5].length > 1 && m[5][0] === '0')) return null;
  const masked = prefix === 0 ? 0 : (v & (0xffffffff << (32 - prefix))) >>> 0;
  return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${prefix}`;
}

const canonicalCidrOrNull = memo((s: string): string | null => {
  if (typeof s !== 'string') return null;
  const fast = canonicalV4(s);
  if (fast !== undefined) return fast;
  const c = parseCidr(s);
  return c ? formatCidr(networkOf(c)) : null;
});

/** The canonical form WireGuard and iproute2 print: host bits cleared, RFC 5952. Throws on garbage. */
export function canonicalCidr(s: string): string {
  const c = canonicalCidrOrNull(s);
  if (c === null) throw new TypeError(`not a CIDR: ${JSON.stringify(s)}`);
  return c;
}

/** Whether a string is a CIDR (or a bare address). */
export function isCidr(s: string): boolean {
  return canonicalCidrOrNull(s) !== null;
}

/** An interface address as iproute2 prints it ("10.1.3.1/24"): host bits kept, canonical text. */
export function canonicalIfAddr(s: string): string {
  const c = parseCidr(s);
  if (!c) throw new TypeError(`not an address: ${JSON.stringify(s)}`);
  return formatCidr(c);
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const m = maskOf(outer.family, outer.prefix);
  return (outer.value & m) === (inner.value & m);
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** "ip:port" / "[v6]:port" → canonical text, or null when malformed. */
export const canonicalEndpoint = memo(canonicalEndpointUncached);

function canonicalEndpointUncached(ep: string): string | null {
  if (typeof ep !== 'string') return null;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(ep);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  const host = m[1] ?? m[2];
  const addr = parseIp(host);
  if (!addr || (m[1] !== undefined) !== (addr.family === 6)) return null;
  return addr.family === 6 ? `[${formatIp(addr)}]:${port}` : `${formatIp(addr)}:${port}`;
}

// ---- Egress transfer networks -------------------------------------------------------------------------
// Each egress veth pair gets a /30 from 169.254.0.0/16 (link-local: never routed off the host), skipping
// 169.254.0.0/24, 169.254.255.0/24 (RFC 3927 reserved) and 169.254.169.0/24 (cloud metadata services).
// The block is derived from the network id and probed linearly past blocks already in use on the host.

const LL_BASE = 0xa9fe0000n; // 169.254.0.0
const BLOCKS_PER_24 = 64;
const THIRD_OCTETS = Array.from({ length: 254 }, (_, i) => i + 1).filter((o) => o !== 169);
export const EGRESS_BLOCK_COUNT = THIRD_OCTETS.length * BLOCKS_PER_24;

/** The n-th /30 transfer block. */
export function egressBlock(n: number): Cidr {
  const i = ((n % EGRESS_BLOCK_COUNT) + EGRESS_BLOCK_COUNT) % EGRESS_BLOCK_COUNT;
  const third = THIRD_OCTETS[Math.floor(i / BLOCKS_PER_24)];
  const fourth = (i % BLOCKS_PER_24) * 4;
  return { family: 4, value: LL_BASE | (BigInt(third) << 8n) | BigInt(fourth), prefix: 30 };
}

export function egressStartIndex(networkId: string): number {
  return createHash('sha256').update(`zmesh-egress/${networkId}`).digest().readUInt32BE(0) % EGRESS_BLOCK_COUNT;
}

/**
 * Chooses the /30 for a network's egress veth: the first block from the id's start index that overlaps none
 * of `taken` (addresses/CIDRs in use on the host). Returns the host (.1) and tenant (.2) addresses.
 */
export function allocateEgressBlock(networkId: string, taken: string[]): { block: string; hostAddr: string; tenantAddr: string } {
  const used = taken.map(parseCidr).filter((c): c is Cidr => c !== null && c.family === 4);
  const start = egressStartIndex(networkId);
  for (let k = 0; k < EGRESS_BLOCK_COUNT; k++) {
    const b = egressBlock(start + k);
    if (used.some((u) => cidrOverlaps(u, b))) continue;
    return egressAddrs(b);
  }
  throw new Error('no free egress transfer block in 169.254.0.0/16');
}

export function egressAddrs(b: Cidr): { block: string; hostAddr: string; tenantAddr: string } {
  const net = networkOf(b);
  return {
    block: formatCidr(net),
    hostAddr: `${formatIp({ family: 4, value: net.value + 1n })}/30`,
    tenantAddr: `${formatIp({ family: 4, value: net.value + 2n })}/30`,
  };
}

/**
 * IPv6 egress (a network's `egressIpv6`): the veth pair also gets a /126 of EGRESS6_PREFIX whose low 32 bits are
 * the IPv4 transfer addresses (host ::a9fe:x.y+1, tenant +2), so the pair needs no allocation of its own and one
 * IPv4 block is one IPv6 block. Inside fc00::/8, which derived ULAs (fd00::/8) never use; blueprints may not
 * name a range that holds it (src/blueprint/validate.ts).
 */
export const EGRESS6_PREFIX = 'fc00:5a::/96';
const EGRESS6_BASE = 0xfc00005an << 96n;

/** The IPv6 transfer addresses (host, tenant; /126) of an IPv4 egress pair ("169.254.x.y/30" host address). */
export function egressAddrs6(hostAddr: string): { hostAddr6: string; tenantAddr6: string } {
  const c = parseCidr(hostAddr);
  if (!c || c.family !== 4) throw new TypeError(`not an IPv4 transfer address: ${JSON.stringify(hostAddr)}`);
  const v = EGRESS6_BASE | c.value;
  return { hostAddr6: `${formatIp({ family: 6, value: v })}/126`, tenantAddr6: `${formatIp({ family: 6, value: v + 1n })}/126` };
}

/** Whether a /30 interface address lies in the egress pool (so it can be kept on re-apply). */
export function isEgressHostAddr(addr: string): boolean {
  const c = parseCidr(addr);
  if (!c || c.family !== 4 || c.prefix !== 30) return false;
  const third = Number((c.value >> 8n) & 255n);
  return (c.value & 0xffff0000n) === LL_BASE && THIRD_OCTETS.includes(third) && (c.value & 3n) === 1n;
}

/**
 * The MAC zmesh gives whatever holds an IPv4 address on a tenant bridge (the bridge itself, for the gateway, and
 * each workload's eth0): 02:5a (locally administered, unicast) and the address's four bytes. Neighbours that
 * still cache an address then reach whatever holds it now: a replaced workload, or the bridge after the port
 * whose MAC it had borrowed is gone (a bridge without a MAC of its own takes its lowest port's). Pure.
 */
export function addressMac(ipv4: string): string {
  const parts = ipv4.split('.');
  if (parts.length !== 4 || parts.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ipv4)}`);
  return ['02', '5a', ...parts.map((x) => Number(x).toString(16).padStart(2, '0'))].join(':');
}
