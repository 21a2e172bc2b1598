// Carrying candidate endpoints between hidden nodes (direct paths, docs/paths.md). Pure: from what every node
// reports about itself (GET /v1/candidates: its underlay addresses with each network's port, and, on an access
// node, the post-NAT endpoints it sees its hidden peers at) to what each hidden node is told about the others
// (PUT /v1/candidates). The lab (embedded control plane) and the etcd controller both call this.
import { candidateProblem, MAX_CANDIDATES } from '../agent/candidates.ts';

/** One network as a node reports it. */
export interface CandidateReportNetwork {
  networkId: string;
  ipRange: string;
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

/**
 * For every hidden node, the candidates of every other hidden node of its networks: the other node's reflexive
 * endpoint (as its access node sees it) and its local endpoints. Local ones come first when both nodes are seen
 * from the same public address (behind the same NAT, where the reflexive one would need hairpinning); the
 * reflexive one first otherwise. Invalid endpoints are dropped; at most MAX_CANDIDATES per node.
 */
export function distributeCandidates(reports: CandidateReport[]): Map<string, CandidateSubmission> {
  const hiddenIn = new Map<string, { node: string; ipRange: string; local: string[]; directPeers: Set<string> }[]>();
  const reflexive = new Map<string, string>(); // `${networkId}/${node}` → endpoint
  const via = new Map<string, string>(); // `${networkId}/${hidden node}` → the access node it names
  for (const r of reports) {
    for (const n of r.networks) {
      if (!n.hidden) continue;
      const list = hiddenIn.get(n.networkId) ?? [];
      list.push({ node: r.node, ipRange: n.ipRange, local: n.local, directPeers: new Set(n.directPeers) });
      hiddenIn.set(n.networkId, list);
      if (n.via) via.set(`${n.networkId}/${r.node}`, n.via);
    }
  }
  // Where a hidden node's packets come from counts only as its own access node sees it.
  for (const r of reports) {
    for (const n of r.networks) {
      if (n.hidden) continue;
      for (const [peer, ep] of Object.entries(n.observed)) {
        if (via.get(`${n.networkId}/${peer}`) === r.node) reflexive.set(`${n.networkId}/${peer}`, ep);
      }
    }
  }
  const out = new Map<string, CandidateSubmission>();
  for (const [net, members] of [...hiddenIn].sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const x of members) {
      const mine = reflexive.get(`${net}/${x.node}`);
      const peers: Record<string, string[]> = {};
      for (const y of members) {
        // Only between two nodes that each name the other as a direct peer (their plan parts say so): a node
        // claiming to be in a network it is not in learns nothing of its members.
        if (y.node === x.node || !x.directPeers.has(y.node) || !y.directPeers.has(x.node)) continue;
        const refl = reflexive.get(`${net}/${y.node}`);
        const sameNat = mine !== undefined && refl !== undefined && host(mine) === host(refl);
        const list = sameNat ? [...y.local, refl] : [...(refl ? [refl] : []), ...y.local];
        // Checked with the RECEIVER's range (what the receiving agent checks them with): a sender that lies about
        // its range cannot get the receiver's whole submission refused.
        const uniq = [...new Set(list.filter((e): e is string => e !== undefined && candidateProblem(e, x.ipRange) === null))].slice(0, MAX_CANDIDATES);
        if (uniq.length) peers[y.node] = uniq;
      }
      const sub = out.get(x.node) ?? { networks: {} };
      sub.networks[net] = peers;
      out.set(x.node, sub);
    }
  }
  return out;
}
