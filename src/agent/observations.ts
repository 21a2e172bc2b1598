// What an access node sees of its hidden peers (docs/paths.md, reflexive candidates): the endpoint each hidden
// peer's packets arrive from and its latest handshake. The agent keeps them here, refreshed in the background
// next to the path tick (under its mutex, at most once per OBSERVE_MS per network, and only while the control
// plane asks: agent.ts OBSERVE_WHILE_ASKED_MS), so GET /v1/candidates only
// formats what is kept and never reads a WireGuard device. The decisions are pure functions; the device read is
// injected.
import type { PeerCounters } from './paths.ts';
import type { DesiredNetwork } from './ports.ts';

/** A network's observations are read at most this often (ms; a little under the 1 s tick, for timer jitter). */
export const OBSERVE_MS = 900;
/** An endpoint counts only with a handshake this recent (s; WireGuard's session lifetime). */
export const OBSERVED_HANDSHAKE_S = 180;

/** What is kept of a peer of an access network: its endpoint and latest handshake (s since the epoch; 0: never). */
export type Observation = Pick<PeerCounters, 'publicKey' | 'endpoint' | 'latestHandshake'>;

/** The hidden peers of a network where this node is their access node (node peers without a planned endpoint). */
export function hiddenPeersOf(d: DesiredNetwork): DesiredNetwork['resource']['peers'] {
  if (d.resource.hidden) return [];
  return d.resource.peers.filter((p) => p.kind === 'node' && p.endpoint === null);
}

/** Node → endpoint its packets come from: only an endpoint the peer proved recently (a handshake within 180 s). */
export function observedEndpoints(peers: readonly { node: string; publicKey: string }[], seen: readonly Observation[], nowSec: number): Record<string, string> {
  const byKey = new Map(seen.map((c) => [c.publicKey, c]));
  const out: Record<string, string> = {};
  for (const p of peers) {
    const c = byKey.get(p.publicKey);
    if (c?.endpoint && c.latestHandshake > 0 && nowSec - c.latestHandshake < OBSERVED_HANDSHAKE_S) out[p.node] = c.endpoint;
  }
  return out;
}

/** Which access networks to read now: those never read, read OBSERVE_MS ago or more, or read "in the future" (clock stepped back). */
export function observationsDue(networkIds: readonly string[], readAt: ReadonlyMap<string, number>, now: number): string[] {
  return networkIds.filter((id) => {
    const last = readAt.get(id);
    return last === undefined || now < last || now - last >= OBSERVE_MS;
  });
}

export interface ObservationDeps {
  now: () => number;
  read: (networkId: string) => Promise<PeerCounters[] | null>;
}

/** The kept observations of every network where this node is an access node of hidden peers. */
export class AccessObservations {
  private readonly kept = new Map<string, { at: number; seen: Observation[] }>();

  constructor(private readonly deps: ObservationDeps) {}

  /** Reads the access networks that are due and drops networks no longer planned as such. Call under the agent's mutex. Returns the number of devices read. */
  async refresh(planned: readonly DesiredNetwork[]): Promise<number> {
    const access = new Map<string, Set<string>>();
    for (const d of planned) {
      const peers = hiddenPeersOf(d);
      if (peers.length) access.set(d.networkId, new Set(peers.map((p) => p.publicKey)));
    }
    for (const id of [...this.kept.keys()]) if (!access.has(id)) this.kept.delete(id);
    const readAt = new Map([...this.kept].map(([id, k]) => [id, k.at]));
    let reads = 0;
    for (const id of observationsDue([...access.keys()], readAt, this.deps.now())) {
      const at = this.deps.now();
      reads++;
      const counters = await this.deps.read(id).catch(() => null);
      // A device that cannot be read (not there yet, gone): nothing observed, read again when due.
      const keys = access.get(id)!;
      const seen = (counters ?? []).filter((c) => keys.has(c.publicKey)).map((c) => ({ publicKey: c.publicKey, endpoint: c.endpoint, latestHandshake: c.latestHandshake }));
      this.kept.set(id, { at, seen });
    }
    return reads;
  }

  /** Node → observed endpoint in one network, from what is kept (empty when the network was not read yet). */
  observed(d: DesiredNetwork, nowSec: number): Record<string, string> {
    const k = this.kept.get(d.networkId);
    return k ? observedEndpoints(hiddenPeersOf(d), k.seen, nowSec) : {};
  }

  /** Network ids with kept observations (for tests and diagnostics). */
  networks(): string[] {
    return [...this.kept.keys()].sort();
  }
}
