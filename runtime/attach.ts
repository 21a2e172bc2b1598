// Attaching a workload to its tenant network, after CNI's ADD / DEL / CHECK / GC (cni SPEC.md):
//   ADD    binds the port first (l2.ts: the tenant end may send only from the planned MAC and address), then a
//          veth pair: one end (v-<hash>) in the tenant namespace n-<id>, enslaved to its bridge b-<id>; the
//          other created straight in the container's network namespace and renamed eth0, with the planned
//          address/prefix, a MAC derived from that address (addressMac), the bridge's MTU and a default route
//          via the subnet's gateway. Returns the result read back from the live state; the caller stores it.
//   DEL    removes the tenant end (its peer goes with it) and its binding. Idempotent: a missing link, binding
//          or namespace is fine.
//   CHECK  compares a stored result with the live state (links, routes, binding); returns what differs.
//   GC     removes veths carrying our marker and bindings that no valid workload wants (the binding table too
//          when no workload of the namespace is left).
// Commands go through the netns Runner (argv arrays, never a shell). Builders and parsers are pure.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { RunOptions, RunResult, Runner } from '../netns/runner.ts';
import { addressMac } from '../netns/ip.ts';
import { splitJsonValues } from '../netns/parse.ts';
import { NS_READ, NS_READ6 } from '../netns/state.ts';
import { ZmeshError } from '../src/errors.ts';
import { L2_FAMILY, L2_TABLE, compareBinding, l2DeleteTableText, l2Plan, parseL2, type L2State, type PortBinding } from './l2.ts';
import { CONTAINER_IF, VETH_MARKER, keyFromAlias, type VethNames } from './names.ts';
import type { Attachment } from './types.ts';

export interface LiveLink {
  index: number;
  name: string;
  kind: string | null;
  mtu: number;
  up: boolean;
  master: string | null;
  /** The peer's ifindex (veth with its peer in another namespace). */
  linkIndex: number | null;
  alias: string | null;
  mac: string | null;
  /** inet addresses "a.b.c.d/p". */
  inet: string[];
  /** inet6 addresses of global scope "x:y::z/p" (link-local ones left out). */
  inet6: string[];
}

export interface LiveRoute {
  dst: string;
  gateway: string | null;
  dev: string | null;
}

type J = Record<string, unknown>;

/** `ip -j [-d] link|addr show` → links. */
export function parseLinks(v: unknown): LiveLink[] {
  if (!Array.isArray(v)) throw new Error('ip -j link: expected an array');
  return (v as J[]).map((l) => ({
    index: Number(l.ifindex),
    name: String(l.ifname),
    kind: typeof (l.linkinfo as J | undefined)?.info_kind === 'string' ? String((l.linkinfo as J).info_kind) : null,
    mtu: Number(l.mtu),
    up: Array.isArray(l.flags) && (l.flags as string[]).includes('UP'),
    master: typeof l.master === 'string' ? l.master : null,
    linkIndex: typeof l.link_index === 'number' ? l.link_index : null,
    alias: typeof l.ifalias === 'string' ? l.ifalias : null,
    mac: typeof l.address === 'string' ? l.address : null,
    inet: Array.isArray(l.addr_info)
      ? (l.addr_info as J[]).filter((a) => a.family === 'inet').map((a) => `${String(a.local)}/${Number(a.prefixlen)}`)
      : [],
    inet6: Array.isArray(l.addr_info)
      ? (l.addr_info as J[]).filter((a) => a.family === 'inet6' && a.scope === 'global').map((a) => `${String(a.local)}/${Number(a.prefixlen)}`)
      : [],
  }));
}

/** `ip -j route show` → routes. */
export function parseRoutes(v: unknown): LiveRoute[] {
  if (!Array.isArray(v)) throw new Error('ip -j route: expected an array');
  return (v as J[]).map((r) => ({
    dst: String(r.dst),
    gateway: typeof r.gateway === 'string' ? r.gateway : null,
    dev: typeof r.dev === 'string' ? r.dev : null,
  }));
}

/**
 * The binding table's part of `nft -j list ruleset` as `nft -j list table bridge zmesh-wl` prints it (the metainfo,
 * the table and what belongs to it), or '' when the ruleset has no such table (as that command's failure reads).
 */
export function l2FromRuleset(text: string): string {
  const v = JSON.parse(text) as { nftables?: unknown };
  if (!Array.isArray(v.nftables)) throw new Error('nft -j: no "nftables" array');
  const items = (v.nftables as J[]).filter((item) => {
    if (item.metainfo) return true;
    if (item.table) return (item.table as J).family === L2_FAMILY && (item.table as J).name === L2_TABLE;
    const body = Object.values(item)[0] as J | undefined;
    return !!body && body.family === L2_FAMILY && body.table === L2_TABLE;
  });
  if (!items.some((item) => item.table)) return '';
  return JSON.stringify({ nftables: items });
}

export function inTenantNs(netns: string, argv: string[]): string[] {
  return ['nsenter', `--net=${netns}`, '--', ...argv];
}

export function inContainer(pid: number, argv: string[]): string[] {
  if (!Number.isInteger(pid) || pid <= 0) throw new TypeError(`bad container pid ${pid}`);
  return ['nsenter', '-t', String(pid), '-n', '--', ...argv];
}

export interface AttachRequest {
  workload: string;
  names: VethNames;
  containerId: string;
  pid: number;
  networkId: string;
  netns: string;
  bridge: string;
  ip: string;
  prefix: number;
  gateway: string;
  /** Dual-stack: the IPv6 address, the subnet6 prefix and the IPv6 gateway. */
  ip6?: string;
  prefix6?: number;
  gateway6?: string;
}

/** The container end's MAC for its planned address (netns/ip.ts): whatever holds an address on a tenant
 *  bridge keeps the same MAC, so neighbours that still cache it reach a replaced workload at once. */
export { addressMac };

/**
 * `ip -batch` lines for the tenant namespace: create the pair (peer straight into the container), enslave, and
 * the workload's addresses as permanent neighbours on the bridge (its MAC is addressMac of its address): the
 * namespace never solicits them, so a fresh workload answers its first packet at once (a forwarded packet's
 * solicitation comes from the bridge's link-local address, which a workload ignores for ~2 s while its own is
 * still tentative) and the namespace keeps no dynamic entry for its workloads.
 */
export function tenantAddLines(r: AttachRequest, mtu: number): string[] {
  const mac = addressMac(r.ip);
  return [
    `link add name ${r.names.host} mtu ${mtu} type veth peer name ${r.names.temp} mtu ${mtu} address ${mac} netns ${r.pid}`,
    `link set dev ${r.names.host} alias ${r.names.alias} master ${r.bridge} up`,
    `neigh replace ${r.ip} lladdr ${mac} dev ${r.bridge} nud permanent`,
    ...(dualStack(r) ? [`neigh replace ${r.ip6} lladdr ${mac} dev ${r.bridge} nud permanent`] : []),
  ];
}

/**
 * `ip -batch` lines for the container namespace: rename to eth0, address, up, default route. Only the gateway is
 * on-link (`noprefixroute` and a host route to it): whatever the workload sends to goes to the gateway, so its
 * namespace resolves one neighbour, not one per address of its subnet — the kernel's neighbour table is one for
 * every namespace of the machine (docs/security.md, test/torture/neighbour-table.test.ts). Workloads on the same
 * node reach each other through the tenant namespace (routed, so its rules apply to them too).
 */
export function containerAddLines(r: AttachRequest): string[] {
  return [
    `link set dev ${r.names.temp} name ${CONTAINER_IF}`,
    `addr add ${r.ip}/${r.prefix} dev ${CONTAINER_IF} noprefixroute`,
    `link set dev ${CONTAINER_IF} up`,
    `route replace ${r.gateway} dev ${CONTAINER_IF} scope link`,
    `route replace default via ${r.gateway} dev ${CONTAINER_IF}`,
    // The gateway's MAC is known (the bridge's, addressMac of the gateway): no ARP at all.
    `neigh replace ${r.gateway} lladdr ${addressMac(r.gateway)} dev ${CONTAINER_IF} nud permanent`,
  ];
}

/**
 * Dual-stack: the container's IPv6 address (no duplicate address detection: the plan gives each address once, and
 * DAD would hold it tentative for a second) and its default route via gateway6; [] without ip6. Run after
 * `ipv6Sysctl` (Docker may start a container without networking with IPv6 disabled).
 */
/** Whether the request attaches IPv6 too (its address, prefix and gateway come together). */
function dualStack(r: AttachRequest): r is AttachRequest & { ip6: string; prefix6: number; gateway6: string } {
  return r.ip6 !== undefined && r.prefix6 !== undefined && r.gateway6 !== undefined;
}

export function containerAddLines6(r: AttachRequest): string[] {
  if (!dualStack(r)) return [];
  // The same for IPv6: gateway6 alone on-link, and no fe80::/64 either (a workload could otherwise probe every
  // link-local address; its own link-local address stays, neighbour discovery does not need the route).
  return [
    `addr add ${r.ip6}/${r.prefix6} dev ${CONTAINER_IF} nodad noprefixroute`,
    `route replace ${r.gateway6} dev ${CONTAINER_IF}`,
    `route replace default via ${r.gateway6} dev ${CONTAINER_IF}`,
    `neigh replace ${r.gateway6} lladdr ${addressMac(r.gateway)} dev ${CONTAINER_IF} nud permanent`,
    `route del fe80::/64 dev ${CONTAINER_IF}`,
  ];
}

/**
 * IPv6 on in the container's namespace, no router advertisements taken (the route is ours), and no duplicate
 * address detection for its link-local address either (set before IPv6 comes on): while that address is
 * tentative the first neighbour exchange with the gateway waits a second.
 */
export const IPV6_SYSCTL = ['sysctl', '-q', '-w', `net.ipv6.conf.${CONTAINER_IF}.accept_dad=0`, 'net.ipv6.conf.all.disable_ipv6=0', `net.ipv6.conf.${CONTAINER_IF}.disable_ipv6=0`, `net.ipv6.conf.${CONTAINER_IF}.accept_ra=0`];

/** What differs between a stored attachment and the live state (empty: healthy). Pure. */
export function compareAttachment(a: Attachment, pid: number, host: LiveLink | null, container: LiveLink[] | null, routes: LiveRoute[] | null): string[] {
  const p: string[] = [];
  if (pid !== a.pid) p.push(`container pid changed (${a.pid} → ${pid})`);
  if (!host) p.push(`${a.hostIf} is missing in ${a.netns}`);
  else {
    if (host.master !== a.bridge) p.push(`${a.hostIf} is not enslaved to ${a.bridge}`);
    if (!host.up) p.push(`${a.hostIf} is down`);
    if (host.mtu !== a.mtu) p.push(`${a.hostIf} MTU ${host.mtu} ≠ ${a.mtu}`);
    if (host.alias === null || !host.alias.startsWith(VETH_MARKER)) p.push(`${a.hostIf} lost its marker`);
  }
  if (!container) {
    p.push('the container network namespace cannot be read');
    return p;
  }
  const eth = container.find((l) => l.name === a.containerIf);
  if (!eth) p.push(`${a.containerIf} is missing in the container`);
  else {
    if (!eth.up) p.push(`${a.containerIf} is down`);
    if (eth.inet.length !== 1 || eth.inet[0] !== a.address) p.push(`${a.containerIf} has [${eth.inet.join(', ')}], expected ${a.address}`);
    if (a.address6 !== undefined && (eth.inet6.length !== 1 || eth.inet6[0] !== a.address6)) p.push(`${a.containerIf} has IPv6 [${eth.inet6.join(', ')}], expected ${a.address6}`);
    if (eth.mtu !== a.mtu) p.push(`${a.containerIf} MTU ${eth.mtu} ≠ ${a.mtu}`);
    if (host && (eth.linkIndex !== host.index || host.linkIndex !== eth.index)) p.push(`${a.containerIf} is not the peer of ${a.hostIf}`);
  }
  const def = (routes ?? []).find((r) => r.dst === 'default');
  if (!def || def.gateway !== a.gateway || def.dev !== a.containerIf) p.push(`default route is ${def ? `via ${def.gateway} dev ${def.dev}` : 'missing'}, expected via ${a.gateway}`);
  // Only the gateway on-link (an attachment made before that holds its whole subnet on-link: attached again).
  const onLink = (routes ?? []).filter((r) => r.dst !== 'default' && r.gateway === null && r.dst !== a.gateway);
  if (onLink.length) p.push(`on-link route(s) ${onLink.map((r) => r.dst).join(', ')}: only the gateway ${a.gateway} should be`);
  return p;
}

/** What compute needs of the attacher (a fake in unit tests). */
export type AttachPort = Pick<Attacher, 'add' | 'check' | 'del' | 'gc'> & Partial<Pick<Attacher, 'pass' | 'forget'>>;

const GONE = /Cannot find device|No such file or directory|does not exist/;

export class Attacher {
  /**
   * During a pass (compute's reconcile: every workload's CHECK, then the GC of every namespace), each tenant
   * namespace's links and binding table are read once and shared; any mutating command forgets them all. Outside
   * a pass every call reads. A node with 2 networks and a workload in each: 10 reads → 6 per reconcile.
   */
  private readonly scope = new AsyncLocalStorage<Map<string, Promise<unknown>>>();

  constructor(private readonly run: Runner) {}

  /** The reads shared by the pass this call runs in (its async context), or null outside any pass. */
  private get shared(): Map<string, Promise<unknown>> | null {
    return this.scope.getStore() ?? null;
  }

  /**
   * Runs `fn` with reads shared (see above) among the calls made from it: another caller of the same attacher
   * meanwhile (not in `fn`'s async context) reads for itself. Passes do not nest: an inner one shares the outer one's.
   */
  async pass<T>(fn: () => Promise<T>): Promise<T> {
    if (this.shared) return fn();
    return this.scope.run(new Map(), fn);
  }

  /** After a change made outside the attacher (the engine removed or started a container: its veth pair went with
   *  its namespace): the reads of this pass and the reconcile's shared reads are forgotten. */
  forget(): void {
    this.shared?.clear();
    this.run.forgetReads?.();
  }

  /** Every command of the attacher goes through here: a mutating one forgets the shared reads. */
  private async exec(argv: string[], opts: RunOptions): Promise<RunResult> {
    if (!opts.mutating) return this.run.run(argv, opts);
    this.shared?.clear();
    try {
      return await this.run.run(argv, opts);
    } finally {
      this.shared?.clear(); // also what was read while it ran
    }
  }

  private once<T>(key: string, read: () => Promise<T>): Promise<T> {
    if (!this.shared) return read();
    let p = this.shared.get(key) as Promise<T> | undefined;
    if (!p) {
      p = read();
      this.shared.set(key, p);
      // A failed read is not kept: the next caller reads again.
      const shared = this.shared;
      p.catch(() => {
        if (shared.get(key) === p) shared.delete(key);
      });
    }
    return p;
  }

  private async tenantLinks(netns: string, dev?: string): Promise<LiveLink[] | null> {
    if (this.shared) {
      // All of the namespace's links once; one of them is a filter of that (a missing one: [], as its own read says).
      const all = await this.once(`links ${netns}`, () => this.readTenantLinks(netns));
      return dev ? (all ?? []).filter((l) => l.name === dev) : all;
    }
    return this.readTenantLinks(netns, dev);
  }

  private async readTenantLinks(netns: string, dev?: string): Promise<LiveLink[] | null> {
    if (!dev) {
      // The data plane's read of this namespace in the same reconcile (its first value is `address show`, -d -json).
      const v = await this.fromDataPlane(['ip', '-d', '-json', '-batch', '-'], netns, [NS_READ, NS_READ6]);
      if (v !== null) return parseLinks(splitJsonValues(v)[0] ?? []);
    }
    const r = await this.exec(inTenantNs(netns, ['ip', '-j', '-d', 'addr', 'show', ...(dev ? ['dev', dev] : [])]), { mutating: false, okCodes: [0, 1] });
    if (r.exitCode !== 0) {
      if (GONE.test(r.stderr)) return dev ? [] : null;
      throw new ZmeshError('E_ATTACH_READ', `cannot read ${netns}: ${r.stderr.trim()}`, { kind: 'retryable' });
    }
    return parseLinks(JSON.parse(r.stdout || '[]'));
  }

  /** The container's links and routes, in one batch (null when its namespace is gone). */
  async containerState(pid: number): Promise<{ links: LiveLink[]; routes: LiveRoute[] } | null> {
    const r = await this.exec(inContainer(pid, ['ip', '-j', '-batch', '-']), { input: 'addr show\nroute show\n', mutating: false, okCodes: [0, 1] });
    if (r.exitCode !== 0) return null;
    const [links, routes] = splitJsonValues(r.stdout);
    return { links: parseLinks(links ?? []), routes: parseRoutes(routes ?? []) };
  }

  /** The namespace's binding table (l2.ts), or a state saying it is not there. */
  l2State(netns: string): Promise<L2State | null> {
    return this.once(`l2 ${netns}`, () => this.readL2State(netns));
  }

  /**
   * The stdout of a read the data plane made of this namespace in the current reconcile (Runner.sharedRead), for one
   * of `inputs`; null when there is none (outside a reconcile, before the data plane read it, after a change, or
   * when it failed: the caller then reads for itself).
   */
  private async fromDataPlane(argv: string[], netns: string, inputs: (string | undefined)[]): Promise<string | null> {
    for (const input of inputs) {
      const p = this.run.sharedRead?.(inTenantNs(netns, argv), { input });
      if (!p) continue;
      try {
        return (await p).stdout;
      } catch {
        return null;
      }
    }
    return null;
  }

  private async readL2State(netns: string): Promise<L2State | null> {
    // The table within the data plane's `nft -j list ruleset` of this namespace, read in the same reconcile.
    const ruleset = await this.fromDataPlane(['nft', '-j', 'list', 'ruleset'], netns, [undefined]);
    if (ruleset !== null) return parseL2(l2FromRuleset(ruleset));
    const r = await this.exec(inTenantNs(netns, ['nft', '-j', 'list', 'table', L2_FAMILY, L2_TABLE]), { mutating: false, okCodes: [0, 1] });
    if (r.exitCode !== 0) {
      if (/No such file or directory|does not exist/.test(r.stderr) && !/nsenter/.test(r.stderr)) return parseL2('');
      if (GONE.test(r.stderr)) return null; // the namespace itself is gone
      throw new ZmeshError('E_ATTACH_READ', `cannot read nft table ${L2_FAMILY} ${L2_TABLE} in ${netns}: ${r.stderr.trim()}`, { kind: 'retryable' });
    }
    return parseL2(r.stdout);
  }

  /** Makes the namespace's bindings `want` (plus unbinding `unbind`) in one nft transaction; nothing when they are. */
  private async bind(netns: string, live: L2State, want: PortBinding[], unbind: string[] = []): Promise<boolean> {
    const text = l2Plan(live, want, unbind);
    if (!text) return false;
    const r = await this.exec(inTenantNs(netns, ['nft', '-f', '-']), { input: text, mutating: true, okCodes: [0, 1] });
    if (r.exitCode !== 0) throw new ZmeshError('E_ATTACH', `cannot bind ports in ${netns}: ${r.stderr.trim()}`, { kind: 'retryable' });
    return true;
  }

  /** ADD. Binds the port, replaces a stale tenant end of the same name, creates the pair. Returns the result read back. */
  async add(r: AttachRequest, now = new Date()): Promise<Attachment> {
    // Fresh reads, never the pass's shared ones: the data plane may have made the bridge since they were read.
    const bridge = (await this.readTenantLinks(r.netns, r.bridge))?.[0];
    if (!bridge) {
      throw new ZmeshError('E_NETWORK_NOT_READY', `bridge ${r.bridge} is missing in ${r.netns}`, { kind: 'retryable', hint: 'the network has not been applied on this node yet; the next reconcile retries' });
    }
    const l2 = await this.readL2State(r.netns);
    if (!l2) throw new ZmeshError('E_NETWORK_NOT_READY', `${r.netns} is gone`, { kind: 'retryable' });
    await this.bind(r.netns, l2, [{ ifname: r.names.host, mac: addressMac(r.ip), ip: r.ip, ...(r.ip6 !== undefined ? { ip6: r.ip6 } : {}) }]);
    await this.delLink(r.netns, r.names.host);
    const mtu = bridge.mtu;
    await this.exec(inTenantNs(r.netns, ['ip', '-batch', '-']), { input: tenantAddLines(r, mtu).join('\n') + '\n', mutating: true });
    try {
      await this.exec(inContainer(r.pid, ['ip', '-batch', '-']), { input: containerAddLines(r).join('\n') + '\n', mutating: true });
      const six = containerAddLines6(r);
      if (six.length) {
        await this.exec(inContainer(r.pid, IPV6_SYSCTL), { mutating: true });
        await this.exec(inContainer(r.pid, ['ip', '-batch', '-']), { input: six.join('\n') + '\n', mutating: true });
      }
    } catch (e) {
      await this.delLink(r.netns, r.names.host).catch(() => undefined);
      throw e;
    }
    const host = (await this.tenantLinks(r.netns, r.names.host))?.[0];
    const cs = await this.containerState(r.pid);
    const eth = cs?.links.find((l) => l.name === CONTAINER_IF);
    if (!host || !eth) throw new ZmeshError('E_ATTACH', `attached ${r.workload} but cannot read the pair back`, { kind: 'retryable' });
    return {
      workload: r.workload,
      containerId: r.containerId,
      pid: r.pid,
      networkId: r.networkId,
      netns: r.netns,
      bridge: r.bridge,
      hostIf: r.names.host,
      hostIfIndex: host.index,
      containerIf: CONTAINER_IF,
      containerIfIndex: eth.index,
      address: `${r.ip}/${r.prefix}`,
      gateway: r.gateway,
      ...(dualStack(r) ? { address6: `${r.ip6}/${r.prefix6}`, gateway6: r.gateway6 } : {}),
      mtu,
      mac: eth.mac ?? '',
      at: now.toISOString(),
    };
  }

  /** CHECK: what differs between the stored result and the live state (empty: healthy). */
  async check(a: Attachment, pid: number): Promise<string[]> {
    const host = (await this.tenantLinks(a.netns, a.hostIf))?.[0] ?? null;
    const cs = pid > 0 ? await this.containerState(pid) : null;
    const p = compareAttachment(a, pid, host, cs?.links ?? null, cs?.routes ?? null);
    const l2 = await this.l2State(a.netns);
    const ip = a.address.split('/')[0];
    if (l2) p.push(...compareBinding(l2, { ifname: a.hostIf, mac: addressMac(ip), ip, ...(a.address6 ? { ip6: a.address6.split('/')[0] } : {}) }));
    return p;
  }

  /** DEL: idempotent (the link, then its binding). Returns whether something was removed. */
  async del(a: { netns: string; hostIf: string; bridge?: string; address?: string; address6?: string }): Promise<boolean> {
    const link = await this.delLink(a.netns, a.hostIf);
    // Its permanent neighbours on the bridge (tenantAddLines); gone already with the bridge or namespace.
    const neigh = a.bridge ? [a.address, a.address6].filter((x): x is string => x !== undefined).map((x) => `neigh del ${x.split('/')[0]} dev ${a.bridge}`) : [];
    if (neigh.length) await this.exec(inTenantNs(a.netns, ['ip', '-force', '-batch', '-']), { input: neigh.join('\n') + '\n', mutating: true, okCodes: [0, 1, 2, 255] });
    const l2 = await this.l2State(a.netns);
    const bound = !!l2 && l2.elements.some((e) => e.ifname === a.hostIf) && (await this.bind(a.netns, l2, [], [a.hostIf]));
    return link || bound;
  }

  private async delLink(netns: string, ifname: string): Promise<boolean> {
    const r = await this.exec(inTenantNs(netns, ['ip', 'link', 'del', 'dev', ifname]), { mutating: true, okCodes: [0, 1, 2] });
    if (r.exitCode === 0) return true;
    if (GONE.test(r.stderr)) return false;
    throw new ZmeshError('E_DETACH', `cannot delete ${ifname} in ${netns}: ${r.stderr.trim()}`, { kind: 'retryable' });
  }

  /** Our veths (alias marker) in a tenant namespace: name → workload key. Empty when the namespace is gone. */
  async owned(netns: string): Promise<Map<string, string>> {
    const links = await this.tenantLinks(netns);
    const out = new Map<string, string>();
    for (const l of links ?? []) {
      const key = keyFromAlias(l.alias);
      if (key) out.set(l.name, key);
    }
    return out;
  }

  /**
   * GC: removes our veths and port bindings in these namespaces whose port name is not in `valid`, and the
   * binding table of a namespace where nothing is valid. Returns "netns:ifname" (or "netns:nft table …") removed.
   */
  async gc(namespaces: string[], valid: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const ns of namespaces) {
      for (const [name] of await this.owned(ns)) {
        if (valid.has(name)) continue;
        if (await this.delLink(ns, name)) removed.push(`${ns}:${name}`);
      }
      const l2 = await this.l2State(ns);
      if (!l2?.exists) continue;
      const stale = l2.elements.filter((e) => !valid.has(e.ifname));
      const wanted = l2.elements.some((e) => valid.has(e.ifname));
      if (!wanted && ![...valid].length) {
        await this.exec(inTenantNs(ns, ['nft', '-f', '-']), { input: l2DeleteTableText(), mutating: true });
        removed.push(`${ns}:nft table ${L2_FAMILY} ${L2_TABLE}`);
      } else if (stale.length) {
        await this.bind(ns, l2, [], stale.map((e) => e.ifname));
        for (const e of stale) removed.push(`${ns}:binding ${e.ifname}`);
      }
    }
    return removed;
  }
}
