// Pure diffs between the desired layout and the state read back: they return the smallest set of changes,
// adds before deletes, and nothing at all when the state already matches.
import { ip, renderNftTable, type NftTableSpec, type PeerOp, type WgChange } from './build.ts';
import { canonicalCidr } from './ip.ts';
import type { DesiredLink, DesiredPeer, DesiredRoute } from './layout.ts';
import type { IpLink, IpRoute, NftTable, WgDevice, WgPeer } from './parse.ts';

/** How long after a handshake a peer's endpoint is considered roamed and is left alone (WireGuard's own 180 s). */
export const ROAM_WINDOW_SEC = 180;

function canonList(list: string[]): string[] {
  // Most peers have one allowed IP: no set, no sort, no copies (a 5,000-peer no-op diffs every one).
  if (list.length === 1) return [canonicalCidr(list[0])];
  return [...new Set(list.map((c) => canonicalCidr(c)))].sort();
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Why a peer's endpoint is set, or left as it is (endpointDecision). */
export type EndpointReason =
  /** WireGuard already uses the planned endpoint. */
  | 'current'
  /** The plan names none: a learnt endpoint is never cleared. */
  | 'not-planned'
  /** A direct-path probe moves it (DesiredPeer.forceEndpoint). */
  | 'forced'
  /** The plan itself changed the endpoint since the last apply: the planned one wins at once. */
  | 'replanned'
  /** The plan names what it named before, and the peer had a handshake within the roam window: it roamed, keep it. */
  | 'roamed'
  /** No handshake within the roam window: the planned endpoint is set. */
  | 'no-session';

export interface EndpointInput {
  /** The endpoint the plan names now (canonical), or null. */
  planned: string | null;
  /** The endpoint WireGuard uses (what `wg show endpoints` reports), or null. */
  actual: string | null;
  /** The peer's latest handshake, seconds since the epoch (0: none). */
  latestHandshake: number;
  /**
   * The endpoint the plan named at the previous apply that reached this peer (the driver remembers it), or
   * undefined when not known (a peer never configured by this driver's state directory): then the roam window
   * alone decides.
   */
  plannedBefore: string | null | undefined;
  force?: boolean;
  nowSec: number;
  roamWindowSec?: number;
}

/**
 * Endpoint authority (issue #21): a roamed endpoint — WireGuard's differs from the plan's — is kept only while
 * the plan still names the endpoint it named when the roaming was seen, and only while the peer had a handshake
 * within the roam window (180 s); when the plan itself changes a peer's endpoint, the planned one wins at once.
 * Pure.
 */
export function endpointDecision(i: EndpointInput): { set: boolean; reason: EndpointReason } {
  if (i.planned === null) return { set: false, reason: 'not-planned' };
  if (i.planned === i.actual) return { set: false, reason: 'current' };
  if (i.force) return { set: true, reason: 'forced' };
  if (i.plannedBefore !== undefined && i.plannedBefore !== i.planned) return { set: true, reason: 'replanned' };
  const recent = i.latestHandshake > 0 && i.nowSec - i.latestHandshake < (i.roamWindowSec ?? ROAM_WINDOW_SEC);
  return recent ? { set: false, reason: 'roamed' } : { set: true, reason: 'no-session' };
}

/** What the driver remembers after an apply that configured these peers: each one's planned endpoint. */
export function plannedEndpoints(desired: DesiredPeer[]): Map<string, string | null> {
  return new Map(desired.map((p) => [p.publicKey, p.endpoint]));
}

/**
 * Per-peer changes: add missing peers, update the fields that differ, remove peers not desired.
 * The endpoint follows endpointDecision: `plannedBefore` holds the endpoints the plan named at the previous
 * apply (by public key; a peer missing from it is judged by the roam window alone).
 */
export function diffPeers(
  desired: DesiredPeer[],
  actual: WgPeer[],
  nowSec: number,
  roamWindowSec = ROAM_WINDOW_SEC,
  plannedBefore: ReadonlyMap<string, string | null> = new Map(),
): PeerOp[] {
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
    const ep = endpointDecision({
      planned: d.endpoint,
      actual: a.endpoint,
      latestHandshake: a.latestHandshake,
      plannedBefore: plannedBefore.get(d.publicKey),
      force: d.forceEndpoint === true,
      nowSec,
      roamWindowSec,
    });
    if (ep.set) {
      op.endpoint = d.endpoint!;
      changed = true;
    }
    const sameIps = d.allowedIps.length === 1 && a.allowedIps.length === 1 ? d.allowedIps[0] === canonicalCidr(a.allowedIps[0]) : sameList(d.allowedIps, canonList(a.allowedIps));
    if (!sameIps) {
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
  plannedBefore: ReadonlyMap<string, string | null> = new Map(),
): WgDiff {
  const change: WgChange = { peers: diffPeers(desired.peers, actual?.peers ?? [], nowSec, roamWindowSec, plannedBefore) };
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
