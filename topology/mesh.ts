// The peer mesh of one network. Public nodes form a full mesh; a hidden node (no endpoint, behind NAT) and an
// outside access device each have exactly one peer, a public access node ("via"), which routes for them.
//
// Allowed-ips, per resource, never overlap and, with the resource's own subnet, cover every subnet:
//  - public P's entry for public Q: Q's subnet plus the subnets of everything that enters through Q;
//  - public P's entry for hidden H / device D that enters through P: that member's subnet, endpoint null;
//  - hidden H's entry for its access node: the whole range minus H's own subnet, with a keepalive;
//  - hidden H's entry for every other hidden node G of the network (a *direct peer*): no allowed-ips, no endpoint,
//    and `directSubnet` = G's subnet. The node itself moves G's subnet onto it once a direct path to G is proven
//    (topology/paths.ts); the plan never routes anything to it.
// Work is O(members + public²) array slots; the entry for a public node is one shared object, the same in
// every other public node's list (treat plans as immutable).
import type { Peer } from '../src/plan/types.ts';
import { cidrExclude, formatCidr, parseCidr, type Cidr } from './cidr.ts';

export interface MeshMember {
  /** Node id, or access device name. */
  id: string;
  kind: 'node' | 'device';
  subnet: string;
  publicKey: string;
  /** "ip:port" for public nodes; null for hidden nodes and devices. */
  endpoint: string | null;
  /** For hidden nodes and devices: the public node they enter through; null for public nodes. */
  via: string | null;
}

export interface MeshOptions {
  /** Keepalive a hidden node sends to its access node (seconds). */
  hiddenKeepalive: number;
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

function byNode(a: Peer, b: Peer): number {
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

function sortCidrTexts(list: string[]): string[] {
  const parsed = list.map((t) => parseCidr(t) as Cidr);
  parsed.sort((a, b) => a.base - b.base || a.prefix - b.prefix);
  return parsed.map(formatCidr);
}

/** Peers of every node member (devices get their single peer in their wg-quick config, not here). */
export function buildMesh(range: string, members: MeshMember[], opts: MeshOptions): Map<string, Peer[]> {
  const rangeCidr = parseCidr(range);
  if (!rangeCidr) throw new MeshError('E_CIDR_FORMAT', `bad range ${range}`, '');
  const publics = members.filter((m) => m.kind === 'node' && m.via === null).sort(byId);
  const publicById = new Map(publics.map((p) => [p.id, p]));
  const publicIds = new Set(publicById.keys());
  const behind = new Map<string, MeshMember[]>();
  for (const p of publics) {
    if (!p.endpoint) throw new MeshError('E_PUBLIC_NO_ENDPOINT', `public node ${p.id} has no endpoint`, p.id);
    behind.set(p.id, []);
  }
  for (const m of members) {
    if (m.via === null) continue;
    if (!publicIds.has(m.via)) {
      throw new MeshError('E_ACCESS_NODE', `${m.id} enters through ${m.via}, which is not a public node of the network`, m.id);
    }
    behind.get(m.via)!.push(m);
  }

  // One shared, frozen entry per public node, as every other public node sees it.
  const publicEntry = new Map<string, Peer>();
  for (const p of publics) {
    const extra = behind.get(p.id)!.map((m) => m.subnet);
    publicEntry.set(
      p.id,
      Object.freeze({
        node: p.id,
        kind: 'node',
        publicKey: p.publicKey,
        endpoint: p.endpoint,
        allowedIps: Object.freeze(extra.length ? sortCidrTexts([p.subnet, ...extra]) : [p.subnet]) as string[],
        persistentKeepalive: null,
      }) as Peer,
    );
  }
  const ordered = publics.map((p) => publicEntry.get(p.id)!);

  const out = new Map<string, Peer[]>();
  for (const p of publics) {
    const local: Peer[] = behind
      .get(p.id)!
      .map((m) => ({
        node: m.id,
        kind: m.kind,
        publicKey: m.publicKey,
        endpoint: null,
        allowedIps: [m.subnet],
        persistentKeepalive: null,
      }))
      .sort(byNode);
    // Merge the globally sorted public entries (minus self) with the sorted local ones.
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
    out.set(p.id, peers);
  }
  const hidden = members.filter((m) => m.kind === 'node' && m.via !== null).sort(byId);
  // One shared, frozen direct-peer entry per hidden node, as every other hidden node sees it.
  const directEntry = hidden.map(
    (m) =>
      Object.freeze({
        node: m.id,
        kind: 'node',
        publicKey: m.publicKey,
        endpoint: null,
        allowedIps: Object.freeze([]) as unknown as string[],
        persistentKeepalive: null,
        directSubnet: m.subnet,
      }) as Peer,
  );
  for (const m of hidden) {
    const access = publicById.get(m.via!)!;
    const own = parseCidr(m.subnet) as Cidr;
    const relay: Peer = {
      node: access.id,
      kind: 'node',
      publicKey: access.publicKey,
      endpoint: access.endpoint,
      allowedIps: cidrExclude(rangeCidr, own).map(formatCidr),
      persistentKeepalive: opts.hiddenKeepalive,
    };
    const peers: Peer[] = [];
    let placed = false;
    for (const d of directEntry) {
      if (d.node === m.id) continue;
      if (!placed && relay.node < d.node) {
        peers.push(relay);
        placed = true;
      }
      peers.push(d);
    }
    if (!placed) peers.push(relay);
    out.set(m.id, peers);
  }
  return out;
}
