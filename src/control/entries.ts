// Plans and node parts as small etcd entries, and the diffs between two sets of entries. Pure.
//
// A node part is not one blob: it is a handful of keys under parts/<node>/<tenant>/<blueprint>/ so that a
// one-node change rewrites one small key per affected node, not every node's whole part:
//   gen                        {generation, version, envelope}   written last in every change; the agent acts on it
//   net/<network>              the network header and this node's resource without its peers
//   peer/<network>/<peer>      one WireGuard peer
//   subnets/<network>/<bucket> which of the network's /subnetPrefix slots [bucket*64, bucket*64+64) are taken:
//                              a 64-bit mask in hex (16 characters; a join rewrites one such key per node)
//   workloads                  the workloads placed on the node (absent when none)
//   names/<network>            the workloads' and devices' names the network's resolver serves (docs/dns.md)
//   names/<network>/<bucket>   the nodes' names, bucketed like subnets (a node's gateway's slot): a join rewrites
//                              one small key per node, not every node's list of every node
// On etcd the controller writes each network's members (subnets, names, policy addresses) once, in the network's
// roster (src/control/roster.ts): then net/<network> names it (`roster: {epoch, n, sha256}`), subnets/ holds the
// access devices' subnets only, names/<network>/<bucket> is absent and the agent completes the part from the roster.
// A stored plan is the compact plan (docs/plan-format.md, `zmesh-plan/2`) under plans/<tenant>/<blueprint>/:
// meta, envelope, res/<network>/<node> (compact resources: no peers, with the endpoint) and dev/<network>/<device>
// (devices without any wg-quick config). Every part's peers come from the one derivation (src/plan/derive.ts).
import type { SignedBlueprint } from '../blueprint/types.ts';
import { ipv6Fields, peerLookup, resourceFields } from '../plan/derive.ts';
import { NODE_PART_FORMAT, policyMembers, type NodeNetworkPart, type NodePlanPart } from '../plan/part.ts';
import { networkNames, type NetworkNames } from '../plan/names.ts';
import {
  COMPACT_PLAN_FORMAT,
  type AccessDevice,
  type AnyPlan,
  type CompactNetwork,
  type CompactPlan,
  type CompactResource,
  type NetworkPlan,
  type Peer,
  type Resource,
  type WorkloadPlan,
} from '../plan/types.ts';
import { cidrContains, formatIPv4, parseCidr, parseIPv4, subnetIndex } from '../../topology/cidr.ts';
import { SUBNET_BUCKET, type PartRef } from './keys.ts';
import { isDirectoryHead, type DirectoryHead } from './directory.ts';

/** suffix → JSON text. */
export type Entries = Map<string, string>;

export interface PartHead {
  generation: number;
  version: number;
  /** Key of the signed envelope this part belongs to (plans/<tenant>/<blueprint>/envelope). */
  envelope: string;
}

export class AssembleError extends Error {}

export interface Op {
  type: 'put' | 'delete';
  key: string;
  value?: string;
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}


/** The bucket of a subnet inside its network range ("x" when it is not a slot of the range: kept as text). */
export function subnetBucket(ipRange: string, subnet: string, subnetPrefix?: number): string {
  const slot = subnetSlot(ipRange, subnet, subnetPrefix);
  return slot === null ? 'x' : String(Math.floor(slot / SUBNET_BUCKET));
}

function subnetSlot(ipRange: string, subnet: string, subnetPrefix?: number): number | null {
  const range = parseCidr(ipRange);
  const sub = parseCidr(subnet);
  if (!range || !sub || !cidrContains(range, sub) || (subnetPrefix !== undefined && sub.prefix !== subnetPrefix)) return null;
  return subnetIndex(range, sub);
}

/** A network's subnets as bucket entries: 64-slot masks in hex, and anything that is not a slot as a text list. */
export function subnetEntries(network: string, ipRange: string, subnetPrefix: number, subnets: string[]): [string, string][] {
  // Two 32-bit halves per bucket: [high (slots 32-63), low (slots 0-31)].
  const masks = new Map<number, [number, number]>();
  const odd: string[] = [];
  for (const s of subnets) {
    const slot = subnetSlot(ipRange, s, subnetPrefix);
    if (slot === null) {
      odd.push(s);
      continue;
    }
    const b = Math.floor(slot / SUBNET_BUCKET);
    let m = masks.get(b);
    if (!m) masks.set(b, (m = [0, 0]));
    const bit = slot % SUBNET_BUCKET;
    if (bit < 32) m[1] = (m[1] | (1 << bit)) >>> 0;
    else m[0] = (m[0] | (1 << (bit - 32))) >>> 0;
  }
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const out: [string, string][] = [...masks].map(([b, m]) => [`subnets/${network}/${b}`, JSON.stringify(hex(m[0]) + hex(m[1]))]);
  if (odd.length) out.push([`subnets/${network}/x`, JSON.stringify([...odd].sort())]);
  return out;
}

/** The subnets of one bucket entry back as text. */
export function decodeSubnets(bucket: string, value: unknown, ipRange: string, subnetPrefix: number): string[] {
  if (Array.isArray(value)) return value.map(String);
  const range = parseCidr(ipRange);
  if (typeof value !== 'string' || !/^[0-9a-f]{16}$/.test(value) || !/^\d+$/.test(bucket) || !range || !Number.isInteger(subnetPrefix) || subnetPrefix < range.prefix || subnetPrefix > 32) throw new AssembleError(`bad subnet bucket ${bucket}`);
  const halves = [parseInt(value.slice(8), 16), parseInt(value.slice(0, 8), 16)];
  const size = 2 ** (32 - subnetPrefix);
  const first = range.base + Number(bucket) * SUBNET_BUCKET * size;
  const out: string[] = [];
  for (let bit = 0; bit < SUBNET_BUCKET; bit++) {
    if ((halves[bit >> 5] >>> (bit & 31)) & 1) out.push(`${formatIPv4((first + bit * size) >>> 0)}/${subnetPrefix}`);
  }
  return out;
}

/** A network's names as entries: workloads and devices in one key, the nodes in buckets of their subnet slot. */
export function nameEntries(network: string, ipRange: string, subnetPrefix: number, names: NetworkNames): [string, string][] {
  const range = parseCidr(ipRange);
  const buckets = new Map<string, Record<string, NetworkNames['nodes'][string]>>();
  for (const [node, addrs] of Object.entries(names.nodes)) {
    const ip = parseIPv4(addrs.ip);
    const b = range && ip !== null && Number.isInteger(subnetPrefix) && subnetPrefix >= range.prefix && subnetPrefix <= 32 && ((ip - range.base) >>> 0) < 2 ** (32 - range.prefix) ? String(Math.floor(Math.floor(((ip - range.base) >>> 0) / 2 ** (32 - subnetPrefix)) / SUBNET_BUCKET)) : 'x';
    let m = buckets.get(b);
    if (!m) buckets.set(b, (m = {}));
    m[node] = addrs;
  }
  return [[`names/${network}`, JSON.stringify({ workloads: names.workloads, devices: names.devices })], ...[...buckets].map(([b, m]): [string, string] => [`names/${network}/${b}`, JSON.stringify(m)])];
}

/**
 * A part's net/<network> entry: the network header (ipv6Range and subnet6Prefix on a dual-stack network), this
 * node's resource without its peers, and, when present, the policy members, the direct-peer directory and the
 * roster the part names.
 */
function netEntry(
  i: number,
  n: Pick<NetworkPlan, 'name' | 'id' | 'ipRange' | 'subnetPrefix' | 'ipv6Range' | 'subnet6Prefix' | 'egress'>,
  resource: Omit<Resource, 'peers'>,
  named: { members?: unknown; direct?: DirectoryHead; roster?: DirectoryHead },
): string {
  return JSON.stringify({
    i,
    name: n.name,
    id: n.id,
    ipRange: n.ipRange,
    subnetPrefix: n.subnetPrefix,
    ...ipv6Fields(n),
    egress: n.egress,
    resource: resourceFields(resource),
    ...(named.members ? { members: named.members } : {}),
    ...(named.direct ? { direct: named.direct } : {}),
    ...(named.roster ? { roster: named.roster } : {}),
  });
}

/** The entries of one node part (the head is built apart: it carries the generation). */
export function partEntries(part: NodePlanPart): Entries {
  const out: Entries = new Map();
  part.networks.forEach((n, i) => {
    out.set(`net/${n.name}`, netEntry(i, n, n.resource, { members: n.members }));
    for (const p of n.resource.peers) out.set(`peer/${n.name}/${p.node}`, JSON.stringify(p));
    for (const [k, v] of subnetEntries(n.name, n.ipRange, n.subnetPrefix, n.subnets)) out.set(k, v);
    if (n.names) for (const [k, v] of nameEntries(n.name, n.ipRange, n.subnetPrefix, n.names)) out.set(k, v);
  });
  if (part.workloads.length) out.set('workloads', JSON.stringify(part.workloads));
  return out;
}

export function headValue(h: PartHead): string {
  return JSON.stringify({ generation: h.generation, version: h.version, envelope: h.envelope });
}

export function parseHead(text: string | undefined): PartHead | null {
  if (text === undefined) return null;
  try {
    const h = JSON.parse(text) as PartHead;
    if (!Number.isInteger(h.generation) || !Number.isInteger(h.version) || typeof h.envelope !== 'string') return null;
    return h;
  } catch {
    return null;
  }
}

/** A node part plus its head, as entries (what the controller writes for one node and blueprint). */
export function partWithHead(part: NodePlanPart, envelopeKey: string): Entries {
  const e = partEntries(part);
  e.set('gen', headValue({ generation: part.generation, version: part.version, envelope: envelopeKey }));
  return e;
}

/**
 * The entries of every node part of a plan at once (what partWithHead(nodePart(plan, node), …) gives for each
 * node), sharing the work: a network's subnet buckets and mesh index are built once and a peer entry shared by
 * many nodes is serialized once. `only` limits the nodes. Peers come from the one derivation (peerLookup).
 */
export function planPartEntries(
  plan: AnyPlan,
  envelopeKey: string,
  only?: Set<string>,
  directory?: ReadonlyMap<string, DirectoryHead>,
  rosters?: ReadonlyMap<string, DirectoryHead>,
): Map<string, Entries> {
  const out = new Map<string, Entries>();
  const peersOf = peerLookup(plan);
  const peerJson = new WeakMap<Peer, string>();
  const counter = new Map<string, number>();
  const entriesOf = (node: string) => {
    let e = out.get(node);
    if (!e) out.set(node, (e = new Map()));
    return e;
  };
  for (const n of plan.networks) {
    // With a roster (etcd), the members' subnets, names and policy addresses are there, once per network: the
    // part keeps the devices' and the workloads' and names the roster.
    const roster = rosters?.get(n.id);
    const bucketJson = subnetEntries(n.name, n.ipRange, n.subnetPrefix, [...(roster ? [] : n.resources.map((r) => r.subnet)), ...n.access.map((d) => d.subnet)]);
    const names = networkNames(plan, n);
    const namesJson = nameEntries(n.name, n.ipRange, n.subnetPrefix, roster ? { ...names, nodes: {} } : names);
    const all = n.policy ? policyMembers(plan, n) : undefined;
    const members = all && roster ? { ...all, nodes: {}, ...(all.nodes6 ? { nodes6: {} } : {}) } : all;
    for (const r of n.resources as Omit<Resource, 'peers'>[]) {
      if (only && !only.has(r.node)) continue;
      const e = entriesOf(r.node);
      const i = counter.get(r.node) ?? 0;
      counter.set(r.node, i + 1);
      // With a directory (etcd), a hidden node's part names it instead of listing every direct peer.
      const dir = r.hidden && r.accessNode ? directory?.get(n.id) : undefined;
      e.set(`net/${n.name}`, netEntry(i, n, r, { members, direct: dir, roster }));
      for (const p of peersOf(n.name, r.node, !dir) ?? []) {
        let j = peerJson.get(p);
        if (j === undefined) peerJson.set(p, (j = JSON.stringify(p)));
        e.set(`peer/${n.name}/${p.node}`, j);
      }
      for (const [k, v] of bucketJson) e.set(k, v);
      for (const [k, v] of namesJson) e.set(k, v);
    }
  }
  const wl = new Map<string, WorkloadPlan[]>();
  for (const w of plan.workloads) {
    if (!out.has(w.node)) continue;
    let l = wl.get(w.node);
    if (!l) wl.set(w.node, (l = []));
    l.push(w);
  }
  for (const [node, e] of out) {
    const w = wl.get(node);
    if (w?.length) e.set('workloads', JSON.stringify(w));
    e.set('gen', headValue({ generation: plan.generation, version: plan.version, envelope: envelopeKey }));
  }
  return out;
}

/** Rebuilds a node part from its entries; null while there is no head (not written yet, or removed). */
export function assemblePart(
  ref: PartRef,
  entries: Entries,
): { part: NodePlanPart; head: PartHead; directories: Map<string, DirectoryHead>; rosters: Map<string, DirectoryHead> } | null {
  const head = parseHead(entries.get('gen'));
  if (!head) return null;
  const nets: (NodeNetworkPart & { i: number })[] = [];
  // network name → the directory its direct peers are in (etcd): the part's peers lack them until they are added.
  const directories = new Map<string, DirectoryHead>();
  // network name → the roster its members are in (etcd): the part lacks their subnets, names and policy addresses.
  const rosters = new Map<string, DirectoryHead>();
  const peers = new Map<string, Peer[]>();
  const subnets = new Map<string, { bucket: string; value: unknown }[]>();
  let workloads: WorkloadPlan[] = [];
  const names = new Map<string, NetworkNames>();
  // network → node → its name's addresses, over every names/<network>/<bucket> entry (a Map per network: merging
  // the buckets into one object per entry copied it once per bucket, O(buckets²) per part: 327 s of a 3,000-node
  // control bench went there).
  const nodeNames = new Map<string, Map<string, NetworkNames['nodes'][string]>>();
  for (const [suffix, text] of entries) {
    const seg = suffix.split('/');
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new AssembleError(`entry ${suffix} is not JSON`, { cause: e });
    }
    if (seg[0] === 'net' && seg.length === 2) {
      const { direct, roster, ...n } = v as NodeNetworkPart & { i: number; resource: Omit<Resource, 'peers'>; direct?: unknown; roster?: unknown };
      if (direct !== undefined) {
        if (!isDirectoryHead(direct)) throw new AssembleError(`entry ${suffix}: bad direct-peer directory`);
        directories.set(seg[1], direct);
      }
      if (roster !== undefined) {
        if (!isDirectoryHead(roster)) throw new AssembleError(`entry ${suffix}: bad roster`);
        rosters.set(seg[1], roster);
      }
      nets.push({ ...n, resource: { ...n.resource, peers: [] }, subnets: [] });
    } else if (seg[0] === 'peer' && seg.length === 3) {
      let list = peers.get(seg[1]);
      if (!list) peers.set(seg[1], (list = []));
      list.push(v as Peer);
    } else if (seg[0] === 'subnets' && seg.length === 3) {
      let list = subnets.get(seg[1]);
      if (!list) subnets.set(seg[1], (list = []));
      list.push({ bucket: seg[2], value: v });
    } else if (suffix === 'workloads') workloads = v as WorkloadPlan[];
    else if (seg[0] === 'names' && seg.length === 2) names.set(seg[1], v as NetworkNames);
    else if (seg[0] === 'names' && seg.length === 3) {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new AssembleError(`entry ${suffix}: not an object of names`);
      let m = nodeNames.get(seg[1]);
      if (!m) nodeNames.set(seg[1], (m = new Map()));
      for (const [node, addrs] of Object.entries(v as Record<string, NetworkNames['nodes'][string]>)) m.set(node, addrs);
    }
  }
  for (const [net, base] of names) {
    const nodes = nodeNames.get(net) ?? new Map<string, NetworkNames['nodes'][string]>();
    names.set(net, { workloads: base.workloads ?? {}, devices: base.devices ?? {}, nodes: Object.fromEntries([...nodes.keys()].sort(byText).map((k) => [k, nodes.get(k)!])) });
  }
  nets.sort((a, b) => a.i - b.i);
  const networks: NodeNetworkPart[] = nets.map(({ i: _i, ...n }) => ({
    ...n,
    resource: { ...n.resource, peers: (peers.get(n.name) ?? []).sort((a, b) => byText(a.node, b.node)) },
    subnets: (subnets.get(n.name) ?? []).flatMap((b) => decodeSubnets(b.bucket, b.value, n.ipRange, n.subnetPrefix)).sort(),
    ...(names.has(n.name) ? { names: names.get(n.name) } : {}),
  }));
  return {
    head,
    directories,
    rosters,
    part: {
      format: NODE_PART_FORMAT,
      tenant: ref.tenant,
      blueprint: ref.blueprint,
      version: head.version,
      generation: head.generation,
      node: ref.node,
      networks,
      workloads,
    },
  };
}

/** A resource as stored: the compact resource (no peers; the endpoint other nodes dial, null when hidden). */
function storedResource(r: CompactResource): CompactResource {
  const { node, subnet, gateway, wgAddress, subnet6, gateway6, wgAddress6, listenPort, endpoint, publicKey, sealedPrivateKey, sealedTo, hidden, accessNode } = r;
  const six = subnet6 !== undefined ? { subnet6, gateway6, wgAddress6 } : {};
  return { node, subnet, gateway, wgAddress, ...six, listenPort, endpoint, publicKey, sealedPrivateKey, sealedTo, hidden, accessNode };
}

/** The entries of a stored (compact) plan: no peers (they are derived) and never a wg-quick config. */
export function planEntries(plan: CompactPlan, envelope: SignedBlueprint): Entries {
  const out: Entries = new Map();
  out.set(
    'meta',
    JSON.stringify({
      generation: plan.generation,
      version: plan.version,
      hiddenKeepalive: plan.hiddenKeepalive,
      networks: plan.networks.map((n) => ({ name: n.name, id: n.id, ipRange: n.ipRange, subnetPrefix: n.subnetPrefix, ...ipv6Fields(n), egress: n.egress, ...(n.policy ? { policy: true } : {}) })),
      workloads: plan.workloads,
    }),
  );
  out.set('envelope', JSON.stringify(envelope));
  for (const n of plan.networks) {
    for (const r of n.resources) out.set(`res/${n.name}/${r.node}`, JSON.stringify(storedResource(r)));
    for (const d of n.access) {
      const dev: AccessDevice = {
        name: d.name,
        subnet: d.subnet,
        address: d.address,
        ...(d.subnet6 !== undefined ? { subnet6: d.subnet6, address6: d.address6 } : {}),
        via: d.via,
        publicKey: d.publicKey,
        generatedKey: d.generatedKey,
        ...(d.egress ? { egress: true as const } : {}),
      };
      out.set(`dev/${n.name}/${d.name}`, JSON.stringify(dev));
    }
  }
  return out;
}

/**
 * A stored plan back as a compact plan and the envelope it was planned from. A resource stored before the compact
 * form has no endpoint (null): enough to re-plan stably, and the next plan stores it again.
 */
export function assemblePlan(tenant: string, blueprint: string, entries: Entries): { plan: CompactPlan; envelope: SignedBlueprint } | null {
  const metaText = entries.get('meta');
  const envText = entries.get('envelope');
  if (metaText === undefined || envText === undefined) return null;
  const meta = JSON.parse(metaText) as { generation: number; version: number; hiddenKeepalive?: number; networks: Omit<CompactNetwork, 'resources' | 'access'>[]; workloads: WorkloadPlan[] };
  const res = new Map<string, CompactResource[]>();
  const dev = new Map<string, AccessDevice[]>();
  for (const [suffix, text] of entries) {
    const seg = suffix.split('/');
    if (seg.length !== 3) continue;
    if (seg[0] === 'res') {
      let l = res.get(seg[1]);
      if (!l) res.set(seg[1], (l = []));
      const r = JSON.parse(text) as CompactResource;
      l.push({ ...r, endpoint: r.endpoint ?? null });
    } else if (seg[0] === 'dev') {
      let l = dev.get(seg[1]);
      if (!l) dev.set(seg[1], (l = []));
      l.push(JSON.parse(text) as AccessDevice);
    }
  }
  return {
    envelope: JSON.parse(envText) as SignedBlueprint,
    plan: {
      format: COMPACT_PLAN_FORMAT,
      tenant,
      blueprint,
      version: meta.version,
      generation: meta.generation,
      hiddenKeepalive: meta.hiddenKeepalive ?? 25,
      networks: meta.networks.map((n) => ({
        ...n,
        resources: (res.get(n.name) ?? []).sort((a, b) => byText(a.node, b.node)),
        access: (dev.get(n.name) ?? []).sort((a, b) => byText(a.name, b.name)),
      })),
      workloads: meta.workloads,
    },
  };
}

/** JSON text of an entry with its generation field blanked: the head compares equal across generations. */
function withoutGeneration(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    return JSON.stringify({ ...v, generation: 0 });
  } catch {
    return text;
  }
}

/**
 * The smallest set of operations that turns `current` into `next` under `prefix`, where `head` is the entry
 * that announces a change (the part's `gen`, the plan's `meta`): nothing at all when only the head's generation
 * differs; otherwise the changed entries, then the head last; on removal the head is deleted first.
 */
export function diffEntries(prefix: string, current: Entries | undefined, next: Entries | undefined, head: string): Op[] {
  const cur = current ?? new Map<string, string>();
  if (!next || next.size === 0) {
    const ops: Op[] = [];
    if (cur.has(head)) ops.push({ type: 'delete', key: prefix + head });
    for (const k of [...cur.keys()].sort()) if (k !== head) ops.push({ type: 'delete', key: prefix + k });
    return ops;
  }
  const ops: Op[] = [];
  for (const k of [...next.keys()].sort()) {
    if (k === head) continue;
    const v = next.get(k)!;
    if (cur.get(k) !== v) ops.push({ type: 'put', key: prefix + k, value: v });
  }
  for (const k of [...cur.keys()].sort()) if (k !== head && !next.has(k)) ops.push({ type: 'delete', key: prefix + k });
  const nextHead = next.get(head);
  if (nextHead !== undefined && (ops.length > 0 || withoutGeneration(cur.get(head)) !== withoutGeneration(nextHead))) {
    ops.push({ type: 'put', key: prefix + head, value: nextHead });
  }
  return ops;
}

export function opBytes(op: Op): number {
  return op.key.length + (op.value?.length ?? 0);
}

/**
 * Packs groups of operations (one group per node) into transactions of at most maxOps operations and about
 * maxBytes: a group is never split when it fits in one transaction (so an agent sees its whole change at one
 * revision); a larger group is split in order (its head still comes last, or first when deleted).
 */
export function packTxns(groups: Op[][], maxOps: number, maxBytes: number): Op[][] {
  const out: Op[][] = [];
  let cur: Op[] = [];
  let bytes = 0;
  const flush = () => {
    if (cur.length) out.push(cur);
    cur = [];
    bytes = 0;
  };
  for (const g of groups) {
    if (!g.length) continue;
    const gb = g.reduce((s, o) => s + opBytes(o), 0);
    if (g.length <= maxOps && gb <= maxBytes) {
      if (cur.length + g.length > maxOps || bytes + gb > maxBytes) flush();
      cur.push(...g);
      bytes += gb;
      continue;
    }
    flush();
    for (const op of g) {
      const b = opBytes(op);
      if (cur.length + 1 > maxOps || (cur.length && bytes + b > maxBytes)) flush();
      cur.push(op);
      bytes += b;
    }
    flush();
  }
  flush();
  return out;
}

export type PartDecision = 'new' | 'update' | 'current' | 'stale';

/**
 * What an agent does with a part it received, given what it has accepted for that blueprint: `new` or `update`
 * go to the pipeline; `current` (same version and generation) and `stale` (an older version, or an older
 * generation of the same version: a late or replayed update) are ignored.
 */
export function partDecision(stored: { version: number; generation: number } | undefined, part: { version: number; generation: number }): PartDecision {
  if (!stored) return 'new';
  if (part.version > stored.version) return 'update';
  if (part.version < stored.version) return 'stale';
  if (part.generation > stored.generation) return 'update';
  return part.generation === stored.generation ? 'current' : 'stale';
}
