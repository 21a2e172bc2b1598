// What a new plan changes, per node, the way `terraform plan` shows it (`zmesh plan --previous OLD --diff`):
// members added, removed or changed (subnet, port, key, endpoint, access node), and each node's peers added,
// removed or changed. Pure. O(n log n + lines): peer changes shared by many nodes (a public node joining is a
// new entry in every other public node's list) are found once on the mesh index, not per node.
import { behindPeers, memberPeers, relayPeer, type MeshIndex } from '../../topology/mesh.ts';
import { networkMesh } from './derive.ts';
import type { AccessDevice, CompactNetwork, CompactPlan, CompactResource, Peer, WorkloadPlan } from './types.ts';

export type DiffOp = '+' | '-' | '~';

export interface MemberDiff {
  network: string;
  kind: 'node' | 'device' | 'workload';
  name: string;
  op: DiffOp;
  /** For '+': what it is; for '~': what changed (one line each, a peer line starts with its own op). */
  lines: string[];
}

export interface PlanDiff {
  tenant: string;
  blueprint: string;
  from: { version: number; generation: number };
  to: { version: number; generation: number };
  changes: MemberDiff[];
  counts: { add: number; change: number; destroy: number };
}

function byNode<T extends { node: string }>(a: T, b: T): number {
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

function peerText(p: Peer): string {
  if (p.directSubnet !== undefined) return `direct, ${p.directSubnet}`;
  const ips = p.allowedIps.length > 3 ? `${p.allowedIps.slice(0, 3).join(', ')}, … (${p.allowedIps.length})` : p.allowedIps.join(', ');
  return `${ips}${p.endpoint ? ` via ${p.endpoint}` : ''}${p.persistentKeepalive ? `, keepalive ${p.persistentKeepalive}` : ''}`;
}

function peerChange(a: Peer, b: Peer): string | null {
  const what: string[] = [];
  if (a.publicKey !== b.publicKey) what.push('new key');
  if (a.endpoint !== b.endpoint) what.push(`endpoint ${a.endpoint ?? 'none'} → ${b.endpoint ?? 'none'}`);
  if (a.allowedIps.join(',') !== b.allowedIps.join(',')) what.push(`allowed-ips ${a.allowedIps.join(', ') || 'none'} → ${b.allowedIps.join(', ') || 'none'}`);
  if (a.persistentKeepalive !== b.persistentKeepalive) what.push(`keepalive ${a.persistentKeepalive ?? 'none'} → ${b.persistentKeepalive ?? 'none'}`);
  if (a.directSubnet !== b.directSubnet || a.kind !== b.kind) what.push(`${a.directSubnet ? 'direct' : a.kind} → ${b.directSubnet ? 'direct' : b.kind}`);
  return what.length ? what.join('; ') : null;
}

/** Changes between two peer lists sorted by node, as [peer node, line]. */
export function diffPeerLists(a: readonly Peer[], b: readonly Peer[]): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const c = i >= a.length ? 1 : j >= b.length ? -1 : byNode(a[i], b[j]);
    if (c < 0) {
      out.push([a[i].node, `- peer ${a[i].node}`]);
      i++;
    } else if (c > 0) {
      out.push([b[j].node, `+ peer ${b[j].node}  ${peerText(b[j])}`]);
      j++;
    } else {
      const ch = a[i] === b[j] ? null : peerChange(a[i], b[j]);
      if (ch) out.push([a[i].node, `~ peer ${a[i].node}  ${ch}`]);
      i++;
      j++;
    }
  }
  return out;
}

function resourceLines(a: CompactResource, b: CompactResource): string[] {
  const out: string[] = [];
  if (a.hidden !== b.hidden) out.push(`~ ${a.hidden ? 'hidden' : 'public'} → ${b.hidden ? 'hidden' : 'public'}`);
  if (a.subnet !== b.subnet) out.push(`~ subnet ${a.subnet} → ${b.subnet}`);
  if (a.subnet6 !== b.subnet6) out.push(`~ subnet6 ${a.subnet6 ?? 'none'} → ${b.subnet6 ?? 'none'}`);
  if (a.listenPort !== b.listenPort) out.push(`~ listen port ${a.listenPort} → ${b.listenPort}`);
  if (a.endpoint !== b.endpoint) out.push(`~ endpoint ${a.endpoint ?? 'none'} → ${b.endpoint ?? 'none'}`);
  if (a.publicKey !== b.publicKey) out.push(`~ new key pair${a.sealedTo !== b.sealedTo ? ' (sealed to a new identity key)' : ''}`);
  if (a.accessNode !== b.accessNode) out.push(`~ access node ${a.accessNode ?? 'none'} → ${b.accessNode ?? 'none'}`);
  return out;
}

/** The node's peer changes from the shared ones (`publicShared` / `directShared`) plus its own. */
function peerLines(ixA: MeshIndex, ixB: MeshIndex, a: CompactResource, b: CompactResource, shared: { pub: [string, string][]; direct: [string, string][] }): string[] {
  let lines: [string, string][];
  if (a.hidden !== b.hidden) lines = diffPeerLists(memberPeers(ixA, a.node), memberPeers(ixB, b.node));
  else if (!b.hidden) lines = [...shared.pub.filter(([n]) => n !== b.node), ...diffPeerLists(behindPeers(ixA, a.node), behindPeers(ixB, b.node))];
  else {
    const ra = relayPeer(ixA, a.node);
    const rb = relayPeer(ixB, b.node);
    lines = [...shared.direct.filter(([n]) => n !== b.node), ...diffPeerLists(ra ? [ra] : [], rb ? [rb] : [])];
  }
  return lines.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map(([, l]) => l);
}

function deviceLines(a: AccessDevice, b: AccessDevice): string[] {
  const out: string[] = [];
  if (a.subnet !== b.subnet) out.push(`~ subnet ${a.subnet} → ${b.subnet}`);
  if (a.subnet6 !== b.subnet6) out.push(`~ subnet6 ${a.subnet6 ?? 'none'} → ${b.subnet6 ?? 'none'}`);
  if (a.via !== b.via) out.push(`~ access node ${a.via} → ${b.via}`);
  if (a.publicKey !== b.publicKey) out.push('~ new key');
  if (!!a.egress !== !!b.egress) out.push(`~ egress ${a.egress ? 'yes' : 'no'} → ${b.egress ? 'yes' : 'no'}`);
  return out;
}

function diffNetwork(a: CompactNetwork | undefined, b: CompactNetwork | undefined, ka: number, kb: number): MemberDiff[] {
  const name = (a ?? b)!.name;
  const out: MemberDiff[] = [];
  const ixA = a ? networkMesh(a, ka) : null;
  const ixB = b ? networkMesh(b, kb) : null;
  const resA = new Map((a?.resources ?? []).map((r) => [r.node, r]));
  const resB = new Map((b?.resources ?? []).map((r) => [r.node, r]));
  const shared = ixA && ixB ? { pub: diffPeerLists(ixA.publicEntries, ixB.publicEntries), direct: diffPeerLists(ixA.directEntries, ixB.directEntries) } : { pub: [], direct: [] };
  const nodes = [...new Set([...resA.keys(), ...resB.keys()])].sort();
  for (const node of nodes) {
    const ra = resA.get(node);
    const rb = resB.get(node);
    if (!rb) out.push({ network: name, kind: 'node', name: node, op: '-', lines: [] });
    else if (!ra) {
      const n = memberPeers(ixB!, node).length;
      out.push({ network: name, kind: 'node', name: node, op: '+', lines: [`${rb.hidden ? `hidden via ${rb.accessNode}` : `public at ${rb.endpoint}`}, subnet ${rb.subnet}, port ${rb.listenPort}, ${n} peer${n === 1 ? '' : 's'}`] });
    } else {
      const lines = [...resourceLines(ra, rb), ...peerLines(ixA!, ixB!, ra, rb, shared)];
      if (lines.length) out.push({ network: name, kind: 'node', name: node, op: '~', lines });
    }
  }
  const devA = new Map((a?.access ?? []).map((d) => [d.name, d]));
  const devB = new Map((b?.access ?? []).map((d) => [d.name, d]));
  for (const dev of [...new Set([...devA.keys(), ...devB.keys()])].sort()) {
    const da = devA.get(dev);
    const db = devB.get(dev);
    if (!db) out.push({ network: name, kind: 'device', name: dev, op: '-', lines: [] });
    else if (!da) out.push({ network: name, kind: 'device', name: dev, op: '+', lines: [`subnet ${db.subnet}, via ${db.via}`] });
    else {
      const lines = deviceLines(da, db);
      if (lines.length) out.push({ network: name, kind: 'device', name: dev, op: '~', lines });
    }
  }
  return out;
}

function diffWorkloads(a: WorkloadPlan[], b: WorkloadPlan[]): MemberDiff[] {
  const key = (w: WorkloadPlan) => `${w.network}\0${w.name}`;
  const wa = new Map(a.map((w) => [key(w), w]));
  const wb = new Map(b.map((w) => [key(w), w]));
  const out: MemberDiff[] = [];
  for (const k of [...new Set([...wa.keys(), ...wb.keys()])].sort()) {
    const x = wa.get(k);
    const y = wb.get(k);
    const w = (y ?? x)!;
    if (!y) out.push({ network: w.network, kind: 'workload', name: w.name, op: '-', lines: [] });
    else if (!x) out.push({ network: w.network, kind: 'workload', name: w.name, op: '+', lines: [`${y.ip} on ${y.node}`] });
    else if (x.ip !== y.ip || x.node !== y.node) out.push({ network: w.network, kind: 'workload', name: w.name, op: '~', lines: [`~ ${x.ip} on ${x.node} → ${y.ip} on ${y.node}`] });
    else if (x.ip6 !== y.ip6) out.push({ network: w.network, kind: 'workload', name: w.name, op: '~', lines: [`~ ip6 ${x.ip6 ?? 'none'} → ${y.ip6 ?? 'none'}`] });
  }
  return out;
}

/** Everything `next` changes against `prev` (both compact: compactPlan() turns an old full plan into one). */
export function diffPlans(prev: CompactPlan, next: CompactPlan): PlanDiff {
  const na = new Map(prev.networks.map((n) => [n.name, n]));
  const nb = new Map(next.networks.map((n) => [n.name, n]));
  const names = [...next.networks.map((n) => n.name), ...prev.networks.map((n) => n.name).filter((n) => !nb.has(n))];
  const changes: MemberDiff[] = [];
  for (const n of names) changes.push(...diffNetwork(na.get(n), nb.get(n), prev.hiddenKeepalive, next.hiddenKeepalive));
  changes.push(...diffWorkloads(prev.workloads, next.workloads));
  const counts = { add: 0, change: 0, destroy: 0 };
  for (const c of changes) counts[c.op === '+' ? 'add' : c.op === '-' ? 'destroy' : 'change']++;
  return {
    tenant: next.tenant,
    blueprint: next.blueprint,
    from: { version: prev.version, generation: prev.generation },
    to: { version: next.version, generation: next.generation },
    changes,
    counts,
  };
}

/** The diff as text, terraform-style: one block per network, members with their changes, then the counts. */
export function formatDiff(d: PlanDiff): string {
  const out = [`plan ${d.tenant}/${d.blueprint}: version ${d.from.version} → ${d.to.version}, generation ${d.from.generation} → ${d.to.generation}`];
  let section = '';
  for (const c of d.changes) {
    const s = c.kind === 'workload' ? 'workloads' : `network ${c.network}`;
    if (s !== section) out.push('', s);
    section = s;
    const what = c.kind === 'workload' ? `${c.name} (network ${c.network})` : `${c.kind} ${c.name}`;
    if (c.op === '~') out.push(`  ~ ${what}`, ...c.lines.map((l) => `      ${l}`));
    else out.push(`  ${c.op} ${what}${c.lines.length ? `: ${c.lines.join('; ')}` : ''}`);
  }
  const { add, change, destroy } = d.counts;
  out.push('', add + change + destroy ? `Plan: ${add} to add, ${change} to change, ${destroy} to destroy.` : 'No changes.');
  return out.join('\n') + '\n';
}
