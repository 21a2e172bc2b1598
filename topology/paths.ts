// Direct paths between hidden nodes: a pure state machine per (network, other hidden node), with an injected
// clock. Inputs: the other node's candidate endpoints, the direct peer's WireGuard counters, the time. Output:
// how the direct peer is configured (endpoint, keepalive, allowed-ips).
//
// The relay (the access node's peer, "range minus own subnet") is never touched. A proven direct path carries
// the other node's subnet as its two halves: longest-prefix match then sends (and accepts) that subnet on the
// direct peer, and taking the halves off hands it back to the relay in the same step. So at every moment every
// subnet resolves to exactly one peer, and a move is one `wg set` on one peer.
//
//   relay ──(candidates, backoff over)──▶ probing(candidate i) ──(no proof in PROBE_WINDOW)──▶ probing(i+1) …
//     ▲  ◀────────────(all candidates failed: backoff, doubling)───────────┘          │
//     │                                                                                 │ proof
//     └──────────(no packet from the peer for STALE: back to relay, backoff)──── direct ◀┘
//
// Proof of a direct path: a WireGuard handshake (both ways) completed during this probe, and packets
// from the peer (its rx counter grows) at two readings at least PROOF_GAP apart.
// A single growth can be a handshake answered by a peer that is not probing (it would drop our data); two
// spaced growths mean the peer itself sends keepalives to us, i.e. it probes or uses the direct path too.
// A node that is not probing and sees its direct peer's rx grow probes back at once, at the endpoint WireGuard
// learnt from those packets.
import { cidrContainsIp, formatCidr, parseCidr, type Cidr } from './cidr.ts';
import { formatCidr6, parseCidr6 } from './cidr6.ts';

export interface PathParams {
  /** Keepalive (s) while probing: keeps both NATs' mappings open while the handshake is tried. */
  probeKeepalive: number;
  /** Keepalive (s) on a direct path: the liveness signal the other side reads. */
  directKeepalive: number;
  /** How long one candidate is tried (WireGuard retries a handshake every 5 s). */
  probeWindowMs: number;
  /** Two rx growths at least this far apart prove the path. */
  proofGapMs: number;
  /** A direct path with no packet from the peer for this long is stale. */
  staleMs: number;
  /** Backoff after a failed probe round or a stale path: base · 2^(attempts−1), capped. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A direct path that held this long resets the backoff. */
  stableMs: number;
}

export const PATH_PARAMS: PathParams = {
  probeKeepalive: 1,
  directKeepalive: 2,
  probeWindowMs: 6000,
  proofGapMs: 900,
  staleMs: 6000,
  backoffBaseMs: 5000,
  backoffMaxMs: 300_000,
  stableMs: 60_000,
};

/** Why a pair is relayed (shown by `zmesh peers` and `diagnose`). */
export type RelayReason =
  /** No candidate endpoint of the other node is known yet. */
  | 'no-candidate'
  /** Every candidate was tried without a proven handshake (symmetric NAT, filtering, or the peer is down). */
  | 'no-handshake'
  /** The direct path went silent; the relay carries the traffic again. */
  | 'stale';

export type PathState =
  /** `readAt`: when the counters were last read (absent: at `since`). A probe that starts now counts a handshake
   *  from that reading on: packets that arrived since then (rx grew) may carry a handshake made before this step. */
  | { kind: 'relay'; reason: RelayReason; since: number; retryAt: number; attempts: number; rx: number; candidates: string; readAt?: number }
  /** `candidate` −1: the endpoint WireGuard learnt from the peer's own packets. */
  /** `restarted`: this round already started over once for new candidates (once per round, so a reporter that
   *  keeps changing them cannot keep the pair probing). */
  /** `round`: when this probe round began (absent: at `since`). It stays through the moves to the next candidate
   *  and a restart for new candidates: a handshake made during the round is a session WireGuard keeps (no new
   *  handshake for up to 2 minutes), so measuring it from the later move would never see it. */
  | { kind: 'probing'; candidate: number; since: number; attempts: number; rx: number; firstRxAt: number | null; lastRxAt: number | null; candidates: string; restarted?: true; round?: number }
  | { kind: 'direct'; since: number; attempts: number; rx: number; lastRxAt: number; candidates: string };

export interface PathInput {
  now: number;
  /** Validated candidate endpoints of the other node, in the order to try them. */
  candidates: string[];
  /** The direct peer's received bytes (WireGuard counter; 0 when the peer is not configured yet). */
  rxBytes: number;
  /** The direct peer's latest handshake (ms since the epoch; 0: none). A path is proven only with a session. */
  handshakeAt: number;
}

export interface DirectPeerConfig {
  /** Endpoint to set, or null to leave WireGuard's (learnt) endpoint alone. */
  endpoint: string | null;
  /** Set the endpoint even if the peer had a recent handshake (a probe must be able to move it). */
  forceEndpoint: boolean;
  persistentKeepalive: number | null;
  /** True: the other node's subnet (as two halves) is on the direct peer. */
  direct: boolean;
}

/** WireGuard rejects a session's keys after 180 s: a handshake older than that is no session. */
export const SESSION_MS = 180_000;
/** WireGuard reports handshake times in whole seconds. */
export const HANDSHAKE_SLACK_MS = 1000;

function backoff(attempts: number, p: PathParams): number {
  return Math.min(p.backoffMaxMs, p.backoffBaseMs * 2 ** Math.max(0, Math.min(attempts - 1, 20)));
}

/** The state a pair starts in. */
export function initialPath(input: PathInput): PathState {
  return { kind: 'relay', reason: 'no-candidate', since: input.now, retryAt: input.now, attempts: 0, rx: input.rxBytes, candidates: '' };
}

function probe(candidate: number, input: PathInput, attempts: number, key: string, round: number = input.now): Extract<PathState, { kind: 'probing' }> {
  const s: Extract<PathState, { kind: 'probing' }> = { kind: 'probing', candidate, since: input.now, attempts, rx: input.rxBytes, firstRxAt: null, lastRxAt: null, candidates: key };
  if (round !== input.now) s.round = round;
  return s;
}

/**
 * The state with no time later than `now`: the wall clock stepped back (NTP, an RTC reset). Without this a
 * direct path's last receive an hour "in the future" would keep a dead path (a black hole) for that hour;
 * with it the stale time counts from the step. A retry is never further than the longest backoff.
 */
function notAfter(s: PathState, now: number, p: PathParams): PathState {
  const cap = (t: number) => Math.min(t, now);
  switch (s.kind) {
    case 'relay':
      return s.since <= now && s.retryAt <= now + p.backoffMaxMs && (s.readAt ?? 0) <= now
        ? s
        : { ...s, since: cap(s.since), retryAt: Math.min(s.retryAt, now + p.backoffMaxMs), ...(s.readAt !== undefined ? { readAt: cap(s.readAt) } : {}) };
    case 'probing':
      return s.since <= now && (s.firstRxAt ?? 0) <= now && (s.lastRxAt ?? 0) <= now && (s.round ?? 0) <= now
        ? s
        : {
            ...s,
            since: cap(s.since),
            firstRxAt: s.firstRxAt === null ? null : cap(s.firstRxAt),
            lastRxAt: s.lastRxAt === null ? null : cap(s.lastRxAt),
            ...(s.round !== undefined ? { round: cap(s.round) } : {}),
          };
    case 'direct':
      return s.since <= now && s.lastRxAt <= now ? s : { ...s, since: cap(s.since), lastRxAt: cap(s.lastRxAt) };
  }
}

/** One step: the next state from the previous one and a fresh reading. Pure. */
export function stepPath(before: PathState, input: PathInput, p: PathParams = PATH_PARAMS): PathState {
  const prev = notAfter(before, input.now, p);
  const key = input.candidates.join(',');
  // A counter that went down means the peer was recreated: start counting from here.
  const grew = input.rxBytes > prev.rx;
  const rx = input.rxBytes;
  switch (prev.kind) {
    case 'relay': {
      // The other side probes us: answer at once — but a peer that keeps failing its proof does not get to
      // skip our backoff (after two failed attempts it waits like everything else).
      // The answer's round starts at the last reading: what arrived since (a handshake the peer made, which
      // WireGuard reports in whole seconds and this node reads up to a tick later) belongs to it.
      if (grew && (prev.attempts < 2 || input.now >= prev.retryAt)) return probe(-1, input, prev.attempts, key, Math.min(prev.readAt ?? prev.since, input.now));
      const changed = key !== prev.candidates;
      if (input.candidates.length === 0) return { ...prev, reason: 'no-candidate', rx, candidates: key, readAt: input.now };
      // New candidates are tried at once while the pair has failed at most once; after that they wait for the
      // backoff too (a reporter rotating them cannot keep the pair probing).
      if ((changed && prev.attempts < 2) || input.now >= prev.retryAt) return probe(0, input, prev.attempts, key);
      return { ...prev, rx, candidates: prev.candidates, readAt: input.now };
    }
    case 'probing': {
      let { firstRxAt, lastRxAt } = prev;
      if (grew) {
        firstRxAt ??= input.now;
        lastRxAt = input.now;
      }
      // A handshake completed during this probe (it needs both directions): a path that works one way only
      // never passes, however many packets arrive.
      const round = prev.round ?? prev.since;
      const session = input.handshakeAt > 0 && input.handshakeAt >= round - HANDSHAKE_SLACK_MS && input.now - input.handshakeAt < SESSION_MS;
      if (session && firstRxAt !== null && lastRxAt !== null && lastRxAt - firstRxAt >= p.proofGapMs) {
        return { kind: 'direct', since: input.now, attempts: prev.attempts, rx, lastRxAt, candidates: key };
      }
      // New candidates while nothing answered yet (e.g. the other node's post-NAT endpoint became known): try them
      // now — once per round.
      if (key !== prev.candidates && !prev.restarted && firstRxAt === null && prev.candidate >= 0 && input.candidates.length > 0) return { ...probe(0, input, prev.attempts, key, round), restarted: true };
      // The peer answers (one growth so far): stay on this endpoint until the proof or the window's end.
      if (input.now - prev.since < p.probeWindowMs || (firstRxAt !== null && input.now - firstRxAt < p.probeWindowMs)) {
        return { ...prev, rx, firstRxAt, lastRxAt, candidates: key };
      }
      const next = prev.candidate + 1;
      const again = (i: number) => ({ ...probe(i, input, prev.attempts, key, round), ...(prev.restarted ? { restarted: true as const } : {}) });
      if (next < input.candidates.length && (key === prev.candidates || prev.restarted)) return again(next);
      if (key !== prev.candidates && !prev.restarted && input.candidates.length > 0) return { ...probe(0, input, prev.attempts, key, round), restarted: true };
      const attempts = prev.attempts + 1;
      return { kind: 'relay', reason: input.candidates.length ? 'no-handshake' : 'no-candidate', since: input.now, retryAt: input.now + backoff(attempts, p), attempts, rx, candidates: key };
    }
    case 'direct': {
      if (grew) return { ...prev, rx, lastRxAt: input.now, candidates: key };
      if (input.now - prev.lastRxAt < p.staleMs) return { ...prev, rx, candidates: key };
      const attempts = input.now - prev.since >= p.stableMs ? 1 : prev.attempts + 1;
      // Stale: back to the relay now; the candidates as they are now count as already tried.
      return { kind: 'relay', reason: 'stale', since: input.now, retryAt: input.now + backoff(attempts, p), attempts, rx, candidates: key };
    }
  }
}

/** How the direct peer is configured in a state. */
export function directPeerConfig(s: PathState, candidates: string[], p: PathParams = PATH_PARAMS): DirectPeerConfig {
  switch (s.kind) {
    case 'relay':
      return { endpoint: null, forceEndpoint: false, persistentKeepalive: null, direct: false };
    case 'probing': {
      const ep = s.candidate >= 0 ? (candidates[s.candidate] ?? null) : null;
      return { endpoint: ep, forceEndpoint: ep !== null, persistentKeepalive: p.probeKeepalive, direct: false };
    }
    case 'direct':
      return { endpoint: null, forceEndpoint: false, persistentKeepalive: p.directKeepalive, direct: true };
  }
}

/**
 * The allowed-ips a proven direct path takes: the subnet's two halves (more specific than any relay block). An
 * IPv6 subnet (a dual-stack node's subnet6) likewise: its two halves, e.g. a /64 → two /65s.
 */
export function directAllowedIps(subnet: string): string[] {
  if (subnet.includes(':')) {
    const c6 = parseCidr6(subnet);
    if (!c6) throw new Error(`bad subnet ${subnet}`);
    if (c6.prefix >= 128) return [formatCidr6(c6)];
    return [formatCidr6({ base: c6.base, prefix: c6.prefix + 1 }), formatCidr6({ base: c6.base + (1n << BigInt(128 - c6.prefix - 1)), prefix: c6.prefix + 1 })];
  }
  const c = parseCidr(subnet);
  if (!c) throw new Error(`bad subnet ${subnet}`);
  if (c.prefix >= 32) return [formatCidr(c)];
  const size = 2 ** (32 - c.prefix - 1);
  return [formatCidr({ base: c.base, prefix: c.prefix + 1 }), formatCidr({ base: c.base + size, prefix: c.prefix + 1 })];
}

export interface RoutablePeer {
  publicKey: string;
  allowedIps: string[];
}

/** Which peer longest-prefix match picks for an address (what WireGuard's cryptokey routing does), or null. */
export function routeOf(address: number, peers: RoutablePeer[]): string | null {
  let best: { key: string; prefix: number } | null = null;
  for (const peer of peers) {
    for (const a of peer.allowedIps) {
      // An IPv4 address: a dual-stack peer's IPv6 entries are not candidates.
      const c = parseCidr(a) as Cidr | null;
      if (c && cidrContainsIp(c, address) && (!best || c.prefix > best.prefix)) best = { key: peer.publicKey, prefix: c.prefix };
    }
  }
  return best?.key ?? null;
}

export interface PlannedPeer {
  node: string;
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  persistentKeepalive: number | null;
  directSubnet?: string;
  /** Dual-stack: the node's IPv6 subnet, moved with directSubnet (in the same `wg set`, on the same peer). */
  directSubnet6?: string;
}

/** Everything a proven direct path to a peer takes: both families' halves, IPv4 first. */
export function directPeerAllowedIps(peer: Pick<PlannedPeer, 'directSubnet' | 'directSubnet6'>): string[] {
  if (peer.directSubnet === undefined) return [];
  return [...directAllowedIps(peer.directSubnet), ...(peer.directSubnet6 !== undefined ? directAllowedIps(peer.directSubnet6) : [])];
}

/**
 * A resource's peers with the path decisions applied: each direct peer (one with `directSubnet`) is configured
 * from its node's DirectPeerConfig (none: relay). Every other peer is returned as planned. Pure. On a dual-stack
 * network a move takes both families at once: the direct peer's allowed-ips become (or stop being) the halves of
 * directSubnet and directSubnet6 together, so the driver's one `wg set` on that peer moves both.
 */
export function withPaths<P extends PlannedPeer>(peers: P[], configs: ReadonlyMap<string, DirectPeerConfig>): (P & { forceEndpoint?: true })[] {
  return peers.map((peer) => {
    if (peer.directSubnet === undefined) return peer;
    const c = configs.get(peer.node);
    if (!c) return { ...peer, endpoint: null, allowedIps: [], persistentKeepalive: null };
    const out: P & { forceEndpoint?: true } = {
      ...peer,
      endpoint: c.endpoint,
      persistentKeepalive: c.persistentKeepalive,
      allowedIps: c.direct ? directPeerAllowedIps(peer) : [],
    };
    if (c.forceEndpoint && c.endpoint !== null) out.forceEndpoint = true;
    return out;
  });
}
