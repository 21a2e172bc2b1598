// Pure builders of a tenant network's resolver (netns/dns.ts runs it): dnsmasq's config file and its hosts file.
// The config makes dnsmasq answer only from the hosts file, only on the node's gateway addresses in the tenant
// namespace, and NXDOMAIN for every other name (nothing is forwarded anywhere); the hosts file holds the
// network's records (src/plan/names.ts). Tested against exact text (test/unit/dns-build.test.ts).
import { isIPv4, isIPv6 } from 'node:net';
import { DNS_LABEL, type NameRecord } from '../src/plan/names.ts';

/** Concurrent queries dnsmasq handles (forwarded and TCP): its own bound; nothing is forwarded here anyway. */
export const DNS_FORWARD_MAX = 64;

export interface ResolverConfigInput {
  /** The network's name: the zone answered locally. */
  network: string;
  /** Absolute path of the hosts file. */
  hostsFile: string;
  /** Addresses to listen on: the node's gateway (and gateway6) on the bridge. */
  listen: string[];
  /**
   * Resolvers the names not served here go to (IPv4 addresses, reached by the network's egress); none: every
   * other name is NXDOMAIN. The network's own zone is never forwarded.
   */
  upstreams?: string[];
  /** The unprivileged user and group dnsmasq drops to after binding port 53. */
  user?: string;
  group?: string;
}

/** Refuses anything that could break out of one config line (the inputs are checked upstream too). */
function safe(v: string, what: string, ok: (s: string) => boolean): string {
  if (typeof v !== 'string' || /[\s\0]/.test(v) || !ok(v)) throw new TypeError(`bad ${what} ${JSON.stringify(v)}`);
  return v;
}

/** dnsmasq's config for one tenant network (one line per option, no secrets). */
export function resolverConfig(c: ResolverConfigInput): string {
  const network = safe(c.network, 'network name', (s) => DNS_LABEL.test(s));
  const hosts = safe(c.hostsFile, 'hosts file path', (s) => /^\/[A-Za-z0-9._/-]+$/.test(s));
  const user = safe(c.user ?? 'nobody', 'user', (s) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s));
  const group = safe(c.group ?? 'nogroup', 'group', (s) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s));
  const listen = c.listen.map((a) => safe(a, 'listen address', (s) => isIPv4(s) || isIPv6(s)));
  if (!listen.length) throw new TypeError('a resolver listens on at least one address');
  const upstreams = (c.upstreams ?? []).map((a) => safe(a, 'upstream address', (s) => isIPv4(s)));
  return [
    `# zmesh resolver of network ${network}: generated, do not edit (docs/dns.md)`,
    // Answers come from our hosts file only: no /etc/hosts, no /etc/resolv.conf; upstreams only as named here.
    'no-hosts',
    `addn-hosts=${hosts}`,
    'no-resolv',
    'no-poll',
    // The network's zone is answered here, NXDOMAIN for what is not in the hosts file; so is every other name (#)
    // unless upstreams are named: then those go there (never single labels, never private reverse zones).
    `local=/${network}/`,
    ...(upstreams.length ? upstreams.map((a) => `server=${a}`) : ['local=/#/']),
    'domain-needed',
    'bogus-priv',
    // Only the gateway addresses in this namespace; bind-dynamic picks up an address that comes (back) later,
    // e.g. an IPv6 gateway still in duplicate address detection or a bridge the driver recreated.
    ...listen.map((a) => `listen-address=${a}`),
    'bind-dynamic',
    'port=53',
    // No DHCP, no router advertisements, no TFTP: none of it is configured, so none runs.
    `user=${user}`,
    `group=${group}`,
    // Local answers need no cache; forwarded ones are cached per network (no other tenant shares this daemon).
    `cache-size=${upstreams.length ? 1000 : 0}`,
    `dns-forward-max=${DNS_FORWARD_MAX}`,
    'log-facility=-',
    'pid-file=',
    '',
  ].join('\n');
}

/** The hosts file: one line per address and name, in the records' order. */
export function resolverHosts(network: string, records: readonly NameRecord[]): string {
  const lines = [`# zmesh names of network ${network} (docs/dns.md)`];
  for (const r of records) {
    if (!(r.type === 'A' ? isIPv4(r.address) : isIPv6(r.address))) continue;
    if (!r.name.split('.').every((l) => DNS_LABEL.test(l))) continue;
    lines.push(`${r.address} ${r.name}`);
  }
  return lines.join('\n') + '\n';
}

/** What one `busybox nslookup NAME SERVER` said. */
export interface LookupResult {
  /** The server answered NXDOMAIN. */
  nxdomain: boolean;
  /** Addresses answered (A and AAAA), sorted; empty for NXDOMAIN, no answer or no reply. */
  addresses: string[];
  /** The server answered at all (NXDOMAIN included). */
  answered: boolean;
}

/** Parses busybox nslookup's output: the server's two header lines, then "Name:"/"Address:" pairs or "can't find". */
export function parseNslookup(stdout: string, stderr: string, exitCode: number): LookupResult {
  const text = `${stdout}\n${stderr}`;
  const nxdomain = /can't find .*: NXDOMAIN/.test(text);
  const addresses: string[] = [];
  // The first "Address:" is the server's own ("Address: 10.1.1.1:53"); answers follow a "Name:" line.
  let named = false;
  for (const line of stdout.split('\n')) {
    if (/^Name:\s/.test(line)) named = true;
    const m = named ? /^Address:\s+(\S+)$/.exec(line) : null;
    if (m && (isIPv4(m[1]) || isIPv6(m[1]))) addresses.push(m[1]);
  }
  const answered = nxdomain || addresses.length > 0 || (exitCode === 0 && !/timed out|no servers could be reached/i.test(text));
  return { nxdomain, addresses: [...new Set(addresses)].sort(), answered };
}
