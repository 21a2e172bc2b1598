// L2 binding of workload ports: in each tenant namespace, one nft table of the runtime's own (`bridge zmesh-wl`;
// the namespace's `inet` table belongs to the netns driver) whose prerouting chain sees every frame a bridge port
// sends and lets a workload port (v-<hash>, see names.ts) send only
//   IPv4   from its planned MAC and its planned address,
//   ARP    (Ethernet/IPv4 requests and replies) from its planned MAC, announcing its own MAC and address,
//   IPv6   (dual-stack workloads only) from its planned MAC and its planned IPv6 address, a neighbour
//          advertisement only for that address (its target), so NDP works and cannot be spoofed,
// and drops everything else it sends: other source MACs or addresses (a neighbour's, the gateway's, 0.0.0.0),
// IPv6 from any other address (link-local too: router advertisements and redirects never leave a workload),
// VLAN-tagged frames, other ethertypes. Frames to the workloads, and frames of ports that are not workloads
// (none today), pass.
// Which port may send as what is data: one set element "ifname . MAC . IPv4" per workload port, and for a
// dual-stack workload "ifname . MAC . IPv6" and "ifname . MAC . <IPv6 as a 128-bit integer>" (the ND target:
// nft 1.0.6 has no `icmpv6 taddr`, so the target is read as raw bits at offset 64 of the ICMPv6 header). A port
// that has no element (yet) sends nothing at all, so ADD binds the port before it creates the veth.
//   ADD    one nft transaction: the table (when missing or not current, rebuilt with the elements it held), the
//          port's element (and away with a stale one of the same port)
//   DEL    the port's element (idempotent)
//   CHECK  table current, port bound to exactly its MAC and address
//   GC     elements of ports no workload wants; the table itself when no workload of the namespace is left
// Builders and the parser are pure; a no-op reconcile only reads (`nft -j list table`).
import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { canonicalIPv6, parseIPv6 } from '../topology/cidr6.ts';

export const L2_FAMILY = 'bridge';
export const L2_TABLE = 'zmesh-wl';
export const L2_SET = 'ports';
export const L2_CHAIN = 'ports-in';
/** Dual-stack ports: "ifname . MAC . IPv6" and the neighbour-advertisement targets they may announce. */
export const L2_SET6 = 'ports6';
export const L2_ND_SET = 'nd6';
/** Names of workload ports (names.ts: v-<hash10>). */
export const PORT_GLOB = 'v-*';
const COMMENT_PREFIX = 'zmesh-wl:';

export interface PortBinding {
  /** The workload's veth in the tenant namespace (a bridge port). */
  ifname: string;
  /** Lower-case, colon-separated. */
  mac: string;
  ip: string;
  /** Dual-stack workloads: the planned IPv6 address (canonical text). */
  ip6?: string;
}

interface L2Rule {
  tag: string;
  rule: string;
}

const RULES: L2Rule[] = [
  { tag: 'other-ports', rule: `iifname != "${PORT_GLOB}" accept` },
  { tag: 'ipv4', rule: `ether type ip iifname . ether saddr . ip saddr @${L2_SET} accept` },
  {
    tag: 'arp',
    rule:
      'ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation { request, reply } ' +
      `iifname . ether saddr . arp saddr ip @${L2_SET} iifname . arp saddr ether . arp saddr ip @${L2_SET} accept`,
  },
  { tag: 'nd-advert', rule: `ether type ip6 icmpv6 type nd-neighbor-advert iifname . ether saddr . @th,64,128 != @${L2_ND_SET} drop` },
  { tag: 'ipv6', rule: `ether type ip6 iifname . ether saddr . ip6 saddr @${L2_SET6} accept` },
  { tag: 'drop', rule: 'counter drop' },
];

/** Short hash of the chain's rules: part of every rule comment, so a changed rule set reads back as not current. */
export const L2_HASH = createHash('sha256')
  .update(`${L2_FAMILY} ${L2_TABLE}\n${RULES.map((r) => `${r.tag}=${r.rule}`).join('\n')}`)
  .digest('hex')
  .slice(0, 10);

/** The rule comments of the chain, in order: what a current table reads back. */
export const L2_FINGERPRINT: readonly string[] = RULES.map((r) => `${COMMENT_PREFIX}${L2_HASH}:${r.tag}`);

function check(b: PortBinding): PortBinding {
  if (!/^[a-z0-9-]{1,15}$/.test(b.ifname)) throw new TypeError(`bad port name ${JSON.stringify(b.ifname)}`);
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(b.mac)) throw new TypeError(`bad MAC ${JSON.stringify(b.mac)}`);
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(b.ip)) throw new TypeError(`bad IPv4 address ${JSON.stringify(b.ip)}`);
  if (b.ip6 !== undefined && (!isIPv6(b.ip6) || canonicalIPv6(b.ip6) !== b.ip6)) throw new TypeError(`bad IPv6 address ${JSON.stringify(b.ip6)}`);
  return b;
}

function element(b: PortBinding): string {
  check(b);
  return `"${b.ifname}" . ${b.mac} . ${b.ip}`;
}

function element6(b: PortBinding): string {
  check(b);
  return `"${b.ifname}" . ${b.mac} . ${b.ip6}`;
}

/** The ND target element: the address as nft prints a 128-bit integer. */
function elementNd(b: PortBinding): string {
  check(b);
  return `"${b.ifname}" . ${b.mac} . ${ndHex(b.ip6!)}`;
}

function ndHex(ip6: string): string {
  return `0x${parseIPv6(ip6)!.toString(16).padStart(32, '0')}`;
}

/** Sorted, so the same bindings always render the same text. */
function sorted(bs: PortBinding[]): PortBinding[] {
  return [...bs].sort((a, b) => (a.ifname < b.ifname ? -1 : a.ifname > b.ifname ? 1 : 0));
}

/** The table with these elements (nft -f syntax). */
export function l2TableText(elements: PortBinding[]): string {
  const els = sorted(elements);
  const six = els.filter((b) => b.ip6 !== undefined);
  const lines = [
    `table ${L2_FAMILY} ${L2_TABLE} {`,
    '\tcomment "zmesh runtime: workload ports send only from their planned MAC and addresses"',
    `\tset ${L2_SET} {`,
    '\t\ttype ifname . ether_addr . ipv4_addr',
    ...(els.length ? [`\t\telements = { ${els.map(element).join(', ')} }`] : []),
    '\t}',
    `\tset ${L2_SET6} {`,
    '\t\ttype ifname . ether_addr . ipv6_addr',
    ...(six.length ? [`\t\telements = { ${six.map(element6).join(', ')} }`] : []),
    '\t}',
    `\tset ${L2_ND_SET} {`,
    '\t\ttypeof iifname . ether saddr . @th,64,128',
    ...(six.length ? [`\t\telements = { ${six.map(elementNd).join(', ')} }`] : []),
    '\t}',
    `\tchain ${L2_CHAIN} {`,
    '\t\ttype filter hook prerouting priority filter; policy accept;',
    ...RULES.map((r) => `\t\t${r.rule} comment "${COMMENT_PREFIX}${L2_HASH}:${r.tag}"`),
    '\t}',
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** One atomic transaction: creates the table, or replaces it wholesale (with `elements`) when it exists. */
export function l2ReplaceText(elements: PortBinding[]): string {
  return `table ${L2_FAMILY} ${L2_TABLE}\ndelete table ${L2_FAMILY} ${L2_TABLE}\n${l2TableText(elements)}`;
}

export function l2DeleteTableText(): string {
  return `delete table ${L2_FAMILY} ${L2_TABLE}\n`;
}

/** `delete element` lines, then `add element` lines (one transaction when given to nft -f together). */
export function l2ElementText(del: PortBinding[], add: PortBinding[]): string {
  const out: string[] = [];
  const lines = (op: string, b: PortBinding) => [
    `${op} element ${L2_FAMILY} ${L2_TABLE} ${L2_SET} { ${element(b)} }`,
    ...(b.ip6 !== undefined ? [`${op} element ${L2_FAMILY} ${L2_TABLE} ${L2_SET6} { ${element6(b)} }`, `${op} element ${L2_FAMILY} ${L2_TABLE} ${L2_ND_SET} { ${elementNd(b)} }`] : []),
  ];
  for (const b of sorted(del)) out.push(...lines('delete', b));
  for (const b of sorted(add)) out.push(...lines('add', b));
  return out.length ? out.join('\n') + '\n' : '';
}

/** What `nft -j list table bridge zmesh-wl` shows (or that it is not there). */
export interface L2State {
  exists: boolean;
  /** The chain hooked as built, the set typed as built, the rules exactly the fingerprint. */
  current: boolean;
  elements: PortBinding[];
}

type J = Record<string, unknown>;

/** The concatenation of one set element, in the shapes nft -j writes (plain, or wrapped with options). */
function concatOf(e: unknown): unknown[] | null {
  if (e && typeof e === 'object') {
    const o = e as J;
    if (Array.isArray(o.concat)) return o.concat;
    if (o.elem && typeof o.elem === 'object') return concatOf((o.elem as J).val);
  }
  return null;
}

/** `nft -j list table bridge zmesh-wl` → state. Empty text: the table does not exist. Pure. */
export function parseL2(text: string): L2State {
  if (!text.trim()) return { exists: false, current: false, elements: [] };
  const v = JSON.parse(text) as { nftables?: unknown };
  if (!Array.isArray(v.nftables)) throw new Error('nft -j: no "nftables" array');
  let exists = false;
  let chainOk = false;
  let chains = 0;
  let setOk = false;
  let set6Ok = false;
  let ndOk = false;
  const comments: string[] = [];
  const elements: PortBinding[] = [];
  const six = new Map<string, string>();
  const nd = new Map<string, string>();
  const triples = (s: J, each: (c: string[]) => void) => {
    for (const e of Array.isArray(s.elem) ? s.elem : []) {
      const c = concatOf(e);
      if (c && c.length === 3 && c.every((x) => typeof x === 'string')) each([c[0] as string, (c[1] as string).toLowerCase(), (c[2] as string).toLowerCase()]);
    }
  };
  for (const item of v.nftables as J[]) {
    if (item.table) {
      const t = item.table as J;
      if (t.family === L2_FAMILY && t.name === L2_TABLE) exists = true;
    } else if (item.chain) {
      const c = item.chain as J;
      chains++;
      if (c.name === L2_CHAIN && c.type === 'filter' && c.hook === 'prerouting' && c.prio === -200 && c.policy === 'accept') chainOk = true;
    } else if (item.set) {
      const s = item.set as J;
      if (s.name === L2_SET6) {
        set6Ok = Array.isArray(s.type) && s.type.join(',') === 'ifname,ether_addr,ipv6_addr';
        triples(s, ([i, m, a]) => six.set(`${i} ${m}`, canonicalIPv6(a) ?? a));
        continue;
      }
      if (s.name === L2_ND_SET) {
        ndOk = Array.isArray(s.type) && s.type.join(',') === 'ifname,ether_addr,integer';
        triples(s, ([i, m, a]) => nd.set(`${i} ${m}`, a));
        continue;
      }
      if (s.name !== L2_SET) continue;
      setOk = Array.isArray(s.type) && s.type.join(',') === 'ifname,ether_addr,ipv4_addr';
      for (const e of Array.isArray(s.elem) ? s.elem : []) {
        const c = concatOf(e);
        if (c && c.length === 3 && c.every((x) => typeof x === 'string')) {
          elements.push({ ifname: c[0] as string, mac: (c[1] as string).toLowerCase(), ip: c[2] as string });
        }
      }
    } else if (item.rule) {
      const r = item.rule as J;
      if (r.chain === L2_CHAIN) comments.push(typeof r.comment === 'string' ? r.comment : '');
    }
  }
  // IPv6 elements join their port's IPv4 one; the ND set must hold exactly the same ports and addresses.
  let sixOk = nd.size === six.size;
  for (const e of elements) {
    const k = `${e.ifname} ${e.mac}`;
    const a = six.get(k);
    if (a === undefined) continue;
    e.ip6 = a;
    const t = nd.get(k);
    if (t === undefined || !/^0x[0-9a-f]{1,32}$/.test(t) || BigInt(t) !== parseIPv6(a)) sixOk = false;
  }
  if (elements.filter((e) => e.ip6 !== undefined).length !== six.size) sixOk = false;
  const current =
    exists && chainOk && chains === 1 && setOk && set6Ok && ndOk && sixOk && comments.length === L2_FINGERPRINT.length && comments.every((c, i) => c === L2_FINGERPRINT[i]);
  return { exists, current, elements: sorted(elements) };
}

const same = (a: PortBinding, b: PortBinding) => a.ifname === b.ifname && a.mac === b.mac && a.ip === b.ip && a.ip6 === b.ip6;

/**
 * The nft -f text that binds `want` in a namespace whose table reads `live` (and unbinds `unbind`, port names),
 * or '' when nothing needs to change. A table that is missing or not current is rebuilt in the same
 * transaction with the elements it held.
 */
export function l2Plan(live: L2State, want: PortBinding[], unbind: string[] = []): string {
  const drop = new Set([...unbind, ...want.map((b) => b.ifname)]);
  if (!live.current) {
    const keep = live.elements.filter((e) => !drop.has(e.ifname));
    return l2ReplaceText([...keep, ...want]);
  }
  const del = live.elements.filter((e) => drop.has(e.ifname) && !want.some((w) => same(w, e)));
  const add = want.filter((w) => !live.elements.some((e) => same(w, e)));
  return l2ElementText(del, add);
}

/** What is wrong with a port's binding (empty: bound exactly as planned). Pure. */
export function compareBinding(live: L2State, want: PortBinding): string[] {
  if (!live.exists) return [`nft table ${L2_FAMILY} ${L2_TABLE} is missing`];
  const p: string[] = [];
  if (!live.current) p.push(`nft table ${L2_FAMILY} ${L2_TABLE} is not current`);
  const mine = live.elements.filter((e) => e.ifname === want.ifname);
  if (mine.length !== 1 || !same(mine[0], want)) {
    const show = (e: PortBinding) => `${e.mac} ${e.ip}${e.ip6 ? ` ${e.ip6}` : ''}`;
    p.push(`${want.ifname} is bound to [${mine.map(show).join(', ')}], expected ${show(want)}`);
  }
  return p;
}
