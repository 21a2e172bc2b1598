// The lab drawn with Graphviz: the internet, NAT routers with the hosts behind them, nodes (public boxes,
// hidden ellipses), devices, and one edge per tunnel and tenant network, coloured by handshake health as
// topology/graph.ts does (green: handshake within 180 s, orange: older, red: none, grey: unknown). A tunnel
// between two hidden nodes (direct peers) is drawn only while a direct path is proven (dashed, labelled
// "direct"); a relayed pair goes through the access node's edges, which are drawn anyway.
import type { Plan } from '../src/plan/index.ts';
import type { TunnelHealth } from '../topology/graph.ts';
import type { Layout } from './layout.ts';

export const HEALTH_COLOUR: Record<TunnelHealth, string> = { ok: 'green3', stale: 'orange', down: 'red', unknown: 'gray50' };
const STYLES = ['solid', 'bold', 'dashed', 'dotted'];

/** A DOT string; "\\n" in labels stays a line break (names are DNS labels, so nothing else has a backslash). */
function q(s: string): string {
  return `"${s.replace(/"/g, '\\"')}"`;
}

/** Health of a tunnel from both ends' view: the better of the two. handshakes: "net|node|peer" → age (s) or null. */
export function tunnelHealth(ages: (number | null | undefined)[]): TunnelHealth {
  const known = ages.filter((a) => a !== undefined);
  if (!known.length) return 'unknown';
  const seen = known.filter((a): a is number => a !== null);
  if (!seen.length) return 'down';
  return Math.min(...seen) <= 180 ? 'ok' : 'stale';
}

export interface GraphInput {
  layout: Layout;
  plans: { plan: Plan }[];
  /** "networkId|node|peer" → seconds since the last handshake (null: never); absent: unknown. */
  handshakes: Map<string, number | null>;
  /** Nodes whose underlay is cut or whose agent is down, drawn dashed red. */
  down?: Set<string>;
  /** "networkId|node|peer" of the direct peers whose node reports a direct path (GET /v1/paths). */
  direct?: Set<string>;
}

export function labToDot(g: GraphInput): string {
  const { layout } = g;
  const lines = [
    `graph ${q(`lab ${layout.lab}`)} {`,
    '  graph [overlap=false, splines=true, fontname="monospace", compound=true];',
    '  node [fontname="monospace", fontsize=10];',
    '  edge [fontname="monospace", fontsize=8];',
    `  "internet" [shape=doublecircle, label="internet\\n203.0.113.0/24"];`,
  ];
  const hostLabel = (h: Layout['nodes'][number]) => `${h.name}\\n${h.address}${g.down?.has(h.name) ? '\\n(down)' : ''}`;
  for (const nat of layout.nats) {
    lines.push(`  subgraph ${q(`cluster_${nat.name}`)} {`, `    label=${q(`NAT ${nat.name} (${nat.lan})`)}; style=rounded; color=gray60;`);
    lines.push(`    ${q(`nat:${nat.name}`)} [shape=invhouse, label=${q(`${nat.name}\\n${nat.wanAddress}`)}];`);
    for (const h of [...layout.nodes, ...layout.devices]) {
      if (h.attach.kind === 'nat' && h.attach.nat === nat.name) {
        lines.push(`    ${q(h.name)} [shape=${h.role === 'device' ? 'note' : 'ellipse'}, label=${q(hostLabel(h))}${g.down?.has(h.name) ? ', color=red' : ''}];`);
      }
    }
    lines.push('  }');
    lines.push(`  ${q(`nat:${nat.name}`)} -- "internet" [color=gray70];`);
  }
  for (const h of [...layout.nodes, ...layout.devices]) {
    if (h.attach.kind === 'internet') lines.push(`  ${q(h.name)} [shape=${h.role === 'device' ? 'note' : 'box'}, label=${q(hostLabel(h))}${g.down?.has(h.name) ? ', color=red' : ''}];`);
    const up = h.attach.kind === 'internet' ? 'internet' : `nat:${h.attach.nat}`;
    lines.push(`  ${q(h.name)} -- ${q(up)} [color=gray80${g.down?.has(h.name) ? ', style=dashed' : ''}];`);
  }
  const devices = new Set(layout.devices.map((d) => d.name));
  let i = 0;
  for (const { plan } of g.plans) {
    for (const n of plan.networks) {
      const style = STYLES[i++ % STYLES.length];
      const seen = new Set<string>();
      for (const r of n.resources) {
        for (const p of r.peers) {
          if (p.kind === 'device' && !devices.has(p.node)) continue;
          const [a, b] = r.node < p.node ? [r.node, p.node] : [p.node, r.node];
          if (seen.has(`${a}|${b}`)) continue;
          const direct = p.directSubnet !== undefined;
          // A relayed pair of hidden nodes: no tunnel of its own (the access node's edges carry it).
          if (direct && !g.direct?.has(`${n.id}|${a}|${b}`) && !g.direct?.has(`${n.id}|${b}|${a}`)) continue;
          seen.add(`${a}|${b}`);
          const h = tunnelHealth([g.handshakes.get(`${n.id}|${a}|${b}`), g.handshakes.get(`${n.id}|${b}|${a}`)]);
          const label = `${plan.tenant}/${n.name}${direct ? ' direct' : ''}`;
          lines.push(`  ${q(a)} -- ${q(b)} [color=${HEALTH_COLOUR[h]}, style=${direct ? 'dashed' : style}, penwidth=2, label=${q(label)}];`);
        }
      }
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
