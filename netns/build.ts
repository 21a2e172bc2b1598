// Pure builders of command input: `ip -batch` lines, `wg set` argv (+ the private key for stdin), and nft
// scripts. No I/O; each is tested against exact text.
import { createHash } from 'node:crypto';

/** A token for an `ip -batch` line or an argv: no whitespace, quotes or backslashes can slip in. */
function tok(s: string | number): string {
  const t = String(s);
  if (t === '' || /[\s"'\\#]/.test(t)) throw new TypeError(`unsafe token ${JSON.stringify(t)}`);
  return t;
}

// ---- ip -batch --------------------------------------------------------------------------------------

export function buildIpBatch(lines: string[]): string {
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

export const ip = {
  netnsAdd: (ns: string) => `netns add ${tok(ns)}`,
  linkAdd: (name: string, kind: 'bridge' | 'wireguard', mac?: string) => `link add name ${tok(name)}${mac ? ` address ${tok(mac)}` : ''} type ${kind}`,
  /** A veth pair: `host` stays in the current namespace, `peer` is created in namespace `ns`. */
  vethAdd: (host: string, peer: string, ns: string) => `link add name ${tok(host)} type veth peer name ${tok(peer)} netns ${tok(ns)}`,
  linkSet: (name: string, s: { alias?: string; mtu?: number; address?: string; up?: boolean }) => {
    const parts = [`link set dev ${tok(name)}`];
    if (s.alias !== undefined) parts.push(`alias ${tok(s.alias)}`);
    if (s.address !== undefined) parts.push(`address ${tok(s.address)}`);
    if (s.mtu !== undefined) parts.push(`mtu ${tok(s.mtu)}`);
    if (s.up) parts.push('up');
    return parts.join(' ');
  },
  linkNetns: (name: string, ns: string) => `link set dev ${tok(name)} netns ${tok(ns)}`,
  linkDel: (name: string) => `link del dev ${tok(name)}`,
  /** IPv6 addresses are added `nodad`: usable at once (no 1–2 s of duplicate address detection before the
   *  first packet, issue #18); zmesh alone assigns the addresses of a tenant bridge and WireGuard interface. */
  addrAdd: (cidr: string, dev: string) => `address add ${tok(cidr)} dev ${tok(dev)}${cidr.includes(':') ? ' nodad' : ''}`,
  addrDel: (cidr: string, dev: string) => `address del ${tok(cidr)} dev ${tok(dev)}`,
  routeReplace: (r: { dst: string; dev: string; gateway?: string | null }) =>
    `route replace ${tok(r.dst)}${r.gateway ? ` via ${tok(r.gateway)}` : ''} dev ${tok(r.dev)} proto static`,
  routeDel: (r: { dst: string; dev: string | null }) => `route del ${tok(r.dst)}${r.dev ? ` dev ${tok(r.dev)}` : ''} proto static`,
};

// ---- wg set -----------------------------------------------------------------------------------------

export interface PeerOp {
  op: 'add' | 'update' | 'remove';
  publicKey: string;
  /** Set the endpoint (omitted: leave as is). */
  endpoint?: string;
  /** Replace the allowed IPs (omitted: leave as is). */
  allowedIps?: string[];
  /** Set the keepalive; null turns it off (omitted: leave as is). */
  persistentKeepalive?: number | null;
}

export interface WgChange {
  /** The private key (base64) when it must be (re)set: handed over in a file, never in argv. */
  privateKey?: string;
  listenPort?: number;
  peers: PeerOp[];
}

export interface WgSetCommand {
  argv: string[];
  /** The private key file's content, when the key is set (argv then holds `keyPath`). Secret. */
  secret?: string;
}

function peerArgs(p: PeerOp): string[] {
  const a = ['peer', tok(p.publicKey)];
  if (p.op === 'remove') return [...a, 'remove'];
  if (p.endpoint !== undefined) a.push('endpoint', tok(p.endpoint));
  if (p.persistentKeepalive !== undefined) a.push('persistent-keepalive', p.persistentKeepalive === null ? 'off' : tok(p.persistentKeepalive));
  if (p.allowedIps !== undefined) a.push('allowed-ips', p.allowedIps.map(tok).join(','));
  return a;
}

/**
 * The `wg set` that starts a handshake with each peer and leaves its keepalive off: turning a keepalive on sends
 * one at once when the interface is up (the kernel and wireguard-go alike), which starts a handshake when there is
 * no session; the same command turns it off again (src/agent/handshakes.ts). Split like buildWgSet past
 * `maxArgBytes`.
 */
export function buildKick(ifname: string, keys: readonly string[], maxArgBytes = 512 * 1024): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const k of keys) {
    const a = ['peer', tok(k), 'persistent-keepalive', '1', 'peer', tok(k), 'persistent-keepalive', 'off'];
    const n = a.reduce((s, x) => s + x.length + 1, 0);
    if (cur.length && bytes + n > maxArgBytes) {
      out.push(['wg', 'set', tok(ifname), ...cur]);
      cur = [];
      bytes = 0;
    }
    cur.push(...a);
    bytes += n;
  }
  if (cur.length) out.push(['wg', 'set', tok(ifname), ...cur]);
  return out;
}

/** Whether a change does nothing. */
export function isEmptyWgChange(c: WgChange): boolean {
  return c.privateKey === undefined && c.listenPort === undefined && c.peers.length === 0;
}

/**
 * The `wg set` invocations for a change: normally exactly one. The private key is read from `keyPath` (a
 * placeholder the runner replaces with a 0600 file, see RunOptions.secretFile). Peers are changed one by one inside it (add,
 * update, remove), never replaced wholesale. Only when the argv would exceed `maxArgBytes` (default 512 KiB,
 * far below Linux's limit) is it split into several calls, each with whole peers.
 */
export function buildWgSet(ifname: string, change: WgChange, keyPath = '/dev/stdin', maxArgBytes = 512 * 1024): WgSetCommand[] {
  const head = ['wg', 'set', tok(ifname)];
  const first: string[] = [...head];
  if (change.listenPort !== undefined) first.push('listen-port', tok(change.listenPort));
  if (change.privateKey !== undefined) first.push('private-key', tok(keyPath));
  const out: WgSetCommand[] = [];
  let cur = first;
  let bytes = cur.reduce((n, s) => n + s.length + 1, 0);
  for (const p of change.peers) {
    const args = peerArgs(p);
    const size = args.reduce((n, s) => n + s.length + 1, 0);
    if (cur.length > head.length && bytes + size > maxArgBytes) {
      out.push({ argv: cur });
      cur = [...head];
      bytes = cur.reduce((n, s) => n + s.length + 1, 0);
    }
    cur.push(...args);
    bytes += size;
  }
  if (cur.length > head.length) out.push({ argv: cur });
  if (change.privateKey !== undefined) out[0] = { argv: out[0].argv, secret: change.privateKey + '\n' };
  return out;
}

// ---- nft --------------------------------------------------------------------------------------------

export interface NftRuleSpec {
  /** A short stable name for the rule; it goes in the rule's comment. */
  tag: string;
  /** The rule in nft syntax, without a comment. */
  rule: string;
}

export interface NftChainSpec {
  name: string;
  type: 'filter' | 'nat';
  hook: 'input' | 'forward' | 'output' | 'prerouting' | 'postrouting';
  priority: 'filter' | 'srcnat' | 'dstnat' | 'mangle';
  policy: 'accept' | 'drop';
  rules: NftRuleSpec[];
}

/** A named set of addresses (interval set: CIDRs and "a-b" ranges, non-overlapping). */
export interface NftSetSpec {
  name: string;
  type: 'ipv4_addr' | 'ipv6_addr';
  elements: string[];
}

export interface NftTableSpec {
  family: 'inet';
  name: string;
  /** Written as the table comment (for humans: `nft list` shows it; nft 1.0.6 -j does not). */
  comment: string;
  /** Named sets, declared before the chains (rules refer to them as @name). */
  sets?: NftSetSpec[];
  chains: NftChainSpec[];
}

export interface RenderedNftTable {
  /** The table definition. */
  text: string;
  /** Short hash of the definition (rules without comments): it is part of every rule comment. */
  hash: string;
  /** "chain\tcomment" for every rule, the way they read back from `nft -j`: a fingerprint of the table. */
  fingerprint: string[];
}

export function renderNftTable(spec: NftTableSpec): RenderedNftTable {
  const sets = spec.sets ?? [];
  // Sets are part of the definition: a changed element changes the hash, so the table is rewritten.
  const body = [
    ...sets.map((s) => `set|${s.name}|${s.type}|${s.elements.join(',')}`),
    ...spec.chains.map((c) => `${c.name}|${c.type}|${c.hook}|${c.priority}|${c.policy}|${c.rules.map((r) => `${r.tag}=${r.rule}`).join('|')}`),
  ].join('\n');
  const hash = createHash('sha256').update(`${spec.family} ${spec.name}\n${body}`).digest('hex').slice(0, 10);
  const fingerprint: string[] = [];
  const lines = [`table ${spec.family} ${tok(spec.name)} {`, `\tcomment "${spec.comment.replace(/"/g, '')}"`];
  for (const s of sets) {
    lines.push(`\tset ${tok(s.name)} {`, `\t\ttype ${s.type}`, '\t\tflags interval');
    if (s.elements.length > 0) lines.push(`\t\telements = { ${s.elements.map(tok).join(', ')} }`);
    lines.push('\t}');
  }
  for (const c of spec.chains) {
    lines.push(`\tchain ${tok(c.name)} {`);
    lines.push(`\t\ttype ${c.type} hook ${c.hook} priority ${c.priority}; policy ${c.policy};`);
    for (const r of c.rules) {
      const comment = `zmesh:${hash}:${tok(r.tag)}`;
      fingerprint.push(`${c.name}\t${comment}`);
      lines.push(`\t\t${r.rule} comment "${comment}"`);
    }
    lines.push('\t}');
  }
  lines.push('}');
  return { text: lines.join('\n') + '\n', hash, fingerprint: fingerprint.sort() };
}

/** One atomic nft transaction that creates the table, or replaces it wholesale when it exists. */
export function buildNftReplace(spec: NftTableSpec): string {
  return `table ${spec.family} ${tok(spec.name)}\ndelete table ${spec.family} ${tok(spec.name)}\n${renderNftTable(spec).text}`;
}

/** Deletes a table; fails when it does not exist (the caller only deletes tables it read back). */
export function buildNftDelete(family: string, name: string): string {
  return `delete table ${tok(family)} ${tok(name)}\n`;
}
