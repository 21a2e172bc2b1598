// The direct-peer directory of a network (issue #17): on etcd, a hidden node's part no longer lists every other
// hidden node of the network as a direct peer (9,000 hidden nodes were 81 M part entries, O(hidden²), and the
// controller ran out of memory planning them). The controller writes each hidden member's direct-peer entry ONCE
// per network, under directory/<networkId>/<epoch>/<node>, and each hidden node's part carries only what that
// directory must hold: `direct: {epoch, n, sha256}` in its signed net/<network> entry. The agent reads the
// directory's entries (a watch per network it is hidden in, allowed by its role), and takes them as its direct
// peers only when their count and SHA-256 are exactly what its signed part says — so the entries need no signature
// of their own, and a writer of etcd who adds, alters or removes one only holds this node's direct peers back (the
// relay keeps working). A new epoch (new keys) whenever a member leaves the directory: etcd checks a watch's
// permission only when it is created, so a node that left keeps the watch it opened on the old keys only.
// Pure.
import { createHash } from 'node:crypto';
import type { Peer } from '../plan/types.ts';
import { DNS_LABEL } from '../plan/names.ts';
import type { Op } from './entries.ts';
import type { EpochKind, Keys } from './keys.ts';

/** What a hidden node's part says its network's directory holds. */
export interface DirectoryHead {
  epoch: string;
  /** How many entries (hidden members, this node included). */
  n: number;
  /** SHA-256 (hex) of the entries' values, sorted, each prefixed with its byte length and "\n" (directoryHash). */
  sha256: string;
}

/** One network's directory: its epoch and node → the member's direct-peer entry as stored (JSON). */
export interface Directory {
  epoch: string;
  entries: Map<string, string>;
}

export const EPOCH_RE = /^[0-9a-f]{16}$/;
/** Bounds on what an agent keeps of one directory (a writer of etcd must not be able to grow its memory). */
export const MAX_DIRECTORY_ENTRIES = 65_536;
export const MAX_DIRECTORY_ENTRY_BYTES = 1024;

/**
 * The hash the part carries: over the stored values (the same text the agent reads back), sorted, each prefixed
 * with its length in bytes and a newline (no two lists of values give the same input).
 */
export function directoryHash(values: Iterable<string>): string {
  const h = createHash('sha256');
  for (const v of [...values].sort()) h.update(`${Buffer.byteLength(v)}\n${v}`);
  return h.digest('hex');
}

export function directoryHead(d: Directory): DirectoryHead {
  return { epoch: d.epoch, n: d.entries.size, sha256: directoryHash(d.entries.values()) };
}

/**
 * The directories after this round: for each network with hidden members, their entries under the stored epoch,
 * or under a new one when a stored member is gone (or none was stored). Networks without hidden members have none.
 */
export function nextDirectories(want: ReadonlyMap<string, Map<string, string>>, stored: ReadonlyMap<string, Directory[]>, kind: EpochKind = 'directory'): Map<string, Directory> {
  const out = new Map<string, Directory>();
  for (const [net, entries] of want) {
    if (!entries.size) continue;
    const old = currentDirectory(stored.get(net));
    const keep = old && EPOCH_RE.test(old.epoch) && [...old.entries.keys()].every((node) => entries.has(node));
    out.set(net, { epoch: keep ? old.epoch : nextEpoch(net, old?.epoch ?? '', entries.keys(), kind), entries });
  }
  return out;
}

/** Of the epochs stored for a network (several: a controller stopped between writing one and deleting the
 *  other), the one that counts: the largest. */
export function currentDirectory(stored: readonly Directory[] | undefined): Directory | undefined {
  return [...(stored ?? [])].sort((a, b) => b.entries.size - a.entries.size)[0];
}

/**
 * A new epoch, chained from the old one and the members (no randomness: the plans' random stream is left alone,
 * and two controllers agree). Being guessable does not matter: etcd checks a watch's permission when it is
 * created, and only members are granted the new epoch's keys.
 */
export function nextEpoch(net: string, old: string, members: Iterable<string>, kind: EpochKind = 'directory'): string {
  return createHash('sha256').update(`zmesh-${kind}-epoch\n${net}\n${old}\n${[...members].sort().join(',')}`).digest('hex').slice(0, 16);
}

export type { EpochKind };

/**
 * The etcd operations from the stored directories to the next: puts (written before the parts that name them)
 * and deletes (after the parts, so that a part never names entries that are gone).
 */
export function directoryOps(keys: Keys, stored: ReadonlyMap<string, Directory[]>, next: ReadonlyMap<string, Directory>, kind: EpochKind = 'directory'): { puts: Op[]; deletes: Op[] } {
  const puts: Op[] = [];
  const deletes: Op[] = [];
  for (const [net, d] of next) {
    const same = stored.get(net)?.find((o) => o.epoch === d.epoch)?.entries;
    for (const [node, v] of d.entries) if (same?.get(node) !== v) puts.push({ type: 'put', key: keys.epochEntry(kind, net, d.epoch, node), value: v });
  }
  for (const [net, olds] of stored) {
    const d = next.get(net);
    for (const old of olds) {
      for (const node of old.entries.keys()) {
        if (d?.epoch === old.epoch && d.entries.has(node)) continue;
        deletes.push({ type: 'delete', key: keys.epochEntry(kind, net, old.epoch, node) });
      }
    }
  }
  return { puts, deletes };
}

/** Stored directory keys back into directories (keys of another shape are ignored; several epochs: all kept). */
export function readDirectories(keys: Keys, kvs: Iterable<readonly [string, string]>, kind: EpochKind = 'directory'): Map<string, Directory[]> {
  const out = new Map<string, Map<string, Directory>>();
  for (const [key, v] of kvs) {
    const p = keys.parseEpochKey(kind, key);
    // Only node ids are entries: not a roster's hint (`_from`: its epoch is kept, without entries, so that a hint
    // left alone by a stopped controller is deleted with its epoch), nor a key a writer of etcd made up.
    const hint = kind === 'roster' && p?.node === '_from';
    if (!p || (!hint && !DNS_LABEL.test(p.node))) continue;
    let byEpoch = out.get(p.network);
    if (!byEpoch) out.set(p.network, (byEpoch = new Map()));
    let d = byEpoch.get(p.epoch);
    if (!d) byEpoch.set(p.epoch, (d = { epoch: p.epoch, entries: new Map() }));
    if (!hint) d.entries.set(p.node, v);
  }
  return new Map([...out].map(([net, m]) => [net, [...m.values()]]));
}

export type DirectoryCheck = { peers: Peer[] } | { waiting: string };

/**
 * A hidden node's direct peers from its network's directory as read, when (and only when) the entries are exactly
 * what its signed part says: the same count and hash. The node's own entry is left out; sorted by node.
 */
export function directPeersFrom(head: DirectoryHead, node: string, entries: ReadonlyMap<string, string> | undefined): DirectoryCheck {
  if (!entries) return { waiting: `directory ${head.epoch} not read yet` };
  if (entries.size !== head.n) return { waiting: `directory ${head.epoch} holds ${entries.size} entries, the part says ${head.n}` };
  if (directoryHash(entries.values()) !== head.sha256) return { waiting: `directory ${head.epoch} does not match the part's hash` };
  const peers: Peer[] = [];
  for (const [id, v] of entries) {
    if (id === node) continue;
    let p: Peer;
    try {
      p = JSON.parse(v) as Peer;
    } catch {
      return { waiting: `directory entry ${id} is not JSON` };
    }
    if (!p || typeof p !== 'object' || p.node !== id) return { waiting: `directory entry ${id} is not ${id}'s` };
    peers.push(p);
  }
  return { peers: peers.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)) };
}

export function isDirectoryHead(v: unknown): v is DirectoryHead {
  const h = v as DirectoryHead;
  return !!h && typeof h === 'object' && typeof h.epoch === 'string' && EPOCH_RE.test(h.epoch) && Number.isInteger(h.n) && h.n >= 1 && h.n <= MAX_DIRECTORY_ENTRIES && typeof h.sha256 === 'string' && /^[0-9a-f]{64}$/.test(h.sha256);
}
