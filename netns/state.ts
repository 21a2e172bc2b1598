// Reading the live state: the host namespace, a tenant namespace, a WireGuard device, nft tables.
// Read commands only; the parsing is in parse.ts.
import type { Runner } from './runner.ts';
import {
  parseIpLinks,
  parseIpRoutes,
  parseIpv4Forwarding,
  parseIpv6Forwarding,
  parseNetnsList,
  parseNftRuleset,
  parseWgDump,
  splitJsonValues,
  ParseError,
  type IpLink,
  type IpRoute,
  type NftTable,
  type WgDevice,
} from './parse.ts';
import type { ActualLink } from './types.ts';

export interface HostState {
  netns: Set<string>;
  links: Map<string, IpLink>;
  defaultDev: string | null;
  forwarding: boolean;
  /** IPv6 forwarding ("all"); false when the host has no IPv6. */
  forwarding6?: boolean;
  /** Egress blocks handed out during this apply (not yet visible as addresses). */
  reserved: string[];
  /** Devices of the host's IPv6 default routes (set by the apply when a network has egress). */
  uplinks6?: string[];
}

export interface NsState {
  links: Map<string, IpLink>;
  routes: IpRoute[];
  forwarding: boolean;
  /** IPv6 forwarding ("all"); false when the namespace has no IPv6. */
  forwarding6?: boolean;
}

function byName(links: IpLink[]): Map<string, IpLink> {
  return new Map(links.map((l) => [l.name, l]));
}

// `netns list` prints nothing at all (not even []) while /run/netns does not exist: it goes last.
export const HOST_READ = 'address show\nroute show default\nnetconf show\nnetns list\n';
export const NS_READ = 'address show\nroute show table main\nnetconf show\n';
/**
 * A dual-stack namespace's read: `route show` with a table names one family (IPv4) and `ip -batch` cannot switch
 * families, so every table of both is listed and the main table's routes kept (still one process).
 */
export const NS_READ6 = 'address show\nroute show table all\nnetconf show\n';

/** One process: namespaces, links with addresses, the default route, IPv4 forwarding of the host. */
export async function readHost(run: Runner): Promise<HostState> {
  const r = await run.run(['ip', '-d', '-json', '-batch', '-'], { input: HOST_READ, mutating: false });
  const v = splitJsonValues(r.stdout);
  if (v.length !== 3 && v.length !== 4) throw new ParseError(`host read: expected 4 JSON values, got ${v.length}`);
  const routes = parseIpRoutes(v[1]);
  return {
    netns: new Set(v.length === 4 ? parseNetnsList(v[3]) : []),
    links: byName(parseIpLinks(v[0])),
    defaultDev: routes.find((x) => x.dst === 'default')?.dev ?? null,
    forwarding: parseIpv4Forwarding(v[2]),
    forwarding6: parseIpv6Forwarding(v[2]),
    reserved: [],
  };
}

/**
 * The host's main-table routes of both families (two processes: `ip -batch` cannot switch families), for the
 * egress blocked set. A host without IPv6 (the family refused) has no IPv6 routes. The IPv4 default route is
 * "default", the IPv6 one "::/0" (isDefaultRoute: either).
 */
export async function readHostRoutes(run: Runner): Promise<IpRoute[]> {
  const [v4, v6] = await Promise.all([
    run.run(['ip', '-4', '-json', 'route', 'show', 'table', 'main'], { mutating: false }),
    run.run(['ip', '-6', '-json', 'route', 'show', 'table', 'main'], { mutating: false, okCodes: [0, 1, 2, 255] }),
  ]);
  const six = v6.exitCode === 0 ? parseIpRoutes(v6.stdout, 6).map((r) => (r.dst === 'default' ? { ...r, dst: '::/0' } : r)) : [];
  return [...parseIpRoutes(v4.stdout, 4), ...six];
}

/** Whether a route read by readHostRoutes is a default route of either family. */
export function isDefaultRoute(r: Pick<IpRoute, 'dst'>): boolean {
  return r.dst === 'default' || r.dst === '::/0';
}

/**
 * One process: links with addresses, main-table routes and forwarding inside a namespace. `dual`: the routes of
 * both families (NS_READ6); else IPv4's only.
 */
export async function readNs(run: Runner, ns: string, dual = false): Promise<NsState> {
  const r = await run.run(['ip', '-d', '-json', '-batch', '-'], { netns: ns, input: dual ? NS_READ6 : NS_READ, mutating: false });
  const v = splitJsonValues(r.stdout);
  if (v.length !== 3) throw new ParseError(`namespace read: expected 3 JSON values, got ${v.length}`);
  // `table all` prints a "table" field on every route not of the main table; the kernel's link-local routes
  // (fe80::/64 on every link with IPv6) are left out like link-local addresses.
  // Both families print their default route as "default": IPv6's (it has a `pref`, or an IPv6 gateway) becomes
  // "::/0", as the layout names it (IPv6 egress), so that the two never stand for each other in a diff.
  const routes =
    dual && Array.isArray(v[1])
      ? (v[1] as { table?: unknown; dst?: unknown; pref?: unknown; gateway?: unknown }[])
          .filter((x) => (x.table === undefined || x.table === 'main') && !(typeof x.dst === 'string' && /^fe80::\/64$/i.test(x.dst)))
          .map((x) => (x.dst === 'default' && (x.pref !== undefined || (typeof x.gateway === 'string' && x.gateway.includes(':'))) ? { ...x, dst: '::/0' } : x))
      : v[1];
  return { links: byName(parseIpLinks(v[0])), routes: parseIpRoutes(routes), forwarding: parseIpv4Forwarding(v[2]), forwarding6: parseIpv6Forwarding(v[2]) };
}

/** `wg show <if> dump`, or null when there is no such WireGuard interface (or its daemon is gone). */
export async function readWg(run: Runner, ifname: string, netns: string | undefined): Promise<WgDevice | null> {
  const r = await run.run(['wg', 'show', ifname, 'dump'], { netns, mutating: false, okCodes: [0, 1] });
  if (r.exitCode !== 0) return null;
  return parseWgDump(r.stdout);
}

export async function readNft(run: Runner, netns?: string): Promise<NftTable[]> {
  const r = await run.run(['nft', '-j', 'list', 'ruleset'], { netns, mutating: false });
  return parseNftRuleset(r.stdout);
}

/** The marker on a namespace's loopback (null when absent), or undefined when the namespace cannot be read. */
export async function readNsMarker(run: Runner, ns: string): Promise<string | null | undefined> {
  const r = await run.run(['ip', '-json', 'link', 'show', 'dev', 'lo'], { netns: ns, mutating: false, okCodes: [0, 1, 255] });
  if (r.exitCode !== 0) return undefined;
  return parseIpLinks(r.stdout)[0]?.alias ?? null;
}

export function toActualLink(l: IpLink): ActualLink {
  return {
    name: l.name,
    kind: l.kind,
    mtu: l.mtu,
    up: l.up,
    alias: l.alias,
    addresses: l.addrs.filter((a) => !(a.family === 'inet6' && a.scope === 'link')).map((a) => a.cidr),
  };
}

/** The host's `net.ipv6.conf.<dev>.accept_ra` settings, as `sysctl -a` prints them (one process; read only). */
export async function readAcceptRa(run: Runner): Promise<string> {
  const r = await run.run(['sysctl', '-a', '-r', '^net\\.ipv6\\.conf\\..+\\.accept_ra$'], { mutating: false, okCodes: [0, 1, 255] });
  return r.stdout;
}

/**
 * What turning on the host's IPv6 forwarding takes (IPv6 egress), from `readAcceptRa`'s text. A forwarding
 * interface ignores router advertisements unless its accept_ra is 2: every interface that accepts them now
 * (accept_ra = 1; not all/default/lo, not zmesh's own links) gets 2 first, so that the host keeps the default
 * route and addresses its routers give it (SLAAC). Then `net.ipv6.conf.all.forwarding=1`. Pure; sorted.
 */
export function forwarding6Settings(acceptRa: string): string[] {
  const keep: string[] = [];
  for (const line of acceptRa.split('\n')) {
    const m = /^net\.ipv6\.conf\.([A-Za-z0-9._@/-]{1,15})\.accept_ra = 1$/.exec(line.trim());
    if (!m || ['all', 'default', 'lo'].includes(m[1]) || /^(ze|eg|w|b|n)-[a-z0-9]{10}$/.test(m[1])) continue;
    keep.push(`net.ipv6.conf.${m[1]}.accept_ra=2`);
  }
  return [...keep.sort(), 'net.ipv6.conf.all.forwarding=1'];
}
