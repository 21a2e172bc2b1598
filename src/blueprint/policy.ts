// The syntax of a network policy's selectors and ports (docs/policy.md). Pure; shared by validation and the
// policy compiler (src/plan/policy.ts).
import { parseCidr, type Cidr } from '../../topology/cidr.ts';
import { cidr6Contains, parseCidr6, ULA, type Cidr6 } from '../../topology/cidr6.ts';

export const MAX_POLICY_RULES = 1000;
export const MAX_RULE_ITEMS = 1000;
export const MAX_GROUPS = 64;

export type Selector =
  | { kind: 'workload' | 'device' | 'node' | 'group'; name: string }
  | { kind: 'cidr'; cidr: Cidr; text: string }
  /** An IPv6 CIDR (dual-stack networks): inside fc00::/7; the compiler keeps what lies inside the network's ipv6Range. */
  | { kind: 'cidr6'; cidr: Cidr6; text: string }
  | { kind: 'any' };

export type Port = { proto: 'tcp' | 'udp'; from: number; to: number } | { proto: 'icmp' } | { proto: 'any' };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A selector, or why it is not one (`E_POLICY_SELECTOR` / `E_POLICY_CIDR`). */
export function parseSelector(text: string): Selector | { error: 'E_POLICY_SELECTOR' | 'E_POLICY_CIDR'; message: string } {
  if (text === 'any') return { kind: 'any' };
  const colon = text.indexOf(':');
  const kind = colon > 0 ? text.slice(0, colon) : '';
  const rest = text.slice(colon + 1);
  const shown = JSON.stringify(text.slice(0, 80));
  if (kind === 'cidr') {
    if (rest.includes(':')) {
      const c6 = parseCidr6(rest, true);
      if (!c6 || !cidr6Contains(ULA, c6)) return { error: 'E_POLICY_CIDR', message: `${shown}: ${JSON.stringify(rest.slice(0, 50))} is not an IPv6 CIDR without host bits inside fc00::/7` };
      return { kind: 'cidr6', cidr: c6, text: rest };
    }
    const c = parseCidr(rest, true);
    if (!c) return { error: 'E_POLICY_CIDR', message: `${shown}: ${JSON.stringify(rest.slice(0, 40))} is not an IPv4 CIDR without host bits` };
    return { kind: 'cidr', cidr: c, text: rest };
  }
  if (kind === 'workload' || kind === 'device' || kind === 'node' || kind === 'group') {
    if (!LABEL.test(rest)) return { error: 'E_POLICY_SELECTOR', message: `${shown}: ${JSON.stringify(rest.slice(0, 70))} is not a name (DNS label)` };
    return { kind, name: rest };
  }
  return { error: 'E_POLICY_SELECTOR', message: `${shown} is not workload:NAME, device:NAME, node:NAME, group:NAME, cidr:A.B.C.D/N, cidr:IPV6/N or any` };
}

/** A port spec, or why it is not one. */
export function parsePort(text: string): Port | { error: 'E_POLICY_PORT'; message: string } {
  if (text === 'any') return { proto: 'any' };
  if (text === 'icmp') return { proto: 'icmp' };
  const m = /^(tcp|udp)\/(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const shown = JSON.stringify(text.slice(0, 40));
  if (!m) return { error: 'E_POLICY_PORT', message: `${shown} is not tcp/N, tcp/N-M, udp/N, udp/N-M, icmp or any` };
  const from = Number(m[2]);
  const to = m[3] === undefined ? from : Number(m[3]);
  if (from < 1 || to > 65535 || from > to) return { error: 'E_POLICY_PORT', message: `${shown}: ports are 1-65535, the first not above the last` };
  return { proto: m[1] as 'tcp' | 'udp', from, to };
}

export function isGroupName(s: unknown): s is string {
  return typeof s === 'string' && LABEL.test(s);
}
