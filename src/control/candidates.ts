// Carrying candidate endpoints between hidden nodes (direct paths, docs/paths.md). Pure: from what every node
// reports about itself (GET /v1/candidates: its underlay addresses with each network's port, and, on an access
// node, the post-NAT endpoints it sees its hidden peers at) to what each hidden node is told about the others
// (PUT /v1/candidates). The lab (embedded control plane) and the etcd controller both call this.
import { candidateProblem, MAX_CANDIDATES } from '../agent/candidates.ts';

/** One network as a node reports it. */
export interface CandidateReportNetwork {
  networkId: string;
  ipRange: string;
  /** Dual-stack networks: the network's IPv6 range (candidates must stay out of it too). */
  ipRange6?: string;
  /** True when this node is hidden in the network (it wants candidates of the other hidden nodes). */
  hidden: boolean;
  /** When hidden: the direct peers its plan part names (only these are sent to it). */
  directPeers: string[];
  /** When hidden: its access node (only that node's observation of it counts). */
  via: string | null;
  /** This node's own underlay endpoints for the network ("ip:port", the network's listen port). */
  local: string[];
  /** On an access node: hidden peer node → the endpoint its packets arrive from (post-NAT, "reflexive"). */
  observed: Record<string, string>;
}

export interface CandidateReport {
  node: string;
  networks: CandidateReportNetwork[];
}

/** What one hidden node is told: networkId → other hidden node → endpoints to try, in order. */
export type CandidateSubmission = { networks: Record<string, Record<string, string[]>> };

function host(ep: string): string {
  return ep.startsWith('[') ? ep.slice(1, ep.indexOf(']')) : ep.slice(0, ep.lastIndexOf(':'));
}

/** One hidden node of a network in a candidate table: its reflexive endpoint (as its own access node sees it) and
 *  its local endpoints (each checked alone, without a range: the receiver checks them against its own). */
export interface CandidateTableEntry {
  reflexive: string | null;
  local: string[];
}

/**
 * What the control plane publishes per network (candidate-tables/<networkId>): every hidden member's candidates,
 * once. Each hidden node reads its networks' tables and keeps what concerns its own direct peers
 * (submissionFor): O(members) per network, where a submission per node was O(members²) in all.
 */
export interface CandidateTable {
  nodes: Record<string, CandidateTableEntry>;
  /** On etcd: every node the plans make hidden in the network (the relay's record of who may read the table). */
  members?: string[];
}

/** A hidden node's view of one of its networks: the range candidates must stay out of, its direct peers. */
export interface CandidateWant {
  networkId: string;
  ipRange: string;
  ipRange6?: string;
  directPeers: readonly string[];
}

/** What a hidden node's report of a network says it wants: the network, its ranges, its direct peers. */
export function wantOf(n: CandidateReportNetwork): CandidateWant {
  return { networkId: n.networkId, ipRange: n.ipRange, ...(n.ipRange6 ? { ipRange6: n.ipRange6 } : {}), directPeers: n.directPeers };
}

/**
 * The candidate table of every network with hidden members. `members` (networkId → the nodes hidden in it, from
 * the plans) decides who is in a table: a node that claims a network it is not hidden in is left out; without it,
 * every node that reports itself hidden is taken (the caller filters). A network absent from `members` gets no
 * table.
 */
export function candidateTables(reports: CandidateReport[], members?: ReadonlyMap<string, ReadonlySet<string>>): Map<string, CandidateTable> {
  const hidden = new Map<string, { node: string; local: string[] }[]>();
  const via = new Map<string, string>(); // `${networkId}/${hidden node}` → the access node it names
  for (const r of reports) {
    for (const n of r.networks) {
      if (!n.hidden) continue;
      if (members && !members.get(n.networkId)?.has(r.node)) continue;
      const list = hidden.get(n.networkId) ?? [];
      // One entry per node and network (a report naming a network twice counts once).
      if (via.has(`${n.networkId}/${r.node}`)) continue;
      via.set(`${n.networkId}/${r.node}`, n.via ?? '');
      list.push({ node: r.node, local: n.local });
      hidden.set(n.networkId, list);
    }
  }
  // Where a hidden node's packets come from counts only as its own access node sees it.
  const reflexive = new Map<string, string>(); // `${networkId}/${node}` → endpoint
  for (const r of reports) {
    for (const n of r.networks) {
      if (n.hidden) continue;
      for (const [peer, ep] of Object.entries(n.observed)) {
        if (via.get(`${n.networkId}/${peer}`) === r.node && r.node !== '' && candidateProblem(ep) === null) reflexive.set(`${n.networkId}/${peer}`, ep);
      }
    }
  }
  const out = new Map<string, CandidateTable>();
  for (const [net, list] of [...hidden].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const nodes: Record<string, CandidateTableEntry> = {};
    for (const x of list) {
      const local = [...new Set(x.local.filter((e) => candidateProblem(e) === null))].slice(0, MAX_CANDIDATES);
      nodes[x.node] = { reflexive: reflexive.get(`${net}/${x.node}`) ?? null, local };
    }
    out.set(net, { nodes });
  }
  return out;
}

/**
 * What one hidden node is told, from its networks' tables: for each direct peer its plan part names, the peer's
 * reflexive endpoint and its local ones — local first when both are seen from the same public address (behind the
 * same NAT, where the reflexive one would need hairpinning), the reflexive one first otherwise. Checked with the
 * RECEIVER's range (a sender lying about its range cannot slip an endpoint inside it); at most MAX_CANDIDATES per
 * peer. `accept(networkId, peer)` may leave peers out (the lab's mutual check). Every network of `wants` is named,
 * with no peers when nothing is known.
 */
export function submissionFor(
  node: string,
  wants: readonly CandidateWant[],
  tables: ReadonlyMap<string, CandidateTable>,
  accept: (networkId: string, peer: string) => boolean = () => true,
  problemOf: (ep: string, ipRange: string, ipRange6?: string) => string | null = candidateProblem,
): CandidateSubmission {
  const sub: CandidateSubmission = { networks: {} };
  for (const w of wants) {
    const nodes = tables.get(w.networkId)?.nodes ?? {};
    const own = Object.hasOwn(nodes, node) ? nodes[node] : undefined;
    const mine = own?.reflexive ?? null;
    const peers: Record<string, string[]> = {};
    for (const y of w.directPeers) {
      if (y === node || !Object.hasOwn(nodes, y) || !accept(w.networkId, y)) continue;
      const e = nodes[y];
      const refl = e.reflexive;
      const sameNat = mine !== null && refl !== null && host(mine) === host(refl);
      const list = sameNat ? [...e.local, refl] : [...(refl ? [refl] : []), ...e.local];
      const uniq = [...new Set(list.filter((ep): ep is string => typeof ep === 'string' && problemOf(ep, w.ipRange, w.ipRange6) === null))].slice(0, MAX_CANDIDATES);
      if (uniq.length) peers[y] = uniq;
    }
    sub.networks[w.networkId] = peers;
  }
  return sub;
}

/**
 * For every hidden node, the candidates of every other hidden node of its networks (the embedded control plane of
 * labs, which pushes them): the tables, then each node's submission — only between two nodes that each name the
 * other as a direct peer (their plan parts say so): a node claiming to be in a network it is not in learns
 * nothing of its members. Invalid endpoints are dropped; at most MAX_CANDIDATES per node.
 */
export function distributeCandidates(reports: CandidateReport[]): Map<string, CandidateSubmission> {
  const tables = candidateTables(reports);
  const named = new Map<string, Map<string, Set<string>>>(); // networkId → node → the direct peers it names
  const wants = new Map<string, CandidateWant[]>();
  for (const r of reports) {
    for (const n of r.networks) {
      if (!n.hidden) continue;
      let byNode = named.get(n.networkId);
      if (!byNode) named.set(n.networkId, (byNode = new Map()));
      if (byNode.has(r.node)) continue;
      byNode.set(r.node, new Set(n.directPeers));
      const list = wants.get(r.node) ?? [];
      list.push(wantOf(n));
      wants.set(r.node, list);
    }
  }
  // Every receiver checks the same endpoints against (mostly) the same ranges: each check once.
  const checked = new Map<string, string | null>();
  const problemOf = (ep: string, ipRange: string, ipRange6?: string) => {
    const key = `${ep} ${ipRange} ${ipRange6 ?? ''}`;
    let v = checked.get(key);
    if (v === undefined) checked.set(key, (v = candidateProblem(ep, ipRange, ipRange6)));
    return v;
  };
  const out = new Map<string, CandidateSubmission>();
  for (const [node, list] of wants) {
    list.sort((a, b) => (a.networkId < b.networkId ? -1 : a.networkId > b.networkId ? 1 : 0));
    out.set(node, submissionFor(node, list, tables, (net, peer) => named.get(net)?.get(peer)?.has(node) === true, problemOf));
  }
  return out;
}

/** A candidate table as read from etcd, shaped: malformed entries are dropped alone (the receiver checks every
 *  endpoint again, submissionFor); null when it is not a table at all. */
export function tableFrom(v: unknown): CandidateTable | null {
  const obj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!obj(v) || !obj(v.nodes)) return null;
  const nodes: Record<string, CandidateTableEntry> = {};
  for (const [node, e] of Object.entries(v.nodes)) {
    if (!obj(e) || !(e.reflexive === null || typeof e.reflexive === 'string') || !Array.isArray(e.local)) continue;
    nodes[node] = { reflexive: e.reflexive, local: e.local.filter((x): x is string => typeof x === 'string').slice(0, MAX_CANDIDATES) };
  }
  return { nodes };
}
