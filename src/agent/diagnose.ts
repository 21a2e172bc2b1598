// "Why can't A reach B": ordered checks over the desired resource and the actual state, each with a verdict.
// The first failing check says why. Pure but for the injected ping.
import type { Peer } from '../plan/types.ts';
import { cidrContains, firstHost, formatIPv4, parseCidr } from '../../topology/cidr.ts';
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
}

/** The address to ping through a peer: its own gateway, or (for an access node seen from a hidden node) the
 *  gateway of the first other subnet it routes. */
export function pingTarget(peer: Peer, subnets: string[], ownSubnet: string): string | null {
  const allowed = peer.allowedIps.map((a) => parseCidr(a)).filter((c) => c !== null);
  const own = parseCidr(ownSubnet);
  for (const s of subnets) {
    const c = parseCidr(s);
    if (!c || (own && c.base === own.base)) continue;
    if (allowed.some((a) => cidrContains(a, c))) return formatIPv4(firstHost(c));
  }
  return null;
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
  // Per-peer checks in plan order; pings (the slow part) only where a handshake makes a reply possible, run
  // concurrently (at most 16 at once) so a network with many peers is diagnosed in seconds.
  const perPeer: Check[][] = [];
  const pings: { slot: Check[]; tag: string; target: string }[] = [];
  for (const p of peers) {
    const out: Check[] = [];
    perPeer.push(out);
    const a: ActualPeer | undefined = actualPeers.get(p.publicKey);
    const tag = `peer ${p.node}`;
    if (!a) {
      out.push({ name: `${tag}: configured`, verdict: 'fail', detail: `peer ${p.node} (${p.publicKey}) is not configured on ${wgName}` });
      continue;
    }
    out.push({ name: `${tag}: configured`, verdict: 'pass', detail: `key ${p.publicKey}` });
    const want = [...p.allowedIps].sort().join(',');
    const have = [...a.allowedIps].sort().join(',');
    out.push({ name: `${tag}: allowed-ips`, verdict: want === have ? 'pass' : 'fail', detail: want === have ? p.allowedIps.join(', ') : `configured ${have || '(none)'}, plan says ${want}` });
    if (a.endpoint) out.push({ name: `${tag}: endpoint`, verdict: 'pass', detail: `${a.endpoint}${p.endpoint && a.endpoint !== p.endpoint ? ` (roamed from ${p.endpoint})` : ''}` });
    else out.push({ name: `${tag}: endpoint`, verdict: p.endpoint ? 'fail' : 'warn', detail: p.endpoint ? `plan endpoint ${p.endpoint} is not set` : 'no endpoint yet: waiting for the peer to dial in (it is hidden or a device)' });
    const age = a.latestHandshake > 0 ? input.nowSec - a.latestHandshake : null;
    if (age === null) out.push({ name: `${tag}: handshake`, verdict: 'fail', detail: 'no handshake yet: check the endpoint is reachable over UDP and keys match on both sides' });
    else out.push({ name: `${tag}: handshake`, verdict: age <= HANDSHAKE_STALE_SEC ? 'pass' : 'fail', detail: `latest handshake ${ageText(age)}, rx ${a.rxBytes} B, tx ${a.txBytes} B` });
    const target = pingTarget(p, input.subnets, r.subnet);
    if (!target) out.push({ name: `${tag}: reachability`, verdict: 'skip', detail: 'no address to ping through this peer' });
    else if (age === null) out.push({ name: `${tag}: reachability`, verdict: 'skip', detail: `not pinging ${target}: no handshake` });
    else pings.push({ slot: out, tag, target });
  }
  let next = 0;
  const worker = async () => {
    while (next < pings.length) {
      const job = pings[next++];
      const res = await input.ping(job.target);
      job.slot.push({
        name: `${job.tag}: reachability`,
        verdict: res.ok ? 'pass' : 'fail',
        detail: res.ok ? `ping ${job.target}: ${res.rttMs?.toFixed(2)} ms` : `ping ${job.target}: no reply`,
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, pings.length) }, worker));
  for (const list of perPeer) checks.push(...list);
  const firstFailure = checks.find((c) => c.verdict === 'fail') ?? null;
  return { network: desired.networkName, networkId: desired.networkId, peer: input.peer ?? null, ok: firstFailure === null, firstFailure, checks };
}
