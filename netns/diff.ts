// Pure diffs between the desired layout and the state read back: they return the smallest set of changes,
// adds before deletes, and nothing at all when the state already matches.
import { ip, renderNftTable, type NftTableSpec, type PeerOp, type WgChange } from './build.ts';
import { canonicalCidr } from './ip.ts';
import type { DesiredLink, DesiredPeer, DesiredRoute } from './layout.ts';
import type { IpLink, IpRoute, NftTable, WgDevice, WgPeer } from './parse.ts';

/** How long after a handshake a peer's endpoint is considered roamed and is left alone (WireGuard's own 180 s). */
export const ROAM_WINDOW_SEC = 180;

function canonList(list: string[]): string[] {
  return [...new Set(list.map((c) => canonicalCidr(c)))].sort();
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Per-peer changes: add missing peers, update the fields that differ, remove peers not desired.
 * An endpoint is not overwritten while the peer had a handshake within `roamWindowSec` (it roamed), and a
 * desired null endpoint never clears a learnt one.
 */
export function diffPeers(desired: DesiredPeer[], actual: WgPeer[], nowSec: number, roamWindowSec = ROAM_WINDOW_SEC): PeerOp[] {
  const have = new Map(actual.map((p) => [p.publicKey, p]));
  const want = new Set(desired.map((p) => p.publicKey));
  const ops: PeerOp[] = [];
  for (const d of desired) {
    const a = have.get(d.publicKey);
    if (!a) {
      const op: PeerOp = { op: 'add', publicKey: d.publicKey };
      if (d.endpoint !== null) op.endpoint = d.endpoint;
      if (d.persistentKeepalive !== null) op.persistentKeepalive = d.persistentKeepalive;
      if (d.allowedIps.length > 0) op.allowedIps = d.allowedIps;
      ops.push(op);
      continue;
    }
    const op: PeerOp = { op: 'update', publicKey: d.publicKey };
    let changed = false;
    if (d.endpoint !== null && d.endpoint !== a.endpoint) {
      const roamed = !d.forceEndpoint && a.latestHandshake > 0 && nowSec - a.latestHandshake < roamWindowSec;
      if (!roamed) {
        op.endpoint = d.endpoint;
        changed = true;
      }
    }
    if (!sameList(d.allowedIps, canonList(a.allowedIps))) {
      op.allowedIps = d.allowedIps;
      changed = true;
    }
    if (d.persistentKeepalive !== a.persistentKeepalive) {
      op.persistentKeepalive = d.persistentKeepalive;
      changed = true;
    }
    if (changed) ops.push(op);
  }
  for (const a of actual) if (!want.has(a.publicKey)) ops.push({ op: 'remove', publicKey: a.publicKey });
  return ops;
}

export interface WgDiff {
  change: WgChange;
  /** The private key must be set (the device has another public key, or none). */
  needsPrivateKey: boolean;
}

/** The change that brings a device to the desired key, port and peers. `actual` null means a fresh device. */
export function diffWireguard(
  desired: { publicKey: string; listenPort: number; peers: DesiredPeer[] },
  actual: WgDevice | null,
  nowSec: number,
  roamWindowSec = ROAM_WINDOW_SEC,
): WgDiff {
  const change: WgChange = { peers: diffPeers(desired.peers, actual?.peers ?? [], nowSec, roamWindowSec) };
  if (!actual || actual.listenPort !== desired.listenPort) change.listenPort = desired.listenPort;
  return { change, needsPrivateKey: !actual || actual.publicKey !== desired.publicKey };
}

/** `ip -batch` lines fixing an existing link's alias, MAC, MTU, state and addresses (adds before deletes). */
export function diffLink(desired: Pick<DesiredLink, 'name' | 'mtu' | 'alias' | 'addrs' | 'mac'> & { mtu: number | null }, actual: IpLink): { set: string[]; addrAdd: string[]; addrDel: string[] } {
  const s: { alias?: string; mtu?: number; address?: string; up?: boolean } = {};
  if (actual.alias !== desired.alias) s.alias = desired.alias;
  if (desired.mac !== undefined && actual.mac !== desired.mac) s.address = desired.mac;
  if (desired.mtu !== null && actual.mtu !== desired.mtu) s.mtu = desired.mtu;
  if (!actual.up) s.up = true;
  const set = Object.keys(s).length > 0 ? [ip.linkSet(desired.name, s)] : [];
  const have = actual.addrs.filter((a) => a.family === 'inet' || a.scope !== 'link');
  const haveSet = new Set(have.map((a) => a.cidr));
  const addrAdd = desired.addrs.filter((a) => !haveSet.has(a)).map((a) => ip.addrAdd(a, desired.name));
  const addrDel = have.filter((a) => !desired.addrs.includes(a.cidr)).map((a) => ip.addrDel(a.cidr, desired.name));
  return { set, addrAdd, addrDel };
}

/** Route changes: replace missing or different desired routes; delete static routes nobody wants. */
export function diffRoutes(desired: DesiredRoute[], actual: IpRoute[]): { replace: string[]; del: string[] } {
  const replace: string[] = [];
  for (const d of desired) {
    const ok = actual.some((a) => a.dst === d.dst && a.dev === d.dev && (a.gateway ?? null) === d.gateway && a.type === 'unicast');
    if (!ok) replace.push(ip.routeReplace(d));
  }
  const wanted = new Set(desired.map((d) => d.dst));
  const del = actual.filter((a) => a.protocol === 'static' && !wanted.has(a.dst)).map((a) => ip.routeDel(a));
  return { replace, del };
}

/** Whether a table read back is exactly the desired one (same chains, the same fingerprinted rules, the same set elements). */
export function nftIsCurrent(spec: NftTableSpec, actual: NftTable | undefined): boolean {
  if (!actual) return false;
  const rendered = renderNftTable(spec);
  const chains = spec.chains.map((c) => `${c.name}/${c.type}/${c.hook}`).sort();
  const have = actual.chains.map((c) => `${c.name}/${c.type}/${c.hook}`).sort();
  if (!sameList(chains, have)) return false;
  const fp = actual.rules.map((r) => `${r.chain}\t${r.comment ?? ''}`).sort();
  if (!sameList(fp, rendered.fingerprint)) return false;
  // A set's elements are not in any rule comment: a flushed or edited set is drift of its own.
  for (const s of spec.sets ?? []) {
    const have = actual.sets?.find((x) => x.name === s.name);
    if (!have || !sameList([...have.elements].sort(), [...s.elements].sort())) return false;
  }
  return true;
}
