// The peer mesh of one network. Public nodes form a full mesh; a hidden node (no endpoint, behind NAT) and an
// outside access device each have exactly one peer, a public access node ("via"), which routes for them.
//
// Allowed-ips, per resource, never overlap and, with the resource's own subnet, cover every subnet:
//  - public P's entry for public Q: Q's subnet plus the subnets of everything that enters through Q;
//  - public P's entry for hidden H / device D that enters through P: that member's subnet, endpoint null;
//  - hidden H's entry for its access node: the whole range minus H's own subnet, with a keepalive;
//  - hidden H's entry for every other hidden node G of the network (a *direct peer*): no allowed-ips, no endpoint,
//    and `directSubnet` = G's subnet (and `directSubnet6` = G's subnet6 on a dual-stack network). The node itself
//    moves G's subnet onto it once a direct path to G is proven (topology/paths.ts); the plan never routes anything
//    to it.
// On a dual-stack network (a range6, members with subnet6) every rule holds in both families: an entry's allowed-ips
// are its IPv4 CIDRs sorted by address, then its IPv6 CIDRs sorted by address; the relay entry is the range minus
// the own subnet, then range6 minus the own subnet6.
// meshIndex does the shared work once per network (O(n log n)); memberPeers then gives one member's list in O(n)
// (a node part), buildMesh every list: O(members + public²) array slots. The entry for a public node is one
// shared object, the same in every other public node's list (treat plans as immutable). This is the only place
// peers are made: the planner's full form, node parts, the etcd controller and `zmesh plan --expand/--part` all
// come through memberPeers (src/plan/derive.ts).
import type { Peer } from './types.ts';
import { cidrExclude, formatCidr, parseCidr, type Cidr } from './cidr.ts';
import { cidr6Exclude, compareCidr6, formatCidr6, parseCidr6, type Cidr6 } from './cidr6.ts';

export interface MeshMember {
  /** Node id, or access device name. */
  id: string;
  kind: 'node' | 'device';
  subnet: string;
  /** Dual-stack networks: the member's IPv6 subnet (same slot as subnet). */
  subnet6?: string;
  publicKey: string;
  /** "ip:port" for public nodes; null for hidden nodes and devices. */
  endpoint: string | null;
  /** For hidden nodes and devices: the public node they enter through; null for public nodes. */
  via: string | null;
}

export interface MeshOptions {
  /** Keepalive a hidden node sends to its access node (seconds). */
  hiddenKeepalive: number;
  /** The network's IPv6 range on a dual-stack network; absent or null: IPv4 only. */
  range6?: string | null;
}

export class MeshError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly member: string,
  ) {
    super(message);
  }
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function sortCidrTexts(list: string[]): string[] {
  const parsed = list.map((t) => parseCidr(t) as Cidr);
  parsed.sort((a, b) => a.base - b.base || a.prefix - b.prefix);
  return parsed.map(formatCidr);
}

function sortCidr6Texts(list: string[]): string[] {
  const parsed = list.map((t) => parseCidr6(t) as Cidr6);
  parsed.sort(compareCidr6);
  return parsed.map(formatCidr6);
}

/** A member's allowed-ips: its IPv4 subnets sorted, then (dual-stack) its IPv6 subnets sorted. */
function bothFamilies(v4: string[], v6: string[]): string[] {
  const a = v4.length > 1 ? sortCidrTexts(v4) : v4;
  if (!v6.length) return a;
  return [...a, ...(v6.length > 1 ? sortCidr6Texts(v6) : v6)];
}

/**
 * What the peer lists of one network share, built once in O(n log n): the public nodes in order, who enters
 * through each, and the entry of each public / hidden node as the others see it (shared, frozen objects).
 */
export interface MeshIndex {
  range: Cidr;
  /** The IPv6 range of a dual-stack network, else null. */
  range6: Cidr6 | null;
  keepalive: number;
  byId: Map<string, MeshMember>;
  /** Public nodes' entries as every other public node sees them, sorted by node. */
  publicEntries: Peer[];
  /** Hidden and device members behind each public node, sorted by id. */
  behind: Map<string, MeshMember[]>;
  /** Hidden nodes' direct-peer entries as every other hidden node sees them, sorted by node. */
  directEntries: Peer[];
}

/** Indexes one network's members; throws MeshError when a member enters through anything but a public node. */
export function meshIndex(range: string, members: MeshMember[], opts: MeshOptions): MeshIndex {
  const rangeCidr = parseCidr(range);
  if (!rangeCidr) throw new MeshError('E_CIDR_FORMAT', `bad range ${range}`, '');
  const range6 = opts.range6 ? parseCidr6(opts.range6) : null;
  if (opts.range6 && !range6) throw new MeshError('E_CIDR_FORMAT', `bad IPv6 range ${opts.range6}`, '');
  const v6 = (m: MeshMember): string[] => (range6 && m.subnet6 !== undefined ? [m.subnet6] : []);
  const publics = members.filter((m) => m.kind === 'node' && m.via === null).sort(byId);
  const byIdMap = new Map(members.map((m) => [m.id, m]));
  const behind = new Map<string, MeshMember[]>();
  for (const p of publics) {
    if (!p.endpoint) throw new MeshError('E_PUBLIC_NO_ENDPOINT', `public node ${p.id} has no endpoint`, p.id);
    behind.set(p.id, []);
  }
  for (const m of members) {
    if (m.via === null) continue;
    const list = behind.get(m.via);
    if (!list) throw new MeshError('E_ACCESS_NODE', `${m.id} enters through ${m.via}, which is not a public node of the network`, m.id);
    list.push(m);
  }
  for (const list of behind.values()) list.sort(byId);
  const publicEntries = publics.map((p) => {
    const list = behind.get(p.id)!;
    const four = [p.subnet, ...list.map((m) => m.subnet)];
    const six = range6 ? [...v6(p), ...list.flatMap(v6)] : [];
    return Object.freeze({
      node: p.id,
      kind: 'node',
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: Object.freeze(bothFamilies(four, six)) as string[],
      persistentKeepalive: null,
    }) as Peer;
  });
  const directEntries = members
    .filter((m) => m.kind === 'node' && m.via !== null)
    .sort(byId)
    .map(
      (m) =>
        Object.freeze({
          node: m.id,
          kind: 'node',
          publicKey: m.publicKey,
          endpoint: null,
          allowedIps: Object.freeze([]) as unknown as string[],
          persistentKeepalive: null,
          directSubnet: m.subnet,
          ...(range6 && m.subnet6 !== undefined ? { directSubnet6: m.subnet6 } : {}),
        }) as Peer,
    );
  return { range: rangeCidr, range6, keepalive: opts.hiddenKeepalive, byId: byIdMap, publicEntries, behind, directEntries };
}

/**
 * THE peer derivation: the peers of node member `id` (sorted by node), O(n). Devices get their single peer in
 * their wg-quick config, not here ([] for a device or an unknown id). Entries shared between lists are frozen.
 */
export function memberPeers(ix: MeshIndex, id: string): Peer[] {
  const m = ix.byId.get(id);
  if (!m || m.kind !== 'node') return [];
  return m.via === null ? publicPeers(ix, m) : hiddenPeers(ix, m);
}

/** memberPeers(ix, id).length without building the list, O(1). */
export function memberPeerCount(ix: MeshIndex, id: string): number {
  const m = ix.byId.get(id);
  if (!m || m.kind !== 'node') return 0;
  return m.via === null ? ix.publicEntries.length - 1 + ix.behind.get(m.id)!.length : ix.directEntries.length;
}

/** A public node's entries for the hidden nodes and devices that enter through it, sorted by node. */
export function behindPeers(ix: MeshIndex, id: string): Peer[] {
  return (ix.behind.get(id) ?? []).map((m) => ({
    node: m.id,
    kind: m.kind,
    publicKey: m.publicKey,
    endpoint: null,
    allowedIps: ix.range6 && m.subnet6 !== undefined ? [m.subnet, m.subnet6] : [m.subnet],
    persistentKeepalive: null,
  }));
}

/** A hidden node's entry for its access node: the whole range minus its own subnet (each family), with a keepalive. */
export function relayPeer(ix: MeshIndex, id: string): Peer | null {
  const m = ix.byId.get(id);
  const access = m?.via ? ix.byId.get(m.via) : undefined;
  if (!m || m.kind !== 'node' || !access) return null;
  return {
    node: access.id,
    kind: 'node',
    publicKey: access.publicKey,
    endpoint: access.endpoint,
    allowedIps: relayAllowed(ix, m),
    persistentKeepalive: ix.keepalive,
  };
}

function relayAllowed(ix: MeshIndex, m: MeshMember): string[] {
  const four = cidrExclude(ix.range, parseCidr(m.subnet) as Cidr).map(formatCidr);
  const own6 = ix.range6 && m.subnet6 !== undefined ? parseCidr6(m.subnet6) : null;
  if (!ix.range6 || !own6) return four;
  return [...four, ...cidr6Exclude(ix.range6, own6).map(formatCidr6)];
}

function publicPeers(ix: MeshIndex, p: MeshMember): Peer[] {
  const local = behindPeers(ix, p.id);
  // Merge the sorted public entries (minus self) with the sorted local ones.
  const ordered = ix.publicEntries;
  const peers: Peer[] = new Array(ordered.length - 1 + local.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < ordered.length || j < local.length) {
    if (i < ordered.length && ordered[i].node === p.id) {
      i++;
      continue;
    }
    if (j >= local.length || (i < ordered.length && ordered[i].node < local[j].node)) peers[k++] = ordered[i++];
    else peers[k++] = local[j++];
  }
  return peers;
}

function hiddenPeers(ix: MeshIndex, m: MeshMember): Peer[] {
  const relay = relayPeer(ix, m.id)!;
  const peers: Peer[] = [];
  let placed = false;
  for (const d of ix.directEntries) {
    if (d.node === m.id) continue;
    if (!placed && relay.node < d.node) {
      peers.push(relay);
      placed = true;
    }
    peers.push(d);
  }
  if (!placed) peers.push(relay);
  return peers;
}

/** Peers of every node member: memberPeers for each (O(members + public²) array slots). */
export function buildMesh(range: string, members: MeshMember[], opts: MeshOptions): Map<string, Peer[]> {
  const ix = meshIndex(range, members, opts);
  const out = new Map<string, Peer[]>();
  for (const m of [...members].sort(byId)) if (m.kind === 'node') out.set(m.id, memberPeers(ix, m.id));
  return out;
}
