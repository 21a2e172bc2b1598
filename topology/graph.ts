// Graph export of a network plan in Graphviz DOT: nodes (public boxes, hidden ellipses), devices, tunnels.
// An optional health map colours each tunnel (green: recent handshake, orange: stale, red: none).
import type { NetworkPlan } from './types.ts';

export type TunnelHealth = 'ok' | 'stale' | 'down' | 'unknown';

function q(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const COLOUR: Record<TunnelHealth, string> = { ok: 'green3', stale: 'orange', down: 'red', unknown: 'gray50' };

/** DOT text for one network. health is keyed "a|b" with a < b. */
export function networkToDot(net: NetworkPlan, health: Map<string, TunnelHealth> = new Map()): string {
  const lines = [`graph ${q(net.name)} {`, '  graph [overlap=false, splines=true];', '  node [fontname="monospace"];'];
  for (const r of net.resources) {
    const shape = r.hidden ? 'ellipse' : 'box';
    lines.push(`  ${q(r.node)} [shape=${shape}, label=${q(`${r.node}\\n${r.subnet}${r.hidden ? '\\n(hidden)' : ''}`)}];`);
  }
  for (const d of net.access) {
    lines.push(`  ${q(d.name)} [shape=note, label=${q(`${d.name}\\n${d.address}`)}];`);
  }
  const seen = new Set<string>();
  for (const r of net.resources) {
    for (const p of r.peers) {
      const [a, b] = r.node < p.node ? [r.node, p.node] : [p.node, r.node];
      const key = `${a}|${b}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const h = health.get(key) ?? 'unknown';
      lines.push(`  ${q(a)} -- ${q(b)} [color=${COLOUR[h]}${p.kind === 'device' ? ', style=dashed' : ''}];`);
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
