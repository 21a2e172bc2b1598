// Strict IPv4 address and CIDR parsing: four decimal octets without leading zeros (no octal or hex forms),
// prefix lengths without leading zeros. Addresses are unsigned 32-bit numbers.

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const ADDR_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const PREFIX_RE = /^(3[0-2]|[12][0-9]|[0-9])$/;

/** Parses "a.b.c.d"; null when malformed. */
export function parseIPv4(text: string): number | null {
  const m = ADDR_RE.exec(text);
  if (!m) return null;
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIPv4(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.');
}

export interface Cidr {
  /** The address as written (may have host bits set). */
  addr: number;
  prefix: number;
}

/** Parses "a.b.c.d/p"; null when malformed. Host bits are not checked here. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = parseIPv4(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (addr === null || !PREFIX_RE.test(p)) return null;
  return { addr, prefix: Number(p) };
}

/** The netmask of a prefix length as an unsigned 32-bit number. */
export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The network address of a CIDR (host bits cleared). */
export function networkAddress(c: Cidr): number {
  return (c.addr & prefixMask(c.prefix)) >>> 0;
}

/** Whether addr lies inside the CIDR. */
export function cidrContains(c: Cidr, addr: number): boolean {
  const mask = prefixMask(c.prefix);
  return ((addr & mask) >>> 0) === ((c.addr & mask) >>> 0);
}

/** Whether two CIDRs share at least one address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const mask = prefixMask(Math.min(a.prefix, b.prefix));
  return ((a.addr & mask) >>> 0) === ((b.addr & mask) >>> 0);
}
