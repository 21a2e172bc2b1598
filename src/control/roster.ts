// The roster of a network (issue #17): on etcd, a member's part no longer carries what every member of the network
// is — each member's subnet (the network's subnet buckets) and name addresses (the node-name buckets). Copied into
// every part, those were O(n) entries per part and O(n²) per network: 3.1 M of the 4.19 M entries a 10,000-node
// plan wrote, which took etcd past its 4 GiB quota. The controller writes each member's roster entry ONCE per
// network, under roster/<networkId>/<epoch>/<node>, and each member's part carries only what the roster must hold:
// `roster: {epoch, n, sha256}` in its signed net/<network> entry. The agent reads the roster (a watch per network,
// allowed by its role) and takes it only when its count and SHA-256 are exactly what its signed part says; until
// then the part waits (E_ROSTER_PENDING). Epochs, grants, the hash and the bounds are the direct-peer directory's
// (src/control/directory.ts): a new epoch whenever a member leaves, so a node that left cannot watch later members.
// Access devices' subnets and the workloads' and devices' names stay in the part. Pure.
import type { CompactPlan } from '../plan/types.ts';
import { policyMembers, type NodeNetworkPart } from '../plan/part.ts';
import { networkNames, type NameAddrs } from '../plan/names.ts';
import { currentDirectory, directoryHash, directoryHead, type Directory, type DirectoryHead } from './directory.ts';

/** One member as the roster holds it. */
export interface RosterEntry {
  /** The member's node id: in the value, so the hash covers it (an entry moved to another key is refused). */
  node: string;
  subnet: string;
  /** The node's name addresses (its gateway's, both families on a dual-stack network). */
  name: NameAddrs;
  /** A network with a policy: the node's addresses its selectors name (policyMembers: gateway and WireGuard). */
  member?: string[];
  member6?: string[];
}

export function rosterValue(e: RosterEntry): string {
  return JSON.stringify({
    node: e.node,
    subnet: e.subnet,
    name: e.name.ip6 !== undefined ? { ip: e.name.ip, ip6: e.name.ip6 } : { ip: e.name.ip },
    ...(e.member ? { member: e.member } : {}),
    ...(e.member6 ? { member6: e.member6 } : {}),
  });
}

/** Every network's roster entries: networkId → node → its entry as stored (JSON). */
export function rosterEntries(plan: CompactPlan): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const n of plan.networks) {
    if (!n.resources.length) continue;
    const nodes = networkNames(plan, n).nodes;
    const members = n.policy ? policyMembers(plan, n) : undefined;
    const m = new Map<string, string>();
    for (const r of n.resources) m.set(r.node, rosterValue({ node: r.node, subnet: r.subnet, name: nodes[r.node], member: members?.nodes[r.node], member6: members?.nodes6?.[r.node] }));
    out.set(n.id, m);
  }
  return out;
}

/** What a roster adds to a member's network part. */
export interface Roster {
  subnets: string[];
  nodes: Record<string, NameAddrs>;
  members: Record<string, string[]>;
  members6: Record<string, string[]>;
}

export type RosterCheck = Roster | { waiting: string };

const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 64;
const isList = (v: unknown): v is string[] => Array.isArray(v) && v.length <= 4 && v.every(isText);
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The members' subnets, name and policy addresses from a network's roster as read, when (and only when) the
 * entries are exactly what the signed part says: the same count and hash. Records keyed by node, sorted.
 */
export function rosterFrom(head: DirectoryHead, entries: ReadonlyMap<string, string> | undefined): RosterCheck {
  if (!entries) return { waiting: `roster ${head.epoch} not read yet` };
  if (entries.size !== head.n) return { waiting: `roster ${head.epoch} holds ${entries.size} entries, the part says ${head.n}` };
  if (directoryHash(entries.values()) !== head.sha256) return { waiting: `roster ${head.epoch} does not match the part's hash` };
  const subnets: string[] = [];
  const parsed: [string, RosterEntry][] = [];
  for (const [id, v] of entries) {
    let e: RosterEntry;
    try {
      e = JSON.parse(v) as RosterEntry;
    } catch {
      return { waiting: `roster entry ${id} is not JSON` };
    }
    // The hash makes the text the controller's; the shape is checked all the same (a controller bug must not
    // reach the data plane as something else).
    // The hash covers the values only: the node id inside the value is what binds an entry to its key (a writer
    // of etcd swapping two members' keys would otherwise swap their names and policy addresses).
    if (!e || typeof e !== 'object' || e.node !== id) return { waiting: `roster entry ${id} is not ${id}'s` };
    const good =
      !!e && typeof e === 'object' && isText(e.subnet) && !!e.name && typeof e.name === 'object' && isText(e.name.ip) && (e.name.ip6 === undefined || isText(e.name.ip6)) && (e.member === undefined || isList(e.member)) && (e.member6 === undefined || isList(e.member6));
    if (!good) return { waiting: `roster entry ${id} is not a member's entry` };
    subnets.push(e.subnet);
    parsed.push([id, e]);
  }
  parsed.sort((a, b) => byText(a[0], b[0]));
  // Object.fromEntries: own properties whatever the node id ("__proto__" included).
  return {
    subnets,
    nodes: Object.fromEntries(parsed.map(([id, e]) => [id, e.name.ip6 !== undefined ? { ip: e.name.ip, ip6: e.name.ip6 } : { ip: e.name.ip }])),
    members: Object.fromEntries(parsed.filter(([, e]) => e.member).map(([id, e]) => [id, [...e.member!]])),
    members6: Object.fromEntries(parsed.filter(([, e]) => e.member6).map(([id, e]) => [id, [...e.member6!]])),
  };
}

/**
 * A network part assembled from a part that names a roster, completed from the roster (in place), as the whole
 * part has it: the members' subnets join the devices' (sorted), the members' names join the network's names, and
 * on a network with a policy the members' addresses join its members.
 */
export function fillFromRoster(n: NodeNetworkPart, r: Roster): void {
  n.subnets = [...n.subnets, ...r.subnets].sort();
  n.names = { workloads: n.names?.workloads ?? {}, devices: n.names?.devices ?? {}, nodes: r.nodes };
  if (n.members) {
    n.members.nodes = r.members;
    if (n.members.nodes6) n.members.nodes6 = r.members6;
  }
}

/**
 * A leave without re-reads: when a network's roster moves to a new epoch, every member would read the new one whole
 * (1.49 MB at 10,000 members, ~15 GB across the fleet per leave). The controller writes, after the new epoch's
 * entries, one unsigned hint under the new epoch: the old epoch, who left, and the count and hash of the new
 * epoch's first content. A member that holds the old epoch takes it minus those who left, checks it against the
 * hint, and watches the new epoch from the hint's revision on (later joins arrive as events). The hint is only a
 * shortcut: the part still takes the roster only when it matches the signed head, and a forged or stale hint ends
 * in a full read. The key is not a node id (`_from` is no DNS label), so it is never an entry.
 */
export const ROSTER_HINT = '_from';
/** A leave of more members than this gets no hint (a full read is as cheap). */
export const MAX_HINT_LEFT = 1024;
/** What an agent reads of a hint at most: 1,024 node ids of 63 characters and the rest (~68 KB), with room. */
export const MAX_HINT_BYTES = 256 * 1024;

export interface RosterHint {
  from: string;
  left: string[];
  n: number;
  sha256: string;
}

/**
 * The hints of the epochs this round moves to from a stored one: networkId → hint (as stored, JSON). Also when the
 * new epoch is stored already beside the old one (a controller stopped between its entries and its hint).
 */
export function rosterHints(stored: ReadonlyMap<string, Directory[]>, next: ReadonlyMap<string, Directory>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [net, d] of next) {
    const old = currentDirectory(stored.get(net)?.filter((o) => o.entries.size));
    if (!old || old.epoch === d.epoch) continue;
    const left = [...old.entries.keys()].filter((node) => !d.entries.has(node)).sort();
    if (left.length > MAX_HINT_LEFT) continue;
    const head = directoryHead(d);
    out.set(net, JSON.stringify({ from: old.epoch, left, n: head.n, sha256: head.sha256 } satisfies RosterHint));
  }
  return out;
}

/**
 * What a member takes from a hint: the entries it holds of the epoch the hint names (`held`; undefined when it
 * holds none) minus those who left, when the result has the hint's count and hash; null otherwise (then it reads the
 * new epoch whole).
 */
export function fromHint(hintText: string, held: (epoch: string) => ReadonlyMap<string, string> | undefined): Map<string, string> | null {
  let h: RosterHint;
  try {
    h = JSON.parse(hintText) as RosterHint;
  } catch {
    return null;
  }
  if (!h || typeof h !== 'object' || typeof h.from !== 'string' || !Array.isArray(h.left) || h.left.length > MAX_HINT_LEFT || !Number.isInteger(h.n) || typeof h.sha256 !== 'string') return null;
  const seed = held(h.from);
  if (!seed) return null;
  const out = new Map(seed);
  for (const node of h.left) if (typeof node === 'string') out.delete(node);
  if (out.size !== h.n || directoryHash(out.values()) !== h.sha256) return null;
  return out;
}
