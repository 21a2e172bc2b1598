// Prometheus text exposition (format 0.0.4) of the agent's state: networks, reconciles, per-peer health, and
// the direct paths of a hidden node's direct peers (a relayed direct peer has no session by design: it is left
// out of zmesh_peer_up, the relay's health is its access node's), and the network policy's rule counters.
import type { NetworkSummary, ReconcileSummary } from './agent.ts';
import type { PathView } from './paths.ts';
import type { ActualNetwork } from './ports.ts';

export interface MetricsInput {
  node: string;
  networks: NetworkSummary[];
  actual: Map<string, ActualNetwork | null>;
  /** networkId → peer public key → peer name from the plan. */
  peerNames: Map<string, Map<string, string>>;
  reconciles: number;
  reconcileErrors: number;
  last: ReconcileSummary | null;
  nowSec: number;
  /** Direct paths of this node's hidden resources (PathManager views; empty on other nodes). */
  paths?: PathView[];
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export function renderMetrics(m: MetricsInput): string {
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) out.push(`${name}${labels(l)} ${Number.isFinite(v) ? v : 0}`);
  };
  family('zmesh_networks', 'gauge', 'Network resources desired on this node.', [[{}, m.networks.length]]);
  family('zmesh_networks_applied', 'gauge', 'Network resources whose last apply succeeded.', [[{}, m.networks.filter((n) => n.applied).length]]);
  family('zmesh_reconciles_total', 'counter', 'Reconcile runs since the agent started.', [[{}, m.reconciles]]);
  family('zmesh_reconcile_errors_total', 'counter', 'Reconcile runs that ended with errors.', [[{}, m.reconcileErrors]]);
  family('zmesh_reconcile_duration_seconds', 'gauge', 'Duration of the last reconcile.', [[{}, (m.last?.durationMs ?? 0) / 1000]]);
  const cost = m.last?.cost;
  family('zmesh_reconcile_cpu_seconds', 'gauge', 'CPU time of the last reconcile: the agent itself, and the commands it ran (ip, wg, nft).', [
    [{ part: 'agent' }, (cost?.agentCpuMs ?? 0) / 1000],
    [{ part: 'commands' }, (cost?.commandsCpuMs ?? 0) / 1000],
  ]);
  family('zmesh_reconcile_commands', 'gauge', 'Commands the last reconcile ran, by kind (a no-op reconcile runs no mutating command).', [
    [{ kind: 'read' }, cost?.reads ?? 0],
    [{ kind: 'mutating' }, cost?.mutating ?? 0],
  ]);
  family('zmesh_reconcile_last_timestamp_seconds', 'gauge', 'When the last reconcile started (unix time).', [[{}, m.last ? Date.parse(m.last.at) / 1000 : 0]]);
  const views = new Map((m.paths ?? []).map((v) => [`${v.networkId}|${v.node}`, v]));
  const peers: { l: Record<string, string>; age: number; rx: number; tx: number; up: number | null }[] = [];
  const paths: { l: Record<string, string>; direct: number; probing: number }[] = [];
  for (const n of m.networks) {
    const network = `${n.tenant}/${n.blueprint}/${n.name}`;
    for (const v of m.paths ?? []) {
      if (v.networkId === n.id) paths.push({ l: { network, peer: v.node }, direct: v.path === 'direct' ? 1 : 0, probing: v.probing ? 1 : 0 });
    }
    const a = m.actual.get(n.id);
    if (!a?.wireguard) continue;
    const names = m.peerNames.get(n.id) ?? new Map<string, string>();
    for (const p of a.wireguard.peers) {
      const l = { network, peer: names.get(p.publicKey) ?? p.publicKey };
      const age = p.latestHandshake > 0 ? m.nowSec - p.latestHandshake : -1;
      const view = views.get(`${n.id}|${l.peer}`);
      const relayed = view !== undefined && view.path !== 'direct';
      peers.push({ l, age, rx: p.rxBytes, tx: p.txBytes, up: relayed ? null : age >= 0 && age <= 180 ? 1 : 0 });
    }
  }
  family('zmesh_peer_handshake_age_seconds', 'gauge', 'Seconds since the latest handshake with a peer (-1: never).', peers.map((p) => [p.l, p.age]));
  family(
    'zmesh_peer_up',
    'gauge',
    'Whether the peer had a handshake in the last 180 seconds (a relayed direct peer is left out: it needs no session).',
    peers.filter((p) => p.up !== null).map((p) => [p.l, p.up as number]),
  );
  family('zmesh_peer_path_direct', 'gauge', "Whether a hidden node's direct peer is reached on a direct path (1) or through the access node (0).", paths.map((p) => [p.l, p.direct]));
  family('zmesh_peer_path_probing', 'gauge', "Whether a direct path to a hidden node's direct peer is being probed (relayed meanwhile).", paths.map((p) => [p.l, p.probing]));
  family('zmesh_peer_receive_bytes_total', 'counter', 'Bytes received from a peer.', peers.map((p) => [p.l, p.rx]));
  family('zmesh_peer_transmit_bytes_total', 'counter', 'Bytes sent to a peer.', peers.map((p) => [p.l, p.tx]));
  // Per policy rule that guards a destination of this node, and the default (docs/policy.md): new flows it
  // accepted or dropped, counted since the tenant table was last written (a policy change starts them again).
  const policy: { l: Record<string, string>; packets: number; bytes: number }[] = [];
  for (const n of m.networks) {
    const c = m.actual.get(n.id)?.policy;
    if (!c) continue;
    const network = `${n.tenant}/${n.blueprint}/${n.name}`;
    for (const r of c.rules) policy.push({ l: { network, rule: String(r.index), action: 'accept' }, packets: r.packets, bytes: r.bytes });
    if (c.default) policy.push({ l: { network, rule: 'default', action: c.default.action }, packets: c.default.packets, bytes: c.default.bytes });
  }
  family('zmesh_policy_packets_total', 'counter', 'Packets of new flows a network policy rule (or the default) accepted or dropped on this node.', policy.map((p) => [p.l, p.packets]));
  family('zmesh_policy_bytes_total', 'counter', 'Bytes of new flows a network policy rule (or the default) accepted or dropped on this node.', policy.map((p) => [p.l, p.bytes]));
  return out.join('\n') + '\n';
}
