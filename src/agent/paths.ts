// The agent's side of direct paths (docs/paths.md): candidates the control plane sent, one path state per
// (network, other hidden node) stepped by topology/paths.ts, and the direct peers' configuration that follows.
// A tick reads only the WireGuard devices of networks where this node is hidden and has direct peers (a UAPI
// read with wireguard-go, no process), steps every pair, and when a pair's configuration changes applies just
// that network's peers in one `wg set`. Public nodes never tick.
import type { Problem } from '../errors.ts';
import { directPeerAllowedIps, directPeerConfig, HANDSHAKE_SLACK_MS, initialPath, SESSION_MS, PATH_PARAMS, stepPath, withPaths, type DirectPeerConfig, type PathParams, type PathState, type RelayReason } from '../../topology/paths.ts';
import { validateCandidates, type CandidateMap, type DirectPeerIndex } from './candidates.ts';
import type { DesiredNetwork } from './ports.ts';

/** The slow cadence of a network's counter reads (ms; a little under the 1 s tick, for timer jitter). */
const SLOW_READ_MS = 900;

export interface PeerCounters {
  publicKey: string;
  rxBytes: number;
  /** Bytes sent to the peer (handshake initiations and answers count). */
  txBytes?: number;
  /** Seconds since the epoch; 0: never. */
  latestHandshake: number;
  endpoint: string | null;
  /** The peer's allowed-ips now (read at start to adopt a direct path a previous agent proved). */
  allowedIps?: string[];
}

export interface PathDeps {
  now: () => number;
  /** The desired networks as planned (without path decisions). */
  desired: () => DesiredNetwork[];
  read: (networkId: string) => Promise<PeerCounters[] | null>;
  /** Applies a network's peers (as withPaths returns them); returns the change lines. `reset`: the public keys of
   *  direct peers whose WireGuard session is dropped (removed and added again in the same `wg set`). */
  setPeers: (networkId: string, peers: DesiredNetwork['resource']['peers'], reset?: readonly string[]) => Promise<string[]>;
  event: (level: 'info' | 'warn', kind: string, subject: string, message: string, data?: unknown) => void;
  /** This host's own underlay addresses: candidates at them are never dialled (its own UDP services). */
  ownAddresses?: () => Promise<string[]>;
  params?: PathParams;
}

/** One pair as `zmesh peers` and GET /v1/paths show it. */
export interface PathView {
  networkId: string;
  node: string;
  path: 'direct' | 'relay';
  /** Present while a direct path is tried. */
  probing: boolean;
  /** The access node that relays (this node's). */
  via: string | null;
  /** Why the pair is relayed (null when direct). */
  reason: RelayReason | 'probing' | null;
  /** ms since the epoch of the last transition. */
  since: number;
  /** When a relayed pair is tried again (ms since the epoch), or null. */
  retryAt: number | null;
  candidates: string[];
  /** The endpoint WireGuard uses for the direct peer now, or null. */
  endpoint: string | null;
}

/** A pair's state is kept per network, node AND planned key: a re-planned key starts over from the relay. */
const key = (networkId: string, node: string, publicKey: string) => `${networkId}/${node}/${publicKey}`;

export class PathManager {
  private candidates: CandidateMap = new Map();
  private readonly states = new Map<string, PathState>();
  private readonly endpoints = new Map<string, string | null>();
  private readonly params: PathParams;

  constructor(private readonly deps: PathDeps) {
    this.params = deps.params ?? PATH_PARAMS;
  }

  /** Networks where this node is hidden, with their direct peers (what candidates may name). */
  index(): DirectPeerIndex {
    const networks = new Map<string, { ipRange: string; ipRange6?: string; peers: Set<string> }>();
    for (const d of this.deps.desired()) {
      if (!d.resource.hidden) continue;
      networks.set(d.networkId, { ipRange: d.ipRange, ...(d.ipRange6 ? { ipRange6: d.ipRange6 } : {}), peers: new Set(d.resource.peers.filter((p) => p.directSubnet !== undefined).map((p) => p.node)) });
    }
    return { networks };
  }

  /** Replaces the candidates (all or nothing). Returns the problems; none: accepted. */
  setCandidates(body: unknown): Problem[] {
    const { candidates, problems } = validateCandidates(body, this.index());
    if (problems.length) return problems;
    const text = (m: CandidateMap, id: string) => JSON.stringify([...(m.get(id) ?? new Map())]);
    for (const id of new Set([...this.candidates.keys(), ...candidates.keys()])) if (text(this.candidates, id) !== text(candidates, id)) this.fresh.add(id);
    this.candidates = candidates;
    return [];
  }
  /** Networks whose candidates changed since their last read (read on the next tick, whatever the cadence). */
  private readonly fresh = new Set<string>();
  /** networkId → when its counters were last read. */
  private readonly readAt = new Map<string, number>();

  candidatesOf(networkId: string, node: string): string[] {
    const list = this.candidates.get(networkId)?.get(node) ?? [];
    return this.own.size ? list.filter((e) => !this.own.has(e.startsWith('[') ? e.slice(1, e.indexOf(']')) : e.slice(0, e.lastIndexOf(':')))) : list;
  }
  private own = new Set<string>();

  /** Whether any pair is being probed (the tick then runs faster). */
  probing(): boolean {
    for (const s of this.states.values()) if (s.kind === 'probing') return true;
    return false;
  }

  private configs(d: DesiredNetwork): Map<string, DirectPeerConfig> {
    const out = new Map<string, DirectPeerConfig>();
    for (const p of d.resource.peers) {
      if (p.directSubnet === undefined) continue;
      const s = this.states.get(key(d.networkId, p.node, p.publicKey));
      if (s) out.set(p.node, directPeerConfig(s, this.candidatesOf(d.networkId, p.node), this.params));
    }
    return out;
  }

  /** A desired network with the path decisions applied to its direct peers (only a hidden node has any). */
  effective(d: DesiredNetwork): DesiredNetwork {
    if (!d.resource.hidden || !d.resource.peers.some((p) => p.directSubnet !== undefined)) return d;
    return { ...d, resource: { ...d.resource, peers: withPaths(d.resource.peers, this.configs(d)) } };
  }

  /**
   * At the agent's start, before its first reconcile: a pair whose direct peer holds the other node's subnet
   * halves now, with a live session, is a direct path the previous agent proved. It is adopted as direct (with
   * no packet counted yet: it goes stale like any other if nothing arrives), so the first reconcile keeps it
   * with zero mutating commands. Without this the restarted side took the subnet back to the relay while the
   * other side kept sending direct: its packets were dropped (cryptokey routing) until a rekey, ~80 s in the
   * soak. Returns the number of pairs adopted.
   */
  async adopt(): Promise<number> {
    let n = 0;
    const now = this.deps.now();
    for (const d of this.deps.desired()) {
      const directs = d.resource.hidden ? d.resource.peers.filter((p) => p.directSubnet !== undefined) : [];
      if (!directs.length) continue;
      const counters = await this.deps.read(d.networkId).catch(() => null);
      if (!counters) continue;
      const byKey = new Map(counters.map((c) => [c.publicKey, c]));
      for (const p of directs) {
        const c = byKey.get(p.publicKey);
        const k = key(d.networkId, p.node, p.publicKey);
        if (!c?.allowedIps || this.states.has(k)) continue;
        // Both families' halves (dual-stack): a path held in one family only is not adopted (the next move fixes both).
        const halves = directPeerAllowedIps(p);
        const held = c.allowedIps.length === halves.length && halves.every((h) => c.allowedIps!.includes(h));
        // A handshake in the future (the wall clock stepped back) proves nothing about now.
        const age = now - c.latestHandshake * 1000;
        const session = c.latestHandshake > 0 && age >= -HANDSHAKE_SLACK_MS && age < SESSION_MS;
        if (!held || !session) continue;
        this.states.set(k, { kind: 'direct', since: now, attempts: 0, rx: c.rxBytes, lastRxAt: now, candidates: this.candidatesOf(d.networkId, p.node).join(',') });
        this.endpoints.set(k, c.endpoint);
        this.deps.event('info', 'path.adopted', `${d.tenant}/${d.blueprint}/${d.networkName}`, `direct path to ${p.node} kept from before the restart`, { node: p.node });
        n++;
      }
    }
    return n;
  }

  /** Reads, steps every pair, applies what changed. Call under the agent's mutex. */
  async tick(): Promise<void> {
    const desired = this.deps.desired();
    if (this.deps.ownAddresses && desired.some((d) => d.resource.hidden)) this.own = new Set(await this.deps.ownAddresses().catch(() => [...this.own]));
    // Pairs that exist now: a hidden resource's direct peers. Any other state (a peer re-planned with another
    // key, a node that became public) is dropped before anything is stepped.
    const live = new Set<string>();
    for (const d of desired) if (d.resource.hidden) for (const p of d.resource.peers) if (p.directSubnet !== undefined) live.add(key(d.networkId, p.node, p.publicKey));
    for (const k of [...this.states.keys()]) {
      if (!live.has(k)) {
        this.states.delete(k);
        this.endpoints.delete(k);
      }
    }
    for (const id of [...this.readAt.keys()]) if (!desired.some((d) => d.networkId === id)) this.readAt.delete(id);
    for (const d of desired) {
      const directs = d.resource.hidden ? d.resource.peers.filter((p) => p.directSubnet !== undefined) : [];
      if (!directs.length) continue;
      // The fast cadence (ticks every 500 ms while any pair probes) reads only networks with a probing pair or
      // new candidates; the others keep one read a second (a peer kept probing elsewhere cannot double it).
      const at = this.deps.now();
      const last = this.readAt.get(d.networkId);
      const probingHere = directs.some((p) => this.states.get(key(d.networkId, p.node, p.publicKey))?.kind === 'probing');
      if (!probingHere && !this.fresh.has(d.networkId) && last !== undefined && at >= last && at - last < SLOW_READ_MS) continue;
      this.readAt.set(d.networkId, at);
      this.fresh.delete(d.networkId);
      const counters = await this.deps.read(d.networkId).catch(() => null);
      if (!counters) continue;
      const byKey = new Map(counters.map((c) => [c.publicKey, c]));
      const now = this.deps.now();
      let changed = false;
      const reset: string[] = [];
      for (const p of directs) {
        const k = key(d.networkId, p.node, p.publicKey);
        const c = byKey.get(p.publicKey);
        const input = { now, candidates: this.candidatesOf(d.networkId, p.node), rxBytes: c?.rxBytes ?? 0, handshakeAt: (c?.latestHandshake ?? 0) * 1000 };
        const prev = this.states.get(k) ?? initialPath(input);
        const next = stepPath(prev, input, this.params);
        this.endpoints.set(k, c?.endpoint ?? null);
        // A probing state names its endpoint by its place in the list it was stepped with: `before` with that list.
        // Read with the new one, a list that changed under a probe (the other node's post-NAT endpoint became known,
        // first now) looked unchanged, and WireGuard kept dialling the old endpoint for the whole window while the
        // state said the new one was tried (until a reconcile happened to apply it).
        const before = directPeerConfig(prev, prev.candidates ? prev.candidates.split(',') : [], this.params);
        const after = directPeerConfig(next, input.candidates, this.params);
        this.states.set(k, next);
        if (JSON.stringify(before) !== JSON.stringify(after)) changed = true;
        if (prev.kind !== next.kind) this.transition(d, p.node, prev, next, input);
        // A direct path gone stale: the direct peer's session goes with it. A session kept alive meant no new
        // handshake for up to 2 minutes, so every later probe failed its proof, and a side still direct kept its
        // peer's subnet while this side relayed: each dropped the other's packets (cryptokey routing) until a
        // rekey (likely the 61–87 s of a CI soak). Without the session the other side's packets on the direct peer
        // stop counting, so it goes stale too, within the stale time, and the next probe starts with a handshake.
        // Not after a failed probe: the other side may be probing right then, on the session its probe just made.
        if (next.kind === 'relay' && prev.kind === 'direct' && c) reset.push(p.publicKey);
      }
      if (changed) {
        const lines = await this.deps.setPeers(d.networkId, this.effective(d).resource.peers, reset);
        if (lines.length) this.deps.event('info', 'path.applied', `${d.tenant}/${d.blueprint}/${d.networkName}`, lines.join('; '));
      }
    }
  }

  private transition(d: DesiredNetwork, node: string, prev: PathState, next: PathState, input: { now: number; handshakeAt: number }): void {
    const subject = `${d.tenant}/${d.blueprint}/${d.networkName}`;
    if (next.kind === 'direct') this.deps.event('info', 'path.direct', subject, `direct path to ${node} proven; its subnet moved off the relay`, { node });
    else if (next.kind === 'relay' && prev.kind === 'direct') this.deps.event('warn', 'path.relay', subject, `direct path to ${node} went silent; relayed through the access node again`, { node });
    else if (next.kind === 'relay' && prev.kind === 'probing') {
      // What the proof saw, for an operator (and a lab's log) to tell a silent peer from a session that predates
      // the round: ms before now of the round's start, the last handshake and the first and last packets.
      const ago = (t: number | null | undefined) => (t ? input.now - t : null);
      const saw = { round: ago(prev.round ?? prev.since), handshake: ago(input.handshakeAt), firstRx: ago(prev.firstRxAt), lastRx: ago(prev.lastRxAt) };
      this.deps.event('info', 'path.relay', subject, `no direct path to ${node} (${next.reason}); relayed, retried in ${Math.round((next.retryAt - next.since) / 1000)} s`, { node, saw });
    }
  }

  /** Every pair of one network (or all), for `zmesh peers`, the admin API and metrics. `redact`: without the
   *  candidates and endpoints (other nodes' LAN and post-NAT addresses), for the read-only socket. */
  views(networkId?: string, redact = false): PathView[] {
    const out: PathView[] = [];
    for (const d of this.deps.desired()) {
      if (networkId && d.networkId !== networkId) continue;
      if (!d.resource.hidden) continue;
      for (const p of d.resource.peers) {
        if (p.directSubnet === undefined) continue;
        const k = key(d.networkId, p.node, p.publicKey);
        const s = this.states.get(k);
        out.push({
          networkId: d.networkId,
          node: p.node,
          path: s?.kind === 'direct' ? 'direct' : 'relay',
          probing: s?.kind === 'probing',
          via: d.resource.accessNode,
          reason: !s ? 'no-candidate' : s.kind === 'direct' ? null : s.kind === 'probing' ? 'probing' : s.reason,
          since: s?.since ?? 0,
          retryAt: s?.kind === 'relay' && s.retryAt > this.deps.now() ? s.retryAt : null,
          candidates: redact ? [] : this.candidatesOf(d.networkId, p.node),
          endpoint: redact ? null : (this.endpoints.get(k) ?? null),
        });
      }
    }
    return out;
  }
}
