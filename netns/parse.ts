// Pure parsers of what the tools print: `ip -json` (link, addr, route, netconf, netns), `wg show <if> dump`
// and `nft -j list ruleset|table`. No I/O; each is tested against exact text.
import { canonicalCidr, canonicalEndpoint, canonicalIfAddr, formatIp, parseIp } from './ip.ts';

export interface IpAddr {
  dev: string;
  family: 'inet' | 'inet6';
  /** "local/prefixlen", e.g. "10.1.3.1/24". */
  cidr: string;
  scope: string;
}

export interface IpLink {
  index: number;
  name: string;
  /** linkinfo.info_kind when shown (-d): bridge, veth, wireguard, tun...; else the link type (loopback, ether, none). */
  kind: string;
  mtu: number;
  /** Administratively up (the UP flag). */
  up: boolean;
  operstate: string;
  alias: string | null;
  master: string | null;
  /** Link-layer address (MAC), when it has one. */
  mac: string | null;
  /** Addresses, when the input came from `ip -json addr show`; [] otherwise. */
  addrs: IpAddr[];
}

export interface IpRoute {
  /** Canonical CIDR, or "default". */
  dst: string;
  dev: string | null;
  gateway: string | null;
  protocol: string;
  scope: string;
  type: string;
}

export interface WgPeer {
  publicKey: string;
  hasPresharedKey: boolean;
  endpoint: string | null;
  allowedIps: string[];
  /** Seconds since the epoch; 0 when there never was a handshake. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number | null;
}

export interface WgDevice {
  /** Whether a private key is set. The key itself is dropped at once and never kept. */
  hasPrivateKey: boolean;
  publicKey: string | null;
  listenPort: number;
  fwmark: number | null;
  peers: WgPeer[];
}

export interface NftChain {
  name: string;
  type: string | null;
  hook: string | null;
  prio: number | null;
  policy: string | null;
}

export interface NftRule {
  chain: string;
  handle: number;
  comment: string | null;
  /** The rule's `counter` statement (the first one), when it has one. */
  counter?: { packets: number; bytes: number };
  /** The rule's verdict, when it ends in accept or drop. */
  verdict?: 'accept' | 'drop';
}

export interface NftSet {
  name: string;
  /** Elements in the builders' form: "a/len" (a bare address gets its full length) or "a-b". */
  elements: string[];
}

export interface NftTable {
  family: string;
  name: string;
  handle: number;
  chains: NftChain[];
  rules: NftRule[];
  /** Named sets (anonymous ones are part of their rule). */
  sets: NftSet[];
}

export class ParseError extends Error {
  readonly code = 'E_NETNS_PARSE';
}

type Json = Record<string, unknown>;

const EMPTY = Symbol('empty output');

/** Command output as JSON (already-parsed input passes through); EMPTY for empty output. */
function readJson(input: string | unknown, what: string): unknown {
  if (typeof input !== 'string') return input;
  const t = input.trim();
  if (t === '') return EMPTY;
  try {
    return JSON.parse(t);
  } catch (e) {
    throw new ParseError(`${what}: not JSON: ${(e as Error).message}`);
  }
}

function asArray(input: string | unknown, what: string): Json[] {
  const v = readJson(input, what);
  if (v === EMPTY) return [];
  if (!Array.isArray(v)) throw new ParseError(`${what}: expected a JSON array`);
  return v as Json[];
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

/**
 * Splits the output of `ip -json -batch -` (one JSON value per command, each on its own line) into the
 * values, in order. Robust to values spanning lines.
 */
export function splitJsonValues(text: string): unknown[] {
  // What ip prints: each value on one line. JSON.parse per line is ~10× faster than the scan below (a no-op reconcile
  // splits every namespace's read); any line that is not a whole array or object falls back to the scan.
  const lines = text.split('\n');
  const fast: unknown[] = [];
  for (const line of lines) {
    const l = line.trim();
    if (!l) continue;
    if ((l[0] !== '[' && l[0] !== '{') || (l.at(-1) !== ']' && l.at(-1) !== '}')) return scanJsonValues(text);
    try {
      fast.push(JSON.parse(l));
    } catch {
      return scanJsonValues(text);
    }
  }
  return fast;
}

function scanJsonValues(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let inStr = false;
  let esc = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (esc) esc = false;
      else if (c === '\\') esc = true;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '[' || c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0) {
        try {
          out.push(JSON.parse(text.slice(start, i + 1)));
        } catch (e) {
          throw new ParseError(`batch output: bad JSON value: ${(e as Error).message}`);
        }
      } else if (depth < 0) throw new ParseError('batch output: unbalanced JSON');
    }
  }
  if (depth !== 0) throw new ParseError('batch output: truncated JSON');
  return out;
}

function parseAddrInfo(dev: string, info: unknown): IpAddr[] {
  if (!Array.isArray(info)) return [];
  const out: IpAddr[] = [];
  for (const a of info as Json[]) {
    const family = str(a.family);
    const local = str(a.local);
    const prefixlen = num(a.prefixlen);
    if ((family !== 'inet' && family !== 'inet6') || local === null || prefixlen === null) continue;
    out.push({ dev, family, cidr: canonicalIfAddr(`${local}/${prefixlen}`), scope: str(a.scope) ?? 'global' });
  }
  return out;
}

/** `ip -json [-d] link show` or `ip -json [-d] addr show` → links (with addresses for addr show). */
export function parseIpLinks(input: string | unknown): IpLink[] {
  return asArray(input, 'ip link').map((l) => {
    const name = str(l.ifname);
    const index = num(l.ifindex);
    if (name === null || index === null) throw new ParseError('ip link: entry without ifname/ifindex');
    const flags = Array.isArray(l.flags) ? (l.flags as unknown[]) : [];
    const linkinfo = (l.linkinfo ?? null) as Json | null;
    const kind = str(linkinfo?.info_kind) ?? str(l.link_type) ?? 'unknown';
    return {
      index,
      name,
      kind,
      mtu: num(l.mtu) ?? 0,
      up: flags.includes('UP'),
      operstate: str(l.operstate) ?? 'UNKNOWN',
      alias: str(l.ifalias),
      master: str(l.master),
      mac: l.link_type === 'ether' ? str(l.address) : null,
      addrs: parseAddrInfo(name, l.addr_info),
    };
  });
}

/** `ip -json addr show` → every address, flattened. */
export function parseIpAddrs(input: string | unknown): IpAddr[] {
  return asArray(input, 'ip addr').flatMap((l) => {
    const name = str(l.ifname);
    if (name === null) throw new ParseError('ip addr: entry without ifname');
    return parseAddrInfo(name, l.addr_info);
  });
}

/** `ip -json route show` → routes with canonical destinations. */
export function parseIpRoutes(input: string | unknown, family: 4 | 6 = 4): IpRoute[] {
  return asArray(input, 'ip route').map((r) => {
    const dst = str(r.dst);
    if (dst === null) throw new ParseError('ip route: entry without dst');
    let canon = dst;
    if (dst !== 'default') {
      try {
        canon = canonicalCidr(dst.includes('/') ? dst : `${dst}/${family === 4 && !dst.includes(':') ? 32 : 128}`);
      } catch {
        throw new ParseError(`ip route: bad dst ${JSON.stringify(dst)}`);
      }
    }
    return {
      dst: canon,
      dev: str(r.dev),
      gateway: str(r.gateway),
      protocol: str(r.protocol) ?? 'boot',
      scope: str(r.scope) ?? 'global',
      type: str(r.type) ?? 'unicast',
    };
  });
}

/** `ip -json netconf show` → whether IPv4 forwarding ("all") is on. */
export function parseIpv4Forwarding(input: string | unknown): boolean {
  const all = asArray(input, 'ip netconf').find((e) => e.family === 'inet' && e.interface === 'all');
  if (!all) throw new ParseError('ip netconf: no inet "all" entry');
  return all.forwarding === true;
}

/** `ip -json netconf show` → whether IPv6 forwarding ("all") is on; false without an inet6 entry (no IPv6). */
export function parseIpv6Forwarding(input: string | unknown): boolean {
  const all = asArray(input, 'ip netconf').find((e) => e.family === 'inet6' && e.interface === 'all');
  return all?.forwarding === true;
}

/** `ip -json netns list` → namespace names. */
export function parseNetnsList(input: string | unknown): string[] {
  return asArray(input, 'ip netns').map((e) => {
    const n = str(e.name);
    if (n === null) throw new ParseError('ip netns: entry without name');
    return n;
  });
}

function intField(v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw new ParseError(`wg dump: bad ${what} ${JSON.stringify(v)}`);
  return Number(v);
}

/**
 * `wg show <if> dump`: the first line is the interface (private-key public-key listen-port fwmark), then one
 * line per peer (public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive), tab separated;
 * "(none)" and "off" stand for nothing. The private key is dropped: only whether one is set is kept.
 */
export function parseWgDump(text: string): WgDevice {
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines.length === 0) throw new ParseError('wg dump: empty');
  const head = lines[0].split('\t');
  if (head.length !== 4) throw new ParseError(`wg dump: interface line has ${head.length} fields, expected 4`);
  const peers = lines.slice(1).map((line, i) => {
    const f = line.split('\t');
    if (f.length !== 8) throw new ParseError(`wg dump: peer line ${i + 1} has ${f.length} fields, expected 8`);
    const endpoint = f[2] === '(none)' ? null : canonicalEndpoint(f[2]) ?? f[2];
    return {
      publicKey: f[0],
      hasPresharedKey: f[1] !== '(none)',
      endpoint,
      allowedIps: f[3] === '(none)' || f[3] === '' ? [] : f[3].split(','),
      latestHandshake: intField(f[4], 'latest-handshake'),
      rxBytes: intField(f[5], 'rx'),
      txBytes: intField(f[6], 'tx'),
      persistentKeepalive: f[7] === 'off' ? null : intField(f[7], 'keepalive'),
    };
  });
  return {
    hasPrivateKey: head[0] !== '(none)',
    publicKey: head[1] === '(none)' ? null : head[1],
    listenPort: intField(head[2], 'listen-port'),
    fwmark: head[3] === 'off' ? null : Number(head[3]),
    peers,
  };
}

/** One element of a set as `nft -j` prints it: "a", {"prefix": {"addr", "len"}} or {"range": ["a", "b"]}. */
function nftElement(e: unknown): string {
  const addr = (v: unknown) => {
    const a = typeof v === 'string' ? parseIp(v) : null;
    if (!a) throw new ParseError(`nft: bad set element ${JSON.stringify(e)}`);
    return a;
  };
  if (typeof e === 'string') {
    const a = addr(e);
    return `${formatIp(a)}/${a.family === 4 ? 32 : 128}`;
  }
  const o = (e ?? {}) as Json;
  if (o.prefix && typeof o.prefix === 'object') {
    const p = o.prefix as Json;
    return `${formatIp(addr(p.addr))}/${num(p.len) ?? -1}`;
  }
  if (Array.isArray(o.range) && o.range.length === 2) return `${formatIp(addr(o.range[0]))}-${formatIp(addr(o.range[1]))}`;
  // Anything else (concatenations, maps): kept as text so that it differs from whatever the builders write.
  return JSON.stringify(e);
}

/** The first `counter` statement of a rule's expressions, as `nft -j` prints it: {"counter": {packets, bytes}}. */
function ruleCounter(expr: unknown): { packets: number; bytes: number } | null {
  if (!Array.isArray(expr)) return null;
  for (const e of expr as unknown[]) {
    const c = (e as Json | null)?.counter as Json | undefined;
    if (!c || typeof c !== 'object') continue;
    const packets = num(c.packets);
    const bytes = num(c.bytes);
    if (packets === null || bytes === null || packets < 0 || bytes < 0) return null;
    return { packets, bytes };
  }
  return null;
}

/** The verdict statement of a rule's expressions (`{"accept": null}`, `{"drop": null}`), when there is one. */
function ruleVerdict(expr: unknown): 'accept' | 'drop' | null {
  if (!Array.isArray(expr)) return null;
  for (const e of expr as unknown[]) {
    if (e && typeof e === 'object') {
      if ('accept' in e) return 'accept';
      if ('drop' in e) return 'drop';
    }
  }
  return null;
}

/** `nft -j list ruleset` (or `list table`) → tables with their chains, rules (comment, counter) and named sets. */
export function parseNftRuleset(input: string | unknown): NftTable[] {
  const v = readJson(input, 'nft');
  if (v === EMPTY) return [];
  const items = (v as { nftables?: unknown })?.nftables;
  if (!Array.isArray(items)) throw new ParseError('nft: no "nftables" array');
  const tables = new Map<string, NftTable>();
  const key = (family: unknown, name: unknown) => `${String(family)} ${String(name)}`;
  for (const item of items as Json[]) {
    if (item.table) {
      const t = item.table as Json;
      tables.set(key(t.family, t.name), { family: String(t.family), name: String(t.name), handle: num(t.handle) ?? 0, chains: [], rules: [], sets: [] });
    } else if (item.chain) {
      const c = item.chain as Json;
      tables.get(key(c.family, c.table))?.chains.push({
        name: String(c.name),
        type: str(c.type),
        hook: str(c.hook),
        prio: num(c.prio),
        policy: str(c.policy),
      });
    } else if (item.set) {
      const st = item.set as Json;
      tables.get(key(st.family, st.table))?.sets.push({ name: String(st.name), elements: Array.isArray(st.elem) ? (st.elem as unknown[]).map(nftElement) : [] });
    } else if (item.rule) {
      const r = item.rule as Json;
      const rule: NftRule = { chain: String(r.chain), handle: num(r.handle) ?? 0, comment: str(r.comment) };
      const counter = ruleCounter(r.expr);
      if (counter) rule.counter = counter;
      const verdict = ruleVerdict(r.expr);
      if (verdict) rule.verdict = verdict;
      tables.get(key(r.family, r.table))?.rules.push(rule);
    }
  }
  return [...tables.values()];
}

/** Packets and bytes a tenant network's policy counted (netns/layout.ts policyNft), since its table was written. */
export interface PolicyCounters {
  /** Per policy rule compiled on this node (its index in the blueprint): its protocols and both chains summed; by index. */
  rules: { index: number; packets: number; bytes: number }[];
  /** The default rule (`default-drop` or `default-allow`), both chains summed; null when the table has none. */
  default: { action: 'drop' | 'accept'; packets: number; bytes: number } | null;
}

const POLICY_CHAINS = new Set(['policy-in', 'policy-fwd']);
const POLICY_TAG = /^zmesh:[0-9a-f]{1,64}:(?:r(\d{1,6})-(?:tcp|udp|icmp|any)6?|default-(drop|allow))$/;

/**
 * The policy counters of a tenant table's rules: those of the chains `policy-in` and `policy-fwd` whose comment
 * is a policy tag (`zmesh:<hash>:r<index>-<proto>`, `zmesh:<hash>:default-drop|allow`) and that have a counter.
 * Null when there is none (no policy).
 */
export function policyCounters(rules: NftRule[]): PolicyCounters | null {
  const byIndex = new Map<number, { index: number; packets: number; bytes: number }>();
  let def: PolicyCounters['default'] = null;
  let any = false;
  for (const r of rules) {
    if (!POLICY_CHAINS.has(r.chain) || !r.counter || r.comment === null) continue;
    const m = POLICY_TAG.exec(r.comment);
    if (!m) continue;
    any = true;
    if (m[1] !== undefined) {
      const index = Number(m[1]);
      const c = byIndex.get(index) ?? { index, packets: 0, bytes: 0 };
      c.packets += r.counter.packets;
      c.bytes += r.counter.bytes;
      byIndex.set(index, c);
    } else {
      const action = m[2] === 'drop' ? 'drop' : 'accept';
      def ??= { action, packets: 0, bytes: 0 };
      def.packets += r.counter.packets;
      def.bytes += r.counter.bytes;
    }
  }
  if (!any) return null;
  return { rules: [...byIndex.values()].sort((a, b) => a.index - b.index), default: def };
}

/** What a tenant table's counting rules matched since the table was written (`zmesh diagnose`). */
export interface FirewallCounters {
  /** Per rule tag (`fwd-spoof`, `tunnel-egress`, `r0-tcp`, `default-drop`, …; the chains of one tag summed), in table order. */
  rules: { tag: string; verdict: 'accept' | 'drop'; packets: number; bytes: number }[];
  /** Every counted drop, summed. */
  dropped: { packets: number; bytes: number };
  /** Every counted accept (the policy's rules, its default-allow), summed. */
  accepted: { packets: number; bytes: number };
}

const ZMESH_TAG = /^zmesh:[0-9a-f]{1,64}:([a-z0-9-]{1,64})$/;

/**
 * The packet and byte counters of a zmesh table's rules: those with a counter, a verdict and a zmesh comment
 * (`zmesh:<hash>:<tag>`). Null when there is none (a table written before its drop rules counted).
 */
export function firewallCounters(rules: NftRule[]): FirewallCounters | null {
  const byTag = new Map<string, FirewallCounters['rules'][number]>();
  const dropped = { packets: 0, bytes: 0 };
  const accepted = { packets: 0, bytes: 0 };
  for (const r of rules) {
    if (!r.counter || !r.verdict || r.comment === null) continue;
    const tag = ZMESH_TAG.exec(r.comment)?.[1];
    if (!tag) continue;
    const key = `${r.verdict} ${tag}`;
    const c = byTag.get(key) ?? { tag, verdict: r.verdict, packets: 0, bytes: 0 };
    c.packets += r.counter.packets;
    c.bytes += r.counter.bytes;
    byTag.set(key, c);
    const sum = r.verdict === 'drop' ? dropped : accepted;
    sum.packets += r.counter.packets;
    sum.bytes += r.counter.bytes;
  }
  if (byTag.size === 0) return null;
  return { rules: [...byTag.values()], dropped, accepted };
}
