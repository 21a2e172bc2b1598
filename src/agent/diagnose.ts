// "Why can't A reach B": ordered checks over the desired resource and the actual state, each with a verdict.
// The first failing check says why. Pure but for the injected ping.
// A hidden node's direct peer (another hidden node, topology/paths.ts) has a "direct path" check: pass on a
// direct path, warn while relayed (the relay still carries the traffic) with the reason. A relayed direct peer
// has no endpoint, allowed-ips or handshake by design: those checks are skipped, and it is pinged through the
// access node; on a direct path it is judged like any other peer.
// Network policy (docs/policy.md): `checkPolicyFlow` names the rule (or the default) that allows or drops a flow
// A → B, judged where it is enforced (the destination's node); `policyView` lists the rules with the packets
// and bytes this node's tenant table counted for each.
import type { Blueprint, NetworkSpec, PolicyRule } from '../blueprint/types.ts';
import { ZmeshError } from '../errors.ts';
import type { NodeNetworkPart, PolicyMembers } from '../plan/part.ts';
import { compilePolicy, evaluate, type CompiledPolicy, type LocalDestinations } from '../plan/policy.ts';
import type { Peer, WorkloadPlan } from '../plan/types.ts';
import { cidrContainsIp, firstHost, formatIPv4, parseCidr, parseIPv4, type Cidr } from '../../topology/cidr.ts';
import { namesFor } from '../../netns/names.ts';
import type { PathView } from './paths.ts';
import { policyGroups } from './policy.ts';
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
  /** Asks the network's resolver (docs/dns.md) from inside the tenant namespace; absent: the driver runs none. */
  lookup?: (name: string, server: string, type: 'A' | 'AAAA') => Promise<{ answered: boolean; nxdomain: boolean; addresses: string[]; ms: number }>;
  /** The resolver's process, when the driver runs one. */
  resolver?: { pid: number; alive: boolean } | null;
}

/**
 * The "resolver" check (docs/dns.md): the node's own name `<node>.<network>` asked at each gateway address must
 * answer that address, and a name of no network must be NXDOMAIN (nothing is forwarded).
 */
export async function resolverCheck(input: Pick<DiagnoseInput, 'desired' | 'lookup' | 'resolver'>): Promise<{ verdict: Verdict; detail: string }> {
  const { desired, lookup, resolver } = input;
  const r = desired.resource;
  if (!lookup || !desired.names) return { verdict: 'skip', detail: 'this agent runs no resolver for the network' };
  const who = resolver ? `dnsmasq pid ${resolver.pid}` : 'dnsmasq';
  if (resolver && !resolver.alive) return { verdict: 'fail', detail: `${who} is not running (the agent restarts it on its next reconcile)` };
  const name = `${r.node}.${desired.networkName}`;
  const asks: [string, 'A' | 'AAAA'][] = [[r.gateway, 'A'], ...(r.gateway6 ? [[r.gateway6, 'AAAA'] as [string, 'A' | 'AAAA']] : [])];
  const said: string[] = [];
  for (const [gw, type] of asks) {
    const a = await lookup(name, gw, type);
    if (!a.answered) return { verdict: 'fail', detail: `${who}: no answer on ${gw} port 53 for ${name} (the agent restarts a dead resolver on its next reconcile)` };
    if (!a.addresses.includes(gw)) return { verdict: 'fail', detail: `${who} on ${gw}: ${name} ${type} is ${a.nxdomain ? 'NXDOMAIN' : a.addresses.join(', ') || 'empty'}, expected ${gw}` };
    said.push(`${name} ${type} ${gw} (${a.ms.toFixed(0)} ms)`);
  }
  const outside = await lookup('zmesh-probe.invalid', r.gateway, 'A');
  if (!outside.nxdomain) return { verdict: 'fail', detail: `${who}: a name of no network (zmesh-probe.invalid) is not NXDOMAIN: ${outside.addresses.join(', ') || 'no answer'}` };
  return { verdict: 'pass', detail: `${who} answers ${said.join(', ')}; other names NXDOMAIN` };
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

/** "3 packets, 180 B" */
function packetsText(c: { packets: number; bytes: number }): string {
  return `${c.packets} packet${c.packets === 1 ? '' : 's'}, ${c.bytes} B`;
}

/**
 * The firewall check's detail: the zmesh tables with their rule counts, then what the tenant table's counting
 * rules matched since it was written — dropped (each dropping rule that counted something: spoofed sources,
 * tunnel traffic toward egress, new connections from the outside, the policy's default) and accepted by policy rules.
 */
export function firewallText(actual: Pick<ActualNetwork, 'firewall' | 'firewallCounters'> | null): string {
  const tables = Object.entries(actual?.firewall ?? {}).map(([k, v]) => `${k}=${v}`);
  const c = actual?.firewallCounters;
  const parts = [tables.length ? tables.join(', ') : 'no tables'];
  if (!c) parts.push(tables.length ? 'packet counters not read' : 'no counters');
  else {
    const drops = c.rules.filter((r) => r.verdict === 'drop' && r.packets > 0).map((r) => `${r.tag} ${r.packets}`);
    parts.push(`dropped ${packetsText(c.dropped)}${drops.length ? ` (${drops.join(', ')})` : ''}`);
    if (c.rules.some((r) => r.verdict === 'accept')) parts.push(`accepted by policy rules ${packetsText(c.accepted)}`);
  }
  return parts.join('; ');
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
  const names = namesFor(desired.networkId);
  const wgName = names.wg;

  add('namespace', actual?.namespaceExists ? 'pass' : 'fail', actual?.namespaceExists ? `namespace ${actual.namespace} exists` : `namespace ${names.ns} is missing (the agent recreates it on its next reconcile)`);
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
  add('firewall', 'pass', firewallText(actual));
  const dns = await resolverCheck(input);
  add('resolver', dns.verdict, dns.detail);

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

// ---- Network policy ------------------------------------------------------------------------------------

export type FlowProto = 'tcp' | 'udp' | 'icmp';
type MemberKind = 'workload' | 'device' | 'node';

/** One end of a flow as `checkPolicyFlow` resolved it. */
export interface FlowEnd {
  /** What was asked, as given. */
  asked: string;
  /** What it names: a member of the network, or an address. */
  kind: MemberKind | 'address';
  /** The member named, or the member whose address it is (null: an address that is no member's). */
  name: string | null;
  /**
   * For an address: the member it belongs to (`exact`), or whose subnet holds it (not exact: a free address of
   * a node's subnet, another address of a device's subnet); null when it is in no subnet of the network.
   */
  owner: { kind: MemberKind; name: string; exact: boolean } | null;
  /** The address the flow uses (a node sends from its WireGuard address, or its gateway to its own workloads); null: not known here. */
  address: string | null;
  /** The node it lives on: a workload's node, the node itself, a device's access node; null when not known here. */
  node: string | null;
}

export interface PolicyFlowCheck {
  /** tenant/blueprint/network */
  network: string;
  networkId: string;
  /** The node that answered. */
  node: string;
  from: FlowEnd;
  to: FlowEnd;
  flow: { proto: FlowProto; port: number | null };
  /** The network's default, or null when it has no policy. */
  default: 'allow' | 'deny' | null;
  /** The node that enforces the flow (the destination's); null when that is not known here or no node owns the destination. */
  enforcedOn: string | null;
  /** Judged with this agent's own compiled rules (it is the destination's node). */
  enforcedHere: boolean;
  allowed: boolean;
  /**
   * How: a rule allows it, the default decides, the network has no policy, or no node guards the destination.
   */
  by: 'rule' | 'default' | 'no-policy' | 'not-guarded';
  /** The rule that allows it (its index in the blueprint's list) and the rule as written; null otherwise. */
  rule: number | null;
  ruleSpec: PolicyRule | null;
  reason: string;
  notes: string[];
}

export const NO_POLICY = 'no policy: everything inside the network is allowed';
const FLOW_HINT = 'name workload:NAME, device:NAME, node:NAME (or a bare name) or an address inside the range; ports are tcp/N, udp/N or icmp';

function flowError(message: string): ZmeshError {
  return new ZmeshError('E_FLOW', message, { hint: FLOW_HINT });
}

/** "tcp/5432", "udp/53", "icmp" (the default when absent). */
export function parseFlowPort(text: string | undefined): { proto: FlowProto; port: number | null } {
  if (text === undefined || text === 'icmp') return { proto: 'icmp', port: null };
  const m = /^(tcp|udp)\/([1-9]\d{0,4})$/.exec(text);
  if (!m || Number(m[2]) > 65535) throw flowError(`port ${JSON.stringify(text.slice(0, 40))} is not tcp/N, udp/N or icmp (N from 1 to 65535)`);
  return { proto: m[1] as FlowProto, port: Number(m[2]) };
}

export function flowText(f: { proto: FlowProto; port: number | null }): string {
  return f.port === null ? f.proto : `${f.proto}/${f.port}`;
}

export interface PolicyFlowInput {
  blueprint: Blueprint;
  /** The network in the signed blueprint. */
  spec: NetworkSpec;
  /** This node's part of the network (with a policy, its members cover the whole network). */
  part: NodeNetworkPart;
  /** The workloads placed on this node (the part's). */
  placed: WorkloadPlan[];
  /** This node's id. */
  node: string;
  /** This node's compiled policy for the network (DesiredNetwork.policy). */
  compiled?: CompiledPolicy;
  /** tenant/blueprint/network */
  network: string;
  from: string;
  to: string;
  port?: string;
}

const addrOf = (cidr: string | undefined): number | null => (cidr ? parseIPv4(cidr.split('/')[0]) : null);

/** What this node knows of a network's members: names, addresses, where they live. */
class Directory {
  readonly nodes = new Map<string, { gateway: number; wg: number } | null>();
  readonly workloads = new Map<string, { ip: number | null; node: string }>();
  readonly devices = new Map<string, { ip: number | null }>();
  readonly range: Cidr;
  constructor(readonly input: PolicyFlowInput) {
    const { spec, part, blueprint } = input;
    this.range = parseCidr(part.ipRange)!;
    // With a policy the part's members hold every address; without one only this node's own are known.
    const members: PolicyMembers | undefined = part.members;
    for (const n of spec.nodes) {
      const own = n === input.node ? [`${part.resource.gateway}/32`, part.resource.wgAddress] : [];
      const list = (members?.nodes[n] ?? own).map(addrOf).filter((x): x is number => x !== null);
      // The gateway is the subnet's first host, the WireGuard address its last.
      this.nodes.set(n, list.length === 2 ? { gateway: Math.min(...list), wg: Math.max(...list) } : null);
    }
    for (const w of blueprint.workloads) {
      if (w.network.name !== spec.name) continue;
      const placed = input.placed.find((p) => p.name === w.name && p.network === spec.name);
      const ip = addrOf(members?.workloads[w.name]) ?? (placed ? parseIPv4(placed.ip) : w.network.ip ? parseIPv4(w.network.ip) : null);
      this.workloads.set(w.name, { ip, node: w.node });
    }
    for (const a of spec.access) {
      const peer = part.resource.peers.find((p) => p.kind === 'device' && p.node === a.name);
      const subnet = peer?.allowedIps[0] ? parseCidr(peer.allowedIps[0]) : null;
      this.devices.set(a.name, { ip: addrOf(members?.devices[a.name]) ?? (subnet ? firstHost(subnet) : null) });
    }
  }

  /** The node serving an access device: this node, or (seen from a public node) the peer its subnet is routed to; null: not known here. */
  deviceNode(name: string): string | null {
    const r = this.input.part.resource;
    if (r.peers.some((p) => p.kind === 'device' && p.node === name)) return this.input.node;
    const ip = this.devices.get(name)?.ip ?? null;
    // A hidden node sends the whole range to its access node: that says nothing about who serves the device.
    if (ip === null || r.hidden) return null;
    const routed = (p: Peer) => p.allowedIps.some((a) => {
      const c = parseCidr(a, false);
      return c !== null && cidrContainsIp(c, ip);
    });
    return r.peers.find((p) => p.kind === 'node' && routed(p))?.node ?? null;
  }

  /** The access devices a node serves, as far as this node knows. */
  devicesOf(node: string): string[] {
    return [...this.devices.keys()].filter((d) => this.deviceNode(d) === node);
  }

  /** Whose an address is: a member with that very address, else the node or device whose subnet holds it. */
  ownerOf(ip: number): FlowEnd['owner'] {
    for (const [name, w] of this.workloads) if (w.ip === ip) return { kind: 'workload', name, exact: true };
    for (const [name, d] of this.devices) if (d.ip === ip) return { kind: 'device', name, exact: true };
    for (const [name, n] of this.nodes) if (n && (n.gateway === ip || n.wg === ip)) return { kind: 'node', name, exact: true };
    const prefix = this.input.part.subnetPrefix;
    const within = (base: number) => cidrContainsIp(parseCidr(`${formatIPv4(base)}/${prefix}`, false)!, ip);
    for (const [name, n] of this.nodes) if (n && within(n.gateway)) return { kind: 'node', name, exact: false };
    for (const [name, d] of this.devices) if (d.ip !== null && within(d.ip)) return { kind: 'device', name, exact: false };
    return null;
  }

  nodeOf(kind: MemberKind, name: string): string | null {
    if (kind === 'workload') return this.workloads.get(name)?.node ?? null;
    if (kind === 'device') return this.deviceNode(name);
    return name;
  }

  /** A name or an address of the network (E_FLOW when it is neither). */
  resolve(text: string): FlowEnd & { ip: number | null } {
    const { spec, blueprint } = this.input;
    const shown = JSON.stringify(text.slice(0, 80));
    const member = (kind: MemberKind, name: string) => {
      const ip = kind === 'workload' ? this.workloads.get(name)!.ip : kind === 'device' ? this.devices.get(name)!.ip : null;
      return { asked: text, kind, name, owner: null, address: null, ip, node: this.nodeOf(kind, name) };
    };
    const m = /^(workload|device|node):(.*)$/s.exec(text);
    if (m) {
      const kind = m[1] as MemberKind;
      const name = m[2];
      const known = kind === 'workload' ? this.workloads.has(name) : kind === 'device' ? this.devices.has(name) : this.nodes.has(name);
      if (known) return member(kind, name);
      const other = kind === 'workload' ? blueprint.workloads.find((w) => w.name === name) : undefined;
      if (other) throw flowError(`workload ${name} is on network ${other.network.name}, not ${spec.name}`);
      throw flowError(`${shown}: network ${spec.name} has no ${kind} ${JSON.stringify(name.slice(0, 70))}`);
    }
    if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
      const ip = parseIPv4(text);
      if (ip === null) throw flowError(`${shown} is not an IPv4 address`);
      if (!cidrContainsIp(this.range, ip)) throw flowError(`${text} is outside network ${spec.name}'s range ${this.input.part.ipRange}`);
      const owner = this.ownerOf(ip);
      return { asked: text, kind: 'address', name: owner?.exact ? owner.name : null, owner, address: null, ip, node: owner ? this.nodeOf(owner.kind, owner.name) : null };
    }
    for (const kind of ['workload', 'device', 'node'] as const) {
      if ((kind === 'workload' ? this.workloads : kind === 'device' ? this.devices : this.nodes).has(text)) return member(kind, text);
    }
    throw flowError(`${shown} is not a workload, device or node of network ${spec.name}, nor an address inside its range ${this.input.part.ipRange}`);
  }
}

/** The device an end is or belongs to (the destination's guard is then its access node), or null. */
function deviceOf(e: FlowEnd): string | null {
  if (e.kind === 'device') return e.name;
  return e.owner?.kind === 'device' ? e.owner.name : null;
}

/** The rule as the blueprint writes it: "from group:web to workload:db ports tcp/5432". */
export function ruleText(r: PolicyRule): string {
  return `from ${r.from.join(',')} to ${r.to.join(',')} ports ${r.ports.join(',')}`;
}

/**
 * Which rule (or the default) allows or drops a flow A → B, judged where the policy is enforced: the
 * destination's node. There with its own compiled rules; elsewhere compiled for that node from the signed
 * blueprint and the part's members (its workloads from the blueprint's placement, the devices it serves from
 * this node's routes). Bad names, addresses and ports throw E_FLOW.
 */
export function checkPolicyFlow(input: PolicyFlowInput): PolicyFlowCheck {
  const { spec, blueprint: bp, part } = input;
  const dir = new Directory(input);
  const flow = parseFlowPort(input.port);
  const src = dir.resolve(input.from);
  const dst = dir.resolve(input.to);
  const notes: string[] = [];
  const enforcedOn = dst.node;
  // A node as the destination: its gateway; as the source: its WireGuard address, or its gateway towards its
  // own workloads and addresses (the addresses the kernel picks).
  if (dst.kind === 'node') dst.ip = dir.nodes.get(dst.name!)?.gateway ?? null;
  if (src.kind === 'node') {
    const a = dir.nodes.get(src.name!);
    const local = enforcedOn === src.name;
    src.ip = a ? (local ? a.gateway : a.wg) : null;
    if (a) notes.push(`node ${src.name} sends from ${formatIPv4(src.ip!)} (${local ? 'its gateway, to its own workloads and addresses' : 'its WireGuard address, to other nodes'})`);
  }
  const fin = ({ ip, ...e }: FlowEnd & { ip: number | null }): FlowEnd => ({ ...e, address: ip === null ? null : formatIPv4(ip) });
  const from = fin(src);
  const to = fin(dst);
  const base = { network: input.network, networkId: part.id, node: input.node, from, to, flow };
  const policy = spec.policy;
  if (!policy) {
    return { ...base, default: null, enforcedOn, enforcedHere: enforcedOn === input.node, allowed: true, by: 'no-policy', rule: null, ruleSpec: null, reason: NO_POLICY, notes };
  }
  const members = part.members;
  if (!members || from.address === null || to.address === null) {
    // checkNodePart refuses the part of a network with a policy without members: not reached with a stored part.
    throw new ZmeshError('E_INTERNAL', `the part of network ${spec.name} names no address for ${from.address === null ? input.from : input.to}`, { kind: 'internal', hint: 're-plan with this version of zmesh' });
  }
  const device = deviceOf(to);
  const here = enforcedOn === input.node && input.compiled !== undefined;
  let compiled: CompiledPolicy;
  if (here) compiled = input.compiled!;
  else {
    let local: LocalDestinations;
    if (enforcedOn !== null) {
      local = {
        node: members.nodes[enforcedOn] ?? [],
        workloads: bp.workloads.filter((w) => w.network.name === spec.name && w.node === enforcedOn).map((w) => w.name),
        devices: dir.devicesOf(enforcedOn),
      };
    } else {
      // Who serves the device is not known here: whichever node it is guards the device with the same rules.
      local = { node: [], workloads: [], devices: device !== null && to.owner?.exact !== false ? [device] : [] };
    }
    compiled = compilePolicy(policy, part.ipRange, members, policyGroups(bp, spec), local, part.ipv6Range);
    if (enforcedOn !== null) notes.push(`judged on ${input.node} from the signed blueprint and the plan's members, compiled for ${enforcedOn}; ${enforcedOn} counts the packets (\`zmesh policy\` there)`);
  }
  if (enforcedOn === null && device !== null) {
    const why = part.resource.hidden ? ` (a hidden node sends the whole range to its access node ${part.resource.accessNode ?? '?'})` : '';
    notes.push(`the access node of device ${device} is not known on ${input.node}${why}: whichever node serves it judges the same; ask a public node of the network to name it`);
  }
  const v = evaluate(compiled, { src: from.address, dst: to.address, proto: flow.proto, ...(flow.port !== null ? { port: flow.port } : {}) });
  const dstIp = dst.ip!;
  // (IPv4 flows: the IPv6 entries of a dual-stack network's guarded list never hold an IPv4 address.)
  const guarded = compiled.local.some((c) => {
    const cidr = parseCidr(c);
    return cidr !== null && cidrContainsIp(cidr, dstIp);
  });
  let by: PolicyFlowCheck['by'];
  let reason: string;
  if (!guarded) {
    by = 'not-guarded';
    const whose = to.owner && !to.owner.exact ? `a free address of ${to.owner.kind} ${to.owner.name}'s subnet` : to.owner === null && to.kind === 'address' ? 'in no subnet of the network' : 'not a destination the policy guards';
    reason = `${to.address} is ${whose}: no rule or default applies to it`;
  } else if (v.rule !== null) {
    by = 'rule';
    reason = `rule ${v.rule} allows it: ${ruleText(policy.rules[v.rule])}`;
  } else {
    by = 'default';
    reason = `no rule allows ${flowText(flow)} from ${from.address} to ${to.address}: the default (${policy.default}) ${policy.default === 'deny' ? 'drops it' : 'lets it through'}`;
  }
  return {
    ...base,
    default: policy.default,
    enforcedOn,
    enforcedHere: here,
    allowed: by === 'not-guarded' ? true : v.allowed,
    by,
    rule: by === 'rule' ? v.rule : null,
    ruleSpec: by === 'rule' ? policy.rules[v.rule!] : null,
    reason,
    notes,
  };
}

function endText(e: FlowEnd): string {
  const parts: string[] = e.address === e.asked ? [] : [e.address ?? 'address not known here'];
  if (e.kind === 'address') parts.push(e.owner ? (e.owner.exact ? `${e.owner.kind} ${e.owner.name}` : `in ${e.owner.kind} ${e.owner.name}'s subnet`) : 'in no subnet');
  if (e.node) parts.push(`on ${e.node}`);
  else if (deviceOf(e) !== null) parts.push('access node not known here');
  return `${e.asked} (${parts.join(', ')})`;
}

/** The human lines of a flow check (`zmesh diagnose NET A B`). */
export function policyCheckLines(c: PolicyFlowCheck): string[] {
  const device = deviceOf(c.to);
  const where =
    c.by === 'no-policy'
      ? `network ${c.network} has no policy`
      : c.enforcedOn
        ? `enforced on node ${c.enforcedOn}${c.enforcedHere ? ' (this node)' : ` (judged on ${c.node})`}`
        : device !== null
          ? `enforced on the access node of device ${device} (not known on ${c.node})`
          : 'enforced on no node';
  const verdict =
    c.by === 'no-policy'
      ? `ALLOWED: ${NO_POLICY}`
      : c.by === 'rule'
        ? `ALLOWED by rule ${c.rule}: ${ruleText(c.ruleSpec!)}`
        : c.by === 'default'
          ? `${c.allowed ? 'ALLOWED' : 'DENIED'} by the default (${c.default}): no rule allows it`
          : `ALLOWED: ${c.reason}`;
  return [`flow ${endText(c.from)} → ${endText(c.to)}, ${flowText(c.flow)}`, where, ...c.notes.map((n) => `note: ${n}`), `verdict: ${verdict}`];
}

/** GET /v1/policy: a network's rules on this node with what they counted. */
export interface PolicyView {
  network: string;
  networkId: string;
  node: string;
  /** null: the network has no policy (everything inside it is allowed). */
  policy: {
    default: 'allow' | 'deny';
    /** What the default does with a new flow no rule allows. */
    defaultAction: 'drop' | 'accept';
    /** Whether this node's counters were read (false: packets and bytes are null). */
    counted: boolean;
    /** The destinations this node guards (/32s). */
    local: string[];
    /** Every rule of the blueprint; `here`: it guards a destination of this node (only those count). */
    rules: { index: number; from: string[]; to: string[]; ports: string[]; here: boolean; packets: number | null; bytes: number | null }[];
    defaultPackets: number | null;
    defaultBytes: number | null;
  } | null;
}

/**
 * The network's rules (as the blueprint writes them) with the packets and bytes this node counted for each
 * (policy-in and policy-fwd summed, since its tenant table was last written).
 */
export function policyView(input: { network: string; node: string; desired: DesiredNetwork; spec: NetworkSpec | undefined; actual: ActualNetwork | null }): PolicyView {
  const { desired, spec } = input;
  const base = { network: input.network, networkId: desired.networkId, node: input.node };
  if (!spec?.policy) return { ...base, policy: null };
  const counters = input.actual?.policy;
  const here = new Set((desired.policy?.rules ?? []).map((r) => r.index));
  const byIndex = new Map((counters?.rules ?? []).map((r) => [r.index, r]));
  return {
    ...base,
    policy: {
      default: spec.policy.default,
      defaultAction: spec.policy.default === 'deny' ? 'drop' : 'accept',
      counted: counters !== undefined,
      local: desired.policy?.local ?? [],
      rules: spec.policy.rules.map((r, index) => {
        const on = here.has(index);
        const c = byIndex.get(index);
        return { index, from: r.from, to: r.to, ports: r.ports, here: on, packets: on && counters ? (c?.packets ?? 0) : null, bytes: on && counters ? (c?.bytes ?? 0) : null };
      }),
      defaultPackets: counters ? (counters.default?.packets ?? 0) : null,
      defaultBytes: counters ? (counters.default?.bytes ?? 0) : null,
    },
  };
}
