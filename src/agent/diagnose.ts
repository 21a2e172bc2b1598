// "Why can't A reach B": ordered checks over the desired resource and the actual state, each with a verdict.
// The first failing check says why. Pure but for the injected ping.
// A hidden node's direct peer (another hidden node, topology/paths.ts) has a "direct path" check: pass on a
// direct path, warn while relayed (the relay still carries the traffic) with the reason. A relayed direct peer
// has no endpoint, allowed-ips or handshake by design: those checks are skipped, and it is pinged through the
// access node; on a direct path it is judged like any other peer.
import type { Peer } from '../plan/types.ts';
import { cidrContainsIp, firstHost, formatIPv4, parseCidr } from '../../topology/cidr.ts';
import type { PathView } from './paths.ts';
import type { ActualNetwork, ActualPeer, DesiredNetwork } from './ports.ts';

export type Verdict = 'pass' | 'fail' | 'warn' | 'skip';

export interface Check {
  name: string;
  verdict: Verdict;
  detail: string;
}

export interface Diagnosis {
  network: string;
  networkId: string;
  peer: string | null;
  ok: boolean;
  /** The first failing check's name and detail, or null. */
  firstFailure: Check | null;
  checks: Check[];
}

export const HANDSHAKE_STALE_SEC = 180;

export interface DiagnoseInput {
  desired: DesiredNetwork;
  subnets: string[];
  actual: ActualNetwork | null;
  expectedMtu: number;
  peer?: string;
  nowSec: number;
  ping: (address: string) => Promise<{ ok: boolean; rttMs: number | null }>;
  /** The network's direct paths (PathManager views); null: this agent does not try direct paths. */
  paths?: PathView[] | null;
}

/** The peer longest-prefix match sends an address to (WireGuard's cryptokey routing), or null. */
function routeTo(address: number, peers: Pick<Peer, 'publicKey' | 'allowedIps'>[]): string | null {
  let best: { key: string; prefix: number } | null = null;
  for (const p of peers) {
    for (const a of p.allowedIps) {
      const c = parseCidr(a);
      if (c && cidrContainsIp(c, address) && (!best || c.prefix > best.prefix)) best = { key: p.publicKey, prefix: c.prefix };
    }
  }
  return best?.key ?? null;
}

/**
 * The address to ping through a peer: the gateway of the first other subnet that is routed to it, i.e. its own
 * gateway, or (for an access node seen from a hidden node) the gateway of the first other subnet it relays.
 * With `all` (every peer of the resource), a subnet a direct path has taken off the relay counts for the
 * direct peer, not for the access node.
 */
export function pingTarget(peer: Peer, subnets: string[], ownSubnet: string, all: Pick<Peer, 'publicKey' | 'allowedIps'>[] = [peer]): string | null {
  const own = parseCidr(ownSubnet);
  for (const s of subnets) {
    const c = parseCidr(s);
    if (!c || (own && c.base === own.base)) continue;
    const gw = firstHost(c);
    if (routeTo(gw, all) === peer.publicKey) return formatIPv4(gw);
  }
  return null;
}

/** "10:00:40 UTC" for ms since the epoch. */
export function clockText(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`;
}

/** The "direct path" check of a hidden node's direct peer: pass when direct, warn (with the reason) when relayed. */
export function directPathCheck(peer: Peer, via: string | null, view: PathView | null | undefined, nowMs: number, supported = true): { verdict: Verdict; detail: string } {
  const relay = `relayed via ${via ?? 'the access node'}`;
  if (!supported) return { verdict: 'warn', detail: `${relay}: this agent does not try direct paths (its WireGuard driver reads no peer counters)` };
  const cands = view?.candidates.length ? view.candidates.join(', ') : 'none';
  const retry = view?.retryAt ? `retried at ${clockText(view.retryAt)} (in ${Math.max(0, Math.ceil((view.retryAt - nowMs) / 1000))}s)` : 'retried at the next tick';
  if (!view || view.reason === 'no-candidate') {
    return { verdict: 'warn', detail: `${relay}: no candidate endpoint of ${peer.node} known yet (the control plane has sent none: the lab carrier or the etcd controller sends them)` };
  }
  if (view.path === 'direct') {
    const age = view.since > 0 ? `, ${ageText(Math.max(0, Math.floor((nowMs - view.since) / 1000)))}` : '';
    return { verdict: 'pass', detail: `direct${view.endpoint ? ` to ${view.endpoint}` : ''} since ${clockText(view.since)}${age}; ${peer.directSubnet} is off the relay` };
  }
  if (view.reason === 'probing') return { verdict: 'warn', detail: `probing ${view.endpoint ?? 'a candidate'} (candidates: ${cands}); ${relay} meanwhile` };
  if (view.reason === 'stale') return { verdict: 'warn', detail: `${relay} again: the direct path went silent at ${clockText(view.since)}; ${retry}` };
  return { verdict: 'warn', detail: `${relay}: no handshake on any candidate (${cands}): a symmetric NAT or filtering on one side, or ${peer.node} is down; ${retry}` };
}

export function ageText(sec: number): string {
  if (sec < 60) return `${sec}s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${sec % 60 ? ` ${sec % 60}s` : ''} ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h ${Math.floor((sec % 3600) / 60)}m ago`;
  return `${Math.floor(sec / 86400)}d ago`;
}

export async function diagnose(input: DiagnoseInput): Promise<Diagnosis> {
  const { desired, actual } = input;
  const r = desired.resource;
  const checks: Check[] = [];
  const add = (name: string, verdict: Verdict, detail: string) => checks.push({ name, verdict, detail });
  const wgName = `w-${desired.networkId}`;

  add('namespace', actual?.namespaceExists ? 'pass' : 'fail', actual?.namespaceExists ? `namespace ${actual.namespace} exists` : `namespace n-${desired.networkId} is missing (the agent recreates it on its next reconcile)`);
  const wgIf = actual?.interfaces.find((i) => i.name === wgName);
  add('wireguard-interface', wgIf?.up ? 'pass' : 'fail', wgIf ? (wgIf.up ? `${wgName} is up` : `${wgName} is down`) : `${wgName} is missing`);
  const wg = actual?.wireguard ?? null;
  if (!wg) add('keys', 'fail', 'WireGuard state cannot be read (no interface or daemon)');
  else if (wg.publicKey !== r.publicKey) add('keys', 'fail', `interface key ${wg.publicKey} differs from the plan's ${r.publicKey}`);
  else if (wg.listenPort !== r.listenPort) add('keys', 'fail', `listening on ${wg.listenPort}, the plan says ${r.listenPort}`);
  else add('keys', 'pass', `interface key and port ${r.listenPort} match the plan`);
  const mtu = wgIf?.mtu;
  add('mtu', mtu === undefined ? 'skip' : mtu === input.expectedMtu ? 'pass' : 'fail', mtu === undefined ? 'no interface' : `MTU ${mtu}${mtu === input.expectedMtu ? '' : `, expected ${input.expectedMtu} (underlay − 80)`}`);
  const route = actual?.routes.find((x) => x.dst === desired.ipRange && x.dev === wgName);
  add('route', route ? 'pass' : 'fail', route ? `${desired.ipRange} via ${wgName}` : `no route for ${desired.ipRange} via ${wgName}`);
  const fwDrops = Object.entries(actual?.firewall ?? {});
  add('firewall', 'pass', fwDrops.length ? fwDrops.map(([k, v]) => `${k}=${v}`).join(', ') : 'no counters');

  const peers = input.peer ? r.peers.filter((p) => p.node === input.peer || p.publicKey === input.peer) : r.peers;
  if (input.peer && peers.length === 0) add('peer', 'fail', `${input.peer} is not a peer of this node in network ${desired.networkName} (hidden nodes reach others through their access node)`);
  const actualPeers = new Map((wg?.peers ?? []).map((p) => [p.publicKey, p]));
  const nowMs = input.nowSec * 1000;
  // Per-peer checks in plan order; pings (the slow part) only where a handshake makes a reply possible (or,
  // for a relayed direct peer, through the access node), run concurrently (at most 16 at once) so a network with many peers is diagnosed in seconds.
  const perPeer: Check[][] = [];
  const pings: { slot: Check[]; tag: string; target: string; note: string }[] = [];
  for (const p of peers) {
    const out: Check[] = [];
    perPeer.push(out);
    const a: ActualPeer | undefined = actualPeers.get(p.publicKey);
    const tag = `peer ${p.node}`;
    const directPeer = r.hidden && p.directSubnet !== undefined;
    const view = directPeer ? input.paths?.find((v) => v.node === p.node) : undefined;
    // A direct peer without a proven direct path: its subnet goes through the access node.
    const relayed = directPeer && view?.path !== 'direct';
    const via = `relayed via ${r.accessNode ?? 'the access node'}`;
    if (directPeer) {
      const dp = directPathCheck(p, r.accessNode, view, nowMs, input.paths !== null && input.paths !== undefined);
      out.push({ name: `${tag}: direct path`, verdict: dp.verdict, detail: dp.detail });
    }
    if (!a) {
      out.push({ name: `${tag}: configured`, verdict: 'fail', detail: `peer ${p.node} (${p.publicKey}) is not configured on ${wgName}` });
      continue;
    }
    out.push({ name: `${tag}: configured`, verdict: 'pass', detail: `key ${p.publicKey}` });
    const want = [...p.allowedIps].sort().join(',');
    const have = [...a.allowedIps].sort().join(',');
    const wantText = relayed ? `none (${p.directSubnet} is ${via})` : want;
    out.push({ name: `${tag}: allowed-ips`, verdict: want === have ? 'pass' : 'fail', detail: want === have ? (relayed ? wantText : p.allowedIps.join(', ')) : `configured ${have || '(none)'}, ${directPeer ? 'its path wants' : 'plan says'} ${wantText}` });
    const age = a.latestHandshake > 0 ? input.nowSec - a.latestHandshake : null;
    if (relayed) {
      // No endpoint, session or route is needed while relayed: report them, judge the relay by a ping.
      out.push({ name: `${tag}: endpoint`, verdict: 'skip', detail: a.endpoint ? `${a.endpoint} (${view?.probing ? 'probing' : `unused: ${via}`})` : `none: ${via}` });
      out.push({ name: `${tag}: handshake`, verdict: 'skip', detail: age === null ? `none: not needed while ${via}` : `latest handshake ${ageText(age)}, rx ${a.rxBytes} B, tx ${a.txBytes} B (${via})` });
      const gw = parseCidr(p.directSubnet!);
      if (gw) pings.push({ slot: out, tag, target: formatIPv4(firstHost(gw)), note: ` (${via})` });
      else out.push({ name: `${tag}: reachability`, verdict: 'skip', detail: 'no address to ping through this peer' });
      continue;
    }
    if (a.endpoint) out.push({ name: `${tag}: endpoint`, verdict: 'pass', detail: `${a.endpoint}${p.endpoint && a.endpoint !== p.endpoint ? ` (roamed from ${p.endpoint})` : ''}` });
    else out.push({ name: `${tag}: endpoint`, verdict: p.endpoint ? 'fail' : 'warn', detail: p.endpoint ? `plan endpoint ${p.endpoint} is not set` : 'no endpoint yet: waiting for the peer to dial in (it is hidden or a device)' });
    if (age === null) out.push({ name: `${tag}: handshake`, verdict: 'fail', detail: 'no handshake yet: check the endpoint is reachable over UDP and keys match on both sides' });
    else out.push({ name: `${tag}: handshake`, verdict: age <= HANDSHAKE_STALE_SEC ? 'pass' : 'fail', detail: `latest handshake ${ageText(age)}, rx ${a.rxBytes} B, tx ${a.txBytes} B` });
    const target = pingTarget(p, input.subnets, r.subnet, r.peers);
    if (!target) out.push({ name: `${tag}: reachability`, verdict: 'skip', detail: 'no address to ping through this peer' });
    else if (age === null) out.push({ name: `${tag}: reachability`, verdict: 'skip', detail: `not pinging ${target}: no handshake` });
    else pings.push({ slot: out, tag, target, note: '' });
  }
  let next = 0;
  const worker = async () => {
    while (next < pings.length) {
      const job = pings[next++];
      const res = await input.ping(job.target);
      job.slot.push({
        name: `${job.tag}: reachability`,
        verdict: res.ok ? 'pass' : 'fail',
        detail: res.ok ? `ping ${job.target}${job.note}: ${res.rttMs?.toFixed(2)} ms` : `ping ${job.target}${job.note}: no reply`,
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, pings.length) }, worker));
  for (const list of perPeer) checks.push(...list);
  const firstFailure = checks.find((c) => c.verdict === 'fail') ?? null;
  return { network: desired.networkName, networkId: desired.networkId, peer: input.peer ?? null, ok: firstFailure === null, firstFailure, checks };
}
