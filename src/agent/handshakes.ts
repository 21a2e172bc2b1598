// Handshakes started before anyone sends (issue #18). WireGuard starts a session on a peer's first packet. When
// both sides of a pair send their first packets at the same moment (a lab's matrix probing both directions, two
// workloads starting together), the two handshake initiations cross: each side answers the other's, which
// replaces its own handshake state, so each drops the answer to its own; and neither may start another before
// WireGuard's 5 s rekey timeout. An initiation sent before the other side knows the peer is dropped the same way.
//
// So after an apply, one side of each pair of public nodes (the one whose public key sorts first) starts the
// handshake itself, and repairs one that did not come: a peer with no handshake yet gets a keepalive (turning one
// on sends it at once; it starts a handshake when there is no session), and a peer that was sent to but has no
// handshake (an initiation lost or crossed) is removed and added again (which clears WireGuard's 5 s hold) and
// started again, about once a second, at most MAX_ATTEMPTS times; after the last, a peer still without one is
// removed and added again without a start, so no hold is left behind. Only one side acts: two sides repairing at
// once would cross again. Peers without an endpoint (hidden nodes dial in), with a keepalive of their own (a
// hidden node's access node) or direct peers (docs/paths.md) are left alone. The decisions are pure; the agent
// reads the counters and runs them.
import type { PeerCounters } from './paths.ts';

/** Starts per peer before it is left to WireGuard's own timers (a peer whose node is down stops costing reads). */
export const MAX_ATTEMPTS = 5;
/** Between two checks of a network with peers still waiting. */
export const CHECK_MS = 1000;
/** Peers started or repaired in one check of one network at most (a large mesh is started over several checks). */
export const MAX_PER_CHECK = 128;

export interface HandshakePeer {
  publicKey: string;
  endpoint?: string | null;
  persistentKeepalive?: number | null;
  directSubnet?: string;
}

/** The peers this node starts handshakes with: public peers (an endpoint, no keepalive, not direct) whose public
 *  key sorts after this node's. */
export function handshakeCandidates(ownKey: string, peers: readonly HandshakePeer[]): string[] {
  return peers.filter((p) => typeof p.endpoint === 'string' && p.endpoint !== '' && (p.persistentKeepalive ?? 0) === 0 && p.directSubnet === undefined && ownKey < p.publicKey).map((p) => p.publicKey);
}

export interface HandshakeStep {
  /** Peers to start a handshake with (nothing sent to them yet). */
  kick: string[];
  /** Peers sent to without a handshake: removed and added again, then started. */
  reset: string[];
  /** Peers whose attempts are used up, sent to without a handshake and nothing received: removed and added
   *  again, not started (so no 5 s hold is left behind: their first packet starts a handshake at once, as
   *  WireGuard's would). */
  clear: string[];
  /** Peers done with: a handshake seen, or MAX_ATTEMPTS used. */
  done: string[];
  /** Peers not on the device (yet): the check counts as an attempt. */
  absent: string[];
}

/**
 * One check of one network. `waiting`: candidate peers not yet done, with the attempts used on each;
 * `counters`: the device's peers now (a peer not on the device yet waits for the apply). Pure.
 */
export function handshakeStep(waiting: ReadonlyMap<string, number>, counters: readonly Pick<PeerCounters, 'publicKey' | 'latestHandshake' | 'txBytes' | 'rxBytes'>[], max = MAX_PER_CHECK): HandshakeStep {
  const byKey = new Map(counters.map((c) => [c.publicKey, c]));
  const out: HandshakeStep = { kick: [], reset: [], clear: [], done: [], absent: [] };
  for (const [key, attempts] of waiting) {
    const c = byKey.get(key);
    if (c && c.latestHandshake > 0) out.done.push(key);
    else if (attempts >= MAX_ATTEMPTS) {
      out.done.push(key);
      // Not when the peer sent something: this node may be the responder of a handshake about to complete (its
      // handshake counts once the initiator's first packet arrives), and clearing would drop that session.
      if (c && (c.txBytes ?? 0) > 0 && c.rxBytes === 0) out.clear.push(key);
    } else if (!c) out.absent.push(key);
    else if (out.kick.length + out.reset.length >= max) continue;
    else if ((c.txBytes ?? 0) > 0) out.reset.push(key);
    else out.kick.push(key);
  }
  return out;
}

/** What the agent gives the starter. */
export interface HandshakeDeps<P extends HandshakePeer = HandshakePeer> {
  read: (networkId: string) => Promise<PeerCounters[] | null>;
  /** Removes and adds again the `reset` peers of `network` (as setPeers does with its `reset`, to the peers as
   *  `network` has them), then starts a handshake with every peer of `start`; the change lines. */
  start: (network: HandshakeNetwork<P>, start: readonly string[], reset: readonly string[]) => Promise<string[]>;
  event: (level: 'info' | 'warn', kind: string, subject: string, message: string, data?: unknown) => void;
}

export interface HandshakeNetwork<P extends HandshakePeer = HandshakePeer> {
  networkId: string;
  subject: string;
  ownKey: string;
  hidden: boolean;
  peers: readonly P[];
}

export class HandshakeStarter<P extends HandshakePeer = HandshakePeer> {
  /** networkId → peer key → attempts used (peers still waiting). */
  private readonly waiting = new Map<string, Map<string, number>>();
  /** networkId → peer keys done with (a handshake seen, or attempts used up). */
  private readonly done = new Map<string, Set<string>>();
  /** networkId → this node's public key in it when last armed (a new key: a new device, every peer new again). */
  private readonly ownKeys = new Map<string, string>();

  constructor(private readonly deps: HandshakeDeps<P>) {}

  /** After a reconcile: the candidate peers of `networks` not done with wait for the next check. Whether any wait. */
  arm(networks: readonly HandshakeNetwork<P>[]): boolean {
    const live = new Set(networks.map((n) => n.networkId));
    for (const id of [...this.waiting.keys()]) if (!live.has(id)) this.waiting.delete(id);
    for (const id of [...this.done.keys()]) if (!live.has(id)) this.done.delete(id);
    for (const id of [...this.ownKeys.keys()]) if (!live.has(id)) this.ownKeys.delete(id);
    for (const n of networks) {
      if (this.ownKeys.get(n.networkId) !== n.ownKey) {
        this.waiting.delete(n.networkId);
        this.done.delete(n.networkId);
        this.ownKeys.set(n.networkId, n.ownKey);
      }
      const want = new Set(n.hidden ? [] : handshakeCandidates(n.ownKey, n.peers));
      const done = this.done.get(n.networkId) ?? new Set<string>();
      for (const k of [...done]) if (!want.has(k)) done.delete(k);
      const waiting = this.waiting.get(n.networkId) ?? new Map<string, number>();
      for (const k of [...waiting.keys()]) if (!want.has(k)) waiting.delete(k);
      for (const k of want) if (!done.has(k) && !waiting.has(k)) waiting.set(k, 0);
      if (done.size) this.done.set(n.networkId, done);
      else this.done.delete(n.networkId);
      if (waiting.size) this.waiting.set(n.networkId, waiting);
      else this.waiting.delete(n.networkId);
    }
    return this.waiting.size > 0;
  }

  pending(): number {
    let n = 0;
    for (const w of this.waiting.values()) n += w.size;
    return n;
  }

  /** The networks with peers waiting for a check. */
  waitingIds(): string[] {
    return [...this.waiting.keys()];
  }

  /** One check of every network with waiting peers, one after the other. Whether any still wait (then check again
   *  in CHECK_MS). The agent runs checkOne itself, one network per turn of its lock. */
  async check(networks: readonly HandshakeNetwork<P>[]): Promise<boolean> {
    const byId = new Map(networks.map((n) => [n.networkId, n]));
    for (const id of this.waitingIds()) await this.checkOne(id, byId.get(id));
    return this.waiting.size > 0;
  }

  /** One check of one network (`n`: as desired now; undefined when it is gone). */
  async checkOne(id: string, n: HandshakeNetwork<P> | undefined): Promise<void> {
    const waiting = this.waiting.get(id);
    if (!waiting) return;
    if (!n) {
      this.waiting.delete(id);
      return;
    }
    // An unreadable device counts as a check with every peer absent: the attempts still run out.
    const counters = (await this.deps.read(id).catch(() => null)) ?? [];
    const step = handshakeStep(waiting, counters);
    const done = this.done.get(id) ?? new Set<string>();
    for (const k of step.done) {
      waiting.delete(k);
      done.add(k);
    }
    this.done.set(id, done);
    const acted = [...step.kick, ...step.reset];
    // Acted on: to the back of the line, so that past MAX_PER_CHECK every waiting peer gets its turn.
    for (const k of [...acted, ...step.absent]) {
      const a = (waiting.get(k) ?? 0) + 1;
      waiting.delete(k);
      waiting.set(k, a);
    }
    if (!waiting.size) this.waiting.delete(id);
    if (!acted.length && !step.clear.length) return;
    try {
      const lines = await this.deps.start(n, acted, [...step.reset, ...step.clear]);
      if (step.reset.length) this.deps.event('info', 'handshake.retried', n.subject, `${step.reset.length} peer(s) without a handshake started again (an initiation lost or crossed)`, { peers: step.reset, changes: lines });
      if (step.clear.length) this.deps.event('warn', 'handshake.none', n.subject, `no handshake with ${step.clear.length} peer(s) after ${MAX_ATTEMPTS} starts; left to WireGuard (their first packet starts one)`, { peers: step.clear });
    } catch (e) {
      this.deps.event('warn', 'handshake.failed', n.subject, `starting handshakes failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
  }
}
