// Candidate endpoints of other hidden nodes (for direct paths, topology/paths.ts): data from the network, not
// from the tenant. Checked here before the agent keeps any of it: an endpoint is an IP literal and a port, never
// unspecified, loopback, multicast, broadcast or link-local, never inside a tenant range of the network; at most
// MAX_CANDIDATES per node; only for the direct peers this node's plan part names. A candidate can only ever be
// an endpoint WireGuard dials: keys, subnets and allowed-ips come from the plan alone.
// One bad entry refuses the whole submission (nothing is half-applied).
import { isIP } from 'node:net';
import type { Problem } from '../errors.ts';
import { canonicalEndpoint, parseIp } from '../../netns/ip.ts';
import { cidrContainsIp, parseCidr, parseIPv4 } from '../../topology/cidr.ts';
import { cidr6ContainsIp, parseCidr6 } from '../../topology/cidr6.ts';

export const MAX_CANDIDATES = 8;
/** A hostile submission gets this many problems back, not one per entry. */
const MAX_PROBLEMS = 50;

/** networkId → other hidden node → candidate endpoints, in the order to try them. */
export type CandidateMap = Map<string, Map<string, string[]>>;

/** What a hidden node may be told about: its networks' direct peers and the ranges candidates must stay out of. */
export interface DirectPeerIndex {
  /** networkId → { range, direct peer node ids }. */
  networks: Map<string, { ipRange: string; ipRange6?: string; peers: Set<string> }>;
}

/** Why an endpoint cannot be a candidate, or null when it can. */
export function candidateProblem(ep: unknown, ipRange?: string, ipRange6?: string): string | null {
  if (typeof ep !== 'string' || ep.length > 64) return 'not an "ip:port" or "[ipv6]:port" string';
  const canon = canonicalEndpoint(ep);
  if (!canon || canon !== ep) return 'not a canonical "ip:port" or "[ipv6]:port"';
  const host = ep.startsWith('[') ? ep.slice(1, ep.indexOf(']')) : ep.slice(0, ep.lastIndexOf(':'));
  if (isIP(host) === 4) {
    const n = parseIPv4(host)!;
    const first = n >>> 24;
    if (first === 0 || first === 127) return 'an unspecified or loopback address';
    if (first >= 224) return 'a multicast, reserved or broadcast address';
    if (n >>> 16 === 0xa9fe) return 'a link-local address';
    const r = ipRange ? parseCidr(ipRange) : null;
    if (r && cidrContainsIp(r, n)) return `an address inside the network's own range ${ipRange}`;
    return null;
  }
  const l = host.toLowerCase();
  if (l === '::' || l === '::1') return 'an unspecified or loopback address';
  // ::/96 embeds an IPv4 address (::7f00:1 is 127.0.0.1; a host's sit0 tunnels it there): never a candidate.
  if (parseIp(host)!.value >> 32n === 0n) return 'an IPv4-compatible address (::/96)';
  if (l.startsWith('ff')) return 'a multicast address';
  if (/^fe[89ab]/.test(l)) return 'a link-local address';
  if (l.startsWith('::ffff:')) return 'an IPv4-mapped address';
  const r6 = ipRange6 ? parseCidr6(ipRange6, false) : null;
  if (r6 && cidr6ContainsIp(r6, parseIp(host)!.value)) return `an address inside the network's own IPv6 range ${ipRange6}`;
  return null;
}

/** Checks a candidate submission `{networks: {<networkId>: {<node>: [endpoint…]}}}` against the index. */
export function validateCandidates(body: unknown, index: DirectPeerIndex): { candidates: CandidateMap; problems: Problem[] } {
  const problems: Problem[] = [];
  const out: CandidateMap = new Map();
  const bad = (path: string, message: string, hint = 'candidates come from the control plane; see docs/paths.md') => {
    if (problems.length < MAX_PROBLEMS) problems.push({ code: 'E_CANDIDATES', path, message, hint });
  };
  const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!obj(body) || !obj(body.networks) || Object.keys(body).some((k) => k !== 'networks')) {
    bad('candidates', 'expected {"networks": {<network id>: {<node>: ["ip:port", …]}}}');
    return { candidates: out, problems };
  }
  for (const [net, peers] of Object.entries(body.networks)) {
    const at = `networks.${net}`;
    const known = index.networks.get(net);
    if (!known) {
      bad(at, `network ${net.slice(0, 40)} has no direct peers on this node`);
      continue;
    }
    if (!obj(peers)) {
      bad(at, 'expected {<node>: ["ip:port", …]}');
      continue;
    }
    const m = new Map<string, string[]>();
    for (const [node, list] of Object.entries(peers)) {
      const p = `${at}.${node.slice(0, 64)}`;
      if (!known.peers.has(node)) {
        bad(p, `${node.slice(0, 64)} is not a direct peer of this node in the network (only other hidden nodes are)`);
        continue;
      }
      if (!Array.isArray(list)) {
        bad(p, 'expected a list of endpoints');
        continue;
      }
      if (list.length > MAX_CANDIDATES) {
        bad(p, `${list.length} candidates; at most ${MAX_CANDIDATES}`);
        continue;
      }
      list.forEach((ep, i) => {
        const why = candidateProblem(ep, known.ipRange, known.ipRange6);
        if (why) bad(`${p}[${i}]`, `${JSON.stringify(ep).slice(0, 70)}: ${why}`);
      });
      m.set(node, [...new Set(list as string[])]);
    }
    out.set(net, m);
  }
  return { candidates: problems.length ? new Map() : out, problems };
}
